"""The amazonec2 driver's cluster door: one security group per cluster, shared by its members.

The group ``provision-cluster-<cluster>`` lives in the members' VPC and admits the swarm ports from
itself only (a rule naming the group, never a CIDR), so a member reaches another member on them and
nothing else does. Members carry it on their primary network interface, next to their own group.
The group is tagged ``provision-cluster=<cluster>``: a same-named group without that tag is never
adopted, widened or deleted.
"""

from __future__ import annotations

from typing import Any

from provision import waiting
from provision.errors import DriverError

from .aws_client import DRIVER, EC2, ec2_errors, error_code
from .aws_waits import describe_instance
from .clusters import SWARM_PORTS, cluster_label

TAG_CLUSTER = "provision-cluster"
LIVE_STATES = ("pending", "running", "stopping", "stopped")
# A group another member has just created may not be visible to DescribeSecurityGroups at once.
VISIBLE_TIMEOUT = 60.0


def find_group(ec2: EC2, cluster: str, vpc_id: str, *, refuse: bool = True) -> dict[str, Any] | None:
    """The cluster's group in ``vpc_id``. With ``refuse``, a same-named group that is not the cluster's,
    and a cluster whose group lives in another VPC (members could not reach each other's private IPs),
    are errors; without, they are simply not the cluster's group here."""
    name = cluster_label(cluster)
    with ec2_errors(f"look up security group {name}", ec2.credential_source):
        groups = ec2.client.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    ours = [g for g in groups if g["VpcId"] == vpc_id]
    if not refuse:
        return next((g for g in ours if {t["Key"]: t["Value"] for t in g.get("Tags", [])}.get(TAG_CLUSTER)
                     == cluster), None)
    if ours:
        tags = {t["Key"]: t["Value"] for t in ours[0].get("Tags", [])}
        if tags.get(TAG_CLUSTER) != cluster:
            raise DriverError(f"Security group {name} ({ours[0]['GroupId']}) exists in VPC {vpc_id} but is not "
                              f"cluster {cluster}'s (no {TAG_CLUSTER}={cluster} tag)", driver=DRIVER,
                              hint="rename or delete that group; provision never adopts or widens it")
        return ours[0]
    elsewhere = [g for g in groups if {t["Key"]: t["Value"] for t in g.get("Tags", [])}.get(TAG_CLUSTER) == cluster]
    if elsewhere:
        raise DriverError(f"Cluster {cluster}'s security group is in VPC {elsewhere[0]['VpcId']}, this machine in "
                          f"{vpc_id}", driver=DRIVER,
                          hint="the members of a cluster must share a VPC (--amazonec2-vpc-id)")
    return None


def ensure_group(ec2: EC2, cluster: str, vpc_id: str, tags: dict[str, str]) -> str:
    """The id of the cluster's group, created if missing, with every swarm rule in place."""
    import botocore.exceptions

    name = cluster_label(cluster)
    group = find_group(ec2, cluster, vpc_id)
    if group is None:
        all_tags = {**tags, "Name": name, TAG_CLUSTER: cluster}
        with ec2_errors(f"create security group {name}", ec2.credential_source):
            try:
                group_id = ec2.client.create_security_group(
                    GroupName=name, VpcId=vpc_id,
                    Description=f"provision cluster {cluster}: swarm ports between its members",
                    TagSpecifications=[{"ResourceType": "security-group",
                                        "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}])["GroupId"]
                group = {"GroupId": group_id, "IpPermissions": []}
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "InvalidGroup.Duplicate":
                    raise
        if group is None:  # another member made it first
            group = waiting.wait_for(f"see security group {name}", lambda: _visible(ec2, cluster, vpc_id),
                                     timeout=VISIBLE_TIMEOUT, interval=1.0, backoff=2.0, max_interval=5.0)
    _ensure_rules(ec2, group)
    return str(group["GroupId"])


def _visible(ec2: EC2, cluster: str, vpc_id: str) -> dict[str, Any]:
    group = find_group(ec2, cluster, vpc_id)
    if group is None:
        raise waiting.NotYet("not visible yet")
    return group


def _ensure_rules(ec2: EC2, group: dict[str, Any]) -> None:
    """Add the swarm rules the group lacks, each admitting the group itself (a crashed creator may have
    left it without them)."""
    import botocore.exceptions

    group_id = group["GroupId"]
    have = {(p["IpProtocol"], p.get("FromPort"), pair["GroupId"])
            for p in group.get("IpPermissions", []) for pair in p.get("UserIdGroupPairs", [])}
    missing = [{"IpProtocol": proto, "FromPort": port, "ToPort": port,
                "UserIdGroupPairs": [{"GroupId": group_id, "Description": "members of the same cluster"}]}
               for port, proto in SWARM_PORTS if (proto, port, group_id) not in have]
    if not missing:
        return
    with ec2_errors(f"open the swarm ports in security group {group_id}", ec2.credential_source):
        try:
            ec2.client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=missing)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "InvalidPermission.Duplicate":  # another member added them meanwhile
                raise


def _live_instance(ec2: EC2, instance_id: str) -> dict[str, Any] | None:
    instance = describe_instance(ec2, instance_id)
    return instance if instance is not None and instance["State"]["Name"] in LIVE_STATES else None


def set_member(ec2: EC2, instance_id: str, group_id: str, *, member: bool) -> None:
    """Attach the group to, or detach it from, the instance's primary network interface, keeping its
    other groups. (ModifyNetworkInterfaceAttribute, not ModifyInstanceAttribute: EC2 refuses the latter
    for an instance with several interfaces.) An instance already gone has nothing to change."""
    instance = _live_instance(ec2, instance_id)
    if instance is None:
        return
    primary = [n for n in instance.get("NetworkInterfaces", []) if n.get("Attachment", {}).get("DeviceIndex") == 0]
    if not primary:
        raise DriverError(f"Instance {instance_id} has no primary network interface", driver=DRIVER)
    groups = [g["GroupId"] for g in primary[0]["Groups"]]
    if (group_id in groups) == member:
        return
    groups = [*groups, group_id] if member else [g for g in groups if g != group_id]
    interface = primary[0]["NetworkInterfaceId"]
    with ec2_errors(f"{'attach' if member else 'detach'} security group {group_id} on {instance_id}",
                    ec2.credential_source):
        ec2.client.modify_network_interface_attribute(NetworkInterfaceId=interface, Groups=groups)


def other_members(ec2: EC2, group_id: str, own_instance_id: str | None) -> list[str]:
    """Live instances other than ours whose interfaces carry the group."""
    with ec2_errors(f"find the users of security group {group_id}", ec2.credential_source):
        interfaces = ec2.client.describe_network_interfaces(
            Filters=[{"Name": "group-id", "Values": [group_id]}])["NetworkInterfaces"]
    ids = sorted({n["Attachment"]["InstanceId"] for n in interfaces if n.get("Attachment", {}).get("InstanceId")}
                 - {own_instance_id})
    return [i for i in ids if _live_instance(ec2, i) is not None]
