"""Choose the machine image: an AMI id the user gave, or a current public image looked up at create time.

Docker Machine shipped a table of AMI ids that went stale within months. Here the default is found by
name pattern and the publisher's account id, newest first, so it is always the current build of the
distribution in the region being used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provision.errors import DriverError

from .aws_client import DRIVER, ec2_errors, error_code


@dataclass(frozen=True)
class ImageFamily:
    owner: str  # the publisher's AWS account id: a name alone can be copied by anyone
    name_pattern: str  # ``{arch}`` becomes amd64 or arm64, the publishers' own spelling
    ssh_user: str


# Aliases accepted by --amazonec2-ami besides an AMI id.
IMAGE_FAMILIES: dict[str, ImageFamily] = {
    "ubuntu-24.04": ImageFamily("099720109477", "ubuntu/images/hvm-ssd*/ubuntu-noble-24.04-{arch}-server-*", "ubuntu"),
    "debian-12": ImageFamily("136693071363", "debian-12-{arch}-*", "admin"),
}
DEFAULT_FAMILY = "ubuntu-24.04"
DEFAULT_SSH_USER = "ubuntu"  # Docker Machine's default, for an AMI id of unknown origin
PUBLISHER_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


@dataclass(frozen=True)
class Image:
    image_id: str
    name: str
    architecture: str
    root_device_name: str
    ssh_user: str


def instance_architectures(client: Any, instance_type: str, source: str) -> list[str]:
    """Architectures the instance type runs, which also proves the type exists in this region."""
    import botocore.exceptions

    with ec2_errors(f"look up instance type {instance_type}", source):
        try:
            found = client.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "InvalidInstanceType":
                raise DriverError(f'Instance type "{instance_type}" does not exist in this region',
                                  driver=DRIVER, hint="see `aws ec2 describe-instance-types`") from exc
            raise
    if not found:
        raise DriverError(f'Instance type "{instance_type}" does not exist in this region', driver=DRIVER)
    return list(found[0].get("ProcessorInfo", {}).get("SupportedArchitectures", []))


def _image(record: dict[str, Any], ssh_user: str) -> Image:
    return Image(record["ImageId"], record.get("Name", ""), record.get("Architecture", ""),
                 record.get("RootDeviceName") or "/dev/sda1", ssh_user)


def resolve_image(client: Any, source: str, ami: str | None, architectures: list[str]) -> Image:
    """The image to boot: ``ami`` is an AMI id, a family alias, or None for the default family."""
    family_name = ami or DEFAULT_FAMILY
    family = IMAGE_FAMILIES.get(family_name)
    if family is None:
        return _given_image(client, source, family_name, architectures)
    arch = next((a for a in ("x86_64", "arm64") if a in architectures), None)
    if arch is None:
        raise DriverError(f"The instance type's architectures ({', '.join(architectures) or 'none'}) have no "
                          f"{family_name} image", driver=DRIVER, hint="give --amazonec2-ami")
    pattern = family.name_pattern.format(arch=PUBLISHER_ARCH[arch])
    with ec2_errors(f"look up the current {family_name} image", source):
        images = client.describe_images(
            Owners=[family.owner],
            Filters=[{"Name": "name", "Values": [pattern]},
                     {"Name": "architecture", "Values": [arch]},
                     {"Name": "state", "Values": ["available"]}],
        )["Images"]
    if not images:
        raise DriverError(f"No {family_name} image for {arch} found in this region (owner {family.owner}, "
                          f"name {pattern})", driver=DRIVER, hint="give --amazonec2-ami")
    newest = max(images, key=lambda image: image.get("CreationDate", ""))  # ISO 8601 sorts as text
    return _image(newest, family.ssh_user)


def _given_image(client: Any, source: str, ami: str, architectures: list[str]) -> Image:
    if not ami.startswith("ami-"):
        known = ", ".join(IMAGE_FAMILIES)
        raise DriverError(f'"{ami}" is neither an AMI id (ami-...) nor a known image ({known})', driver=DRIVER)
    with ec2_errors(f"look up image {ami}", source):
        images = client.describe_images(ImageIds=[ami])["Images"]
    if not images:
        raise DriverError(f"Image {ami} not found in this region", driver=DRIVER)
    image = _image(images[0], DEFAULT_SSH_USER)
    if architectures and image.architecture and image.architecture not in architectures:
        raise DriverError(f"Image {ami} is {image.architecture} but the instance type runs "
                          f"{', '.join(architectures)}", driver=DRIVER)
    return image
