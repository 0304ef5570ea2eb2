"""Build the instance's user data: what the tool needs at first boot, merged with the user's own.

The tool's part is a cloud-config built as a dict and dumped with ``yaml.safe_dump``. The user's file may
be a cloud-config, a script, any other cloud-init part type, or a MIME multipart archive; it is combined
with ours as a MIME multipart archive, which cloud-init itself merges. The user's cloud-config comes
last with a ``Merge-Type`` that appends lists and lets their keys win, so ``runcmd`` entries of both
survive and the user can override anything we set.
"""

from __future__ import annotations

import gzip
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

from provision.errors import DriverError

from .aws_client import DRIVER

# EC2 rejects user data above 16 KiB (before base64).
USER_DATA_LIMIT = 16 * 1024
USER_MERGE_TYPE = "list(append)+dict(recurse_array)+str()"

# cloud-init's own prefixes for each part type (its "user data formats").
PART_TYPES: tuple[tuple[str, str], ...] = (
    ("#cloud-config-archive", "cloud-config-archive"),
    ("#cloud-config", "cloud-config"),
    ("#cloud-boothook", "cloud-boothook"),
    ("#include-once", "x-include-once-url"),
    ("#include", "x-include-url"),
    ("#part-handler", "part-handler"),
    ("#upstart-job", "upstart-job"),
    ("## template: jinja", "jinja2"),
    ("#!", "x-shellscript"),
)


def tool_cloud_config(machine_name: str, ssh_port: int) -> dict[str, Any]:
    config: dict[str, Any] = {"hostname": machine_name, "preserve_hostname": False}
    if ssh_port != 22:
        # The security group opens ssh_port; sshd must listen there from first boot or the core's SSH
        # wait can never succeed. Ubuntu 24.04 socket-activates sshd, so the socket unit is regenerated.
        config["write_files"] = [{
            "path": "/etc/ssh/sshd_config.d/10-provision-port.conf",
            "permissions": "0644",
            "content": f"Port {ssh_port}\n",
        }]
        config["runcmd"] = [[
            "sh", "-c",
            "systemctl daemon-reload; systemctl restart ssh.socket 2>/dev/null"
            " || systemctl restart ssh 2>/dev/null || systemctl restart sshd",
        ]]
    return config


def render_cloud_config(config: dict[str, Any]) -> str:
    import yaml

    return "#cloud-config\n" + yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def _part_subtype(text: str) -> str | None:
    for prefix, subtype in PART_TYPES:
        if text.startswith(prefix):
            return subtype
    return None


def merge_user_data(own: dict[str, Any], user: bytes | None, source: str = "user data") -> bytes:
    """The user data to send: ours alone, or ours plus the user's as one MIME archive."""
    ours = render_cloud_config(own)
    if not user:
        return _within_limit(ours.encode())
    if user[:2] == b"\x1f\x8b":  # cloud-init accepts gzip; unpack to combine
        user = gzip.decompress(user)
    try:
        text = user.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DriverError(f"{source} is not UTF-8 text", driver=DRIVER) from exc

    archive = MIMEMultipart()
    archive.attach(_part(ours, "cloud-config", "provision.cfg"))
    head = text.lstrip()[:200].lower()
    if head.startswith("content-type:") or head.startswith("mime-version:"):
        import email

        message = email.message_from_string(text)
        if not message.is_multipart():
            raise DriverError(f"{source} has MIME headers but is not a multipart archive", driver=DRIVER)
        for part in message.get_payload():
            archive.attach(part)
    else:
        subtype = _part_subtype(text)
        if subtype is None:
            raise DriverError(
                f"{source} is not a format cloud-init runs (cloud-config, a #! script, MIME, ...)",
                driver=DRIVER, hint="start it with #cloud-config or #!/bin/sh")
        part = _part(text, subtype, "user-data")
        if subtype == "cloud-config":
            part["Merge-Type"] = USER_MERGE_TYPE
        archive.attach(part)
    return _within_limit(archive.as_bytes())


def _part(text: str, subtype: str, filename: str) -> MIMEText:
    part = MIMEText(text, subtype, "utf-8")
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def _within_limit(data: bytes) -> bytes:
    if len(data) <= USER_DATA_LIMIT:
        return data
    packed = gzip.compress(data, mtime=0)
    if len(packed) > USER_DATA_LIMIT:
        raise DriverError(f"User data is {len(data)} bytes ({len(packed)} gzipped); EC2 allows "
                          f"{USER_DATA_LIMIT}", driver=DRIVER)
    return packed
