"""The cloud-init NoCloud seed: a small ISO 9660 volume labelled ``cidata``.

cloud-init finds the seed by its volume label on any block device and reads ``user-data``,
``meta-data`` and, when present, ``network-config`` from its root. provision's own Debian image has
no cloud-init; its first-boot step (a systemd generator) reads the plain ``provision-*`` files from the
same seed, which cloud-init ignores. One seed thus serves both kinds of image. The ISO is written with pycdlib so
no external tool (genisoimage, xorriso) is needed on the host. Rock Ridge and Joliet carry the real
file names: plain ISO 9660 level 1 names cannot hold a hyphen.

The files provision's image writes at first boot (engine certificates, the docker.service drop-in, the
host key, the cluster NIC) travel as one tar archive: the first-boot step unpacks it with one ``tar``
instead of a decode, chmod and rename per file, each a process start that costs time under TCG.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from provision.templating import render

from provision.driver import HostFile

VOLUME_LABEL = "cidata"
# Seed files and the 8.3 ISO 9660 names they hide behind (only Rock Ridge / Joliet readers see the real ones).
_ISO_NAMES = {"user-data": "USERDATA.;1", "meta-data": "METADATA.;1", "network-config": "NETCFG.;1",
              "vendor-data": "VENDDATA.;1", "provision-user": "PUSER.;1", "provision-hostname": "PHOST.;1",
              "provision-authorized-keys": "PKEYS.;1", "provision-files.tar": "PFILES.TAR;1"}
BINARY_FILES = frozenset({"provision-files.tar"})
SeedFiles = dict[str, str | bytes]


def render_seed_files(*, instance_id: str, hostname: str, user: str, ssh_public_key: str,
                      with_network_config: bool, engine_files: Sequence[HostFile] = (),
                      cluster_nic: tuple[str, str] | None = None) -> SeedFiles:
    """The seed's files, rendered from ``templates/cloud-init``.

    ``cluster_nic`` (MAC, address): a second NIC with a static address on the cluster network, for
    cloud-init (network-config) and for provision's own image (a networkd file among the boot files).
    """
    files: SeedFiles = {
        "meta-data": render("cloud-init/meta-data", instance_id=instance_id, hostname=hostname),
        "user-data": render("cloud-init/user-data", hostname=hostname, user=user,
                            ssh_public_key=ssh_public_key.strip()),
    }
    if with_network_config:
        cluster = None
        if cluster_nic:
            from .clusternet import SUBNET

            cluster = {"mac": cluster_nic[0], "address": cluster_nic[1], "prefixlen": SUBNET.prefixlen}
        files["network-config"] = render("cloud-init/network-config", cluster=cluster)
    # For provision's own image (templates/cloud-init/base-image/provision-firstboot).
    files["provision-user"] = user + "\n"
    files["provision-hostname"] = hostname + "\n"
    files["provision-authorized-keys"] = ssh_public_key.strip() + "\n"
    if cluster_nic:
        from .clusternet import NETWORK_FILE, networkd_file

        engine_files = (*engine_files, HostFile(NETWORK_FILE, 0o644, networkd_file(*cluster_nic).encode()))
    if engine_files:
        files["provision-files.tar"] = files_archive(engine_files)
    return files


def files_archive(engine_files: Sequence[HostFile]) -> bytes:
    """A tar archive of the files, owned by root with their modes, named relative to ``/``."""
    out = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for f in engine_files:
            if not f.path.startswith("/") or ".." in f.path.split("/"):
                raise ValueError(f"engine file path {f.path!r} must be absolute, without '..'")
            member = tarfile.TarInfo(f.path.lstrip("/"))
            member.size, member.mode, member.mtime = len(f.content), f.mode, now
            member.uid = member.gid = 0
            member.uname = member.gname = "root"
            archive.addfile(member, io.BytesIO(f.content))
    return out.getvalue()


def write_seed_iso(path: Path, files: Mapping[str, str | bytes]) -> None:
    """Write ``files`` (name -> text, or bytes for an archive) into a NoCloud seed ISO at ``path``, atomically."""
    import pycdlib

    unknown = set(files) - set(_ISO_NAMES)
    if unknown:
        raise ValueError(f"not a NoCloud seed file: {', '.join(sorted(unknown))}")
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=VOLUME_LABEL, joliet=3, rock_ridge="1.09")
    for name, text in files.items():
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        iso.add_fp(io.BytesIO(data), len(data), f"/{_ISO_NAMES[name]}", rr_name=name, joliet_path=f"/{name}")
    tmp = path.with_name(path.name + ".tmp")
    try:
        # The seed may carry the engine's private key: readable by its owner only.
        tmp.touch(mode=0o600)
        tmp.chmod(0o600)
        iso.write(str(tmp))
    finally:
        iso.close()
    os.replace(tmp, path)
