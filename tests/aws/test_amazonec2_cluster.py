"""The amazonec2 driver's cluster door against moto's server: one security group per cluster whose
rules admit the swarm ports from the group itself, created with the first member, deleted with the last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provision.errors import DriverError
from provision_drivers.amazonec2 import AmazonEC2Driver
from provision_drivers.aws_cluster import TAG_CLUSTER
from test_amazonec2 import groups_of, instance, leftovers, make_driver, tags_of

pytestmark = pytest.mark.aws
NAME = "provision-cluster-web"
SWARM = {("tcp", 2377), ("tcp", 7946), ("udp", 7946), ("udp", 4789)}


def member(tmp_path: Path, name: str, cluster: str | None = "web", **options: Any) -> AmazonEC2Driver:
    driver = make_driver(tmp_path, name, **options)
    driver.ctx.cluster = cluster
    return driver


def cluster_groups(client: Any) -> list[dict[str, Any]]:
    return client.describe_security_groups(Filters=[{"Name": "group-name", "Values": [NAME]}])["SecurityGroups"]


def assert_closed_to_the_world(client: Any, group_id: str) -> None:
    group = client.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    seen = set()
    for permission in group["IpPermissions"]:
        assert not permission.get("IpRanges") and not permission.get("Ipv6Ranges")
        assert not permission.get("PrefixListIds")
        assert [pair["GroupId"] for pair in permission["UserIdGroupPairs"]] == [group_id]
        assert permission["FromPort"] == permission["ToPort"]
        seen.add((permission["IpProtocol"], permission["FromPort"]))
    assert seen == SWARM
    assert tags_of(group)[TAG_CLUSTER] == "web" and tags_of(group)["Name"] == NAME


def test_group_comes_with_the_first_member_and_goes_with_the_last(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    first = member(tmp_path, "web-1", tags="team,blue")
    first.create()
    assert first.capabilities.cluster
    [group] = cluster_groups(ec2_client)
    group_id = group["GroupId"]
    assert first.ctx.data["cluster_groups"] == {"web": group_id}
    assert_closed_to_the_world(ec2_client, group_id)
    assert tags_of(group)["team"] == "blue"  # tagged like the machine's other resources
    vm1 = instance(ec2_client, first.ctx.data["instance_id"])
    assert groups_of(vm1) == {first.ctx.data["security_group_id"], group_id}  # attached at RunInstances
    assert first.cluster_address() == vm1["PrivateIpAddress"]

    second = member(tmp_path, "web-2")
    second.create()
    assert [g["GroupId"] for g in cluster_groups(ec2_client)] == [group_id]  # found, not made again
    assert group_id in groups_of(instance(ec2_client, second.ctx.data["instance_id"]))
    assert second.cluster_address() != first.cluster_address()

    # Joining again (the core also joins after create) changes nothing.
    first.join_cluster("web")
    second.join_cluster("web")
    assert_closed_to_the_world(ec2_client, group_id)
    assert groups_of(instance(ec2_client, first.ctx.data["instance_id"])) == \
        {first.ctx.data["security_group_id"], group_id}

    # The first member leaves and is removed: the group stays for the second.
    first.leave_cluster("web", last=False)
    assert groups_of(instance(ec2_client, first.ctx.data["instance_id"])) == {first.ctx.data["security_group_id"]}
    assert "web" not in first.ctx.data["cluster_groups"]
    first.remove()
    assert [g["GroupId"] for g in cluster_groups(ec2_client)] == [group_id]

    # The last member takes it with it; again is already done.
    second.leave_cluster("web", last=True)
    assert cluster_groups(ec2_client) == []
    assert groups_of(instance(ec2_client, second.ctx.data["instance_id"])) == {second.ctx.data["security_group_id"]}
    second.leave_cluster("web", last=True)
    second.remove()
    assert leftovers(ec2_client) == {}


def test_join_after_create_and_remove_without_leave_keeps_the_group(aws: Any, ec2_client: Any,
                                                                     tmp_path: Path) -> None:
    solo = member(tmp_path, "solo", cluster=None)
    solo.create()
    assert cluster_groups(ec2_client) == []
    solo.join_cluster("web")
    [group] = cluster_groups(ec2_client)
    assert_closed_to_the_world(ec2_client, group["GroupId"])
    assert group["GroupId"] in groups_of(instance(ec2_client, solo.ctx.data["instance_id"]))
    solo.join_cluster("web")
    assert len(cluster_groups(ec2_client)) == 1

    other = member(tmp_path, "other")
    other.create()
    # remove() of a member never deletes the shared group: only the core's leave_cluster(last=True) does.
    other.remove()
    assert [g["GroupId"] for g in cluster_groups(ec2_client)] == [group["GroupId"]]
    other.leave_cluster("web", last=False)  # after remove: the instance is gone, nothing to detach
    solo.leave_cluster("web", last=True)
    solo.remove()
    assert leftovers(ec2_client) == {}


def test_last_leave_keeps_a_group_another_live_instance_still_uses(aws: Any, ec2_client: Any,
                                                                    tmp_path: Path) -> None:
    """The core counts the members in its store; a member it does not know (another store) keeps the group."""
    first, second = member(tmp_path, "web-1"), member(tmp_path, "web-2")
    first.create()
    second.create()
    first.leave_cluster("web", last=True)
    assert len(cluster_groups(ec2_client)) == 1
    assert any("still used by " + second.ctx.data["instance_id"] in line
               for line in first.ctx.progress.__self__)  # type: ignore[attr-defined]
    second.leave_cluster("web", last=True)
    assert cluster_groups(ec2_client) == []
    first.remove()
    second.remove()
    assert leftovers(ec2_client) == {}


def test_a_concurrent_creator_is_found_not_duplicated(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    """Another member creates the group between our look-up and our create: InvalidGroup.Duplicate."""
    from provision_drivers import aws_cluster

    driver = member(tmp_path, "web-1", cluster=None)
    driver.create()
    vpc = driver.ctx.data["vpc_id"]
    real_find = aws_cluster.find_group
    calls: list[int] = []

    def racing_find(ec2: Any, cluster: str, vpc_id: str) -> Any:
        if not calls:  # the other member's create lands right after our first look-up
            calls.append(1)
            ec2_client.create_security_group(
                GroupName=NAME, VpcId=vpc, Description="made by the other member",
                TagSpecifications=[{"ResourceType": "security-group",
                                    "Tags": [{"Key": TAG_CLUSTER, "Value": "web"}, {"Key": "Name", "Value": NAME}]}])
            return None
        return real_find(ec2, cluster, vpc_id)

    aws_cluster.find_group = racing_find  # type: ignore[assignment]
    try:
        driver.join_cluster("web")
    finally:
        aws_cluster.find_group = real_find  # type: ignore[assignment]
    [group] = cluster_groups(ec2_client)
    assert group["Description"] == "made by the other member"
    assert_closed_to_the_world(ec2_client, group["GroupId"])  # the rules it lacked were added
    driver.leave_cluster("web", last=True)
    driver.remove()
    assert leftovers(ec2_client) == {}


def test_a_failed_create_keeps_the_group_only_while_a_member_remains(aws: Any, ec2_client: Any,
                                                                     tmp_path: Path) -> None:
    first = member(tmp_path, "web-1")
    first.create()
    # RunInstances refuses an unknown instance profile after the cluster group is in place.
    failed = member(tmp_path, "web-2", iam_instance_profile="no-such-profile")
    with pytest.raises(DriverError):
        failed.create()
    assert failed.ctx.data["cluster_groups"]["web"] == first.ctx.data["cluster_groups"]["web"]
    failed.leave_cluster("web", last=False)  # the core's rollback: web-1 remains
    failed.remove()
    assert len(cluster_groups(ec2_client)) == 1
    first.leave_cluster("web", last=True)
    first.remove()

    alone = member(tmp_path, "web-3", iam_instance_profile="no-such-profile")
    with pytest.raises(DriverError):
        alone.create()
    assert len(cluster_groups(ec2_client)) == 1  # made before the instance
    alone.leave_cluster("web", last=True)  # the core's rollback: no member remains
    alone.remove()
    assert leftovers(ec2_client) == {}


def test_a_same_named_group_that_is_not_the_clusters_is_refused_untouched(aws: Any, ec2_client: Any,
                                                                         tmp_path: Path) -> None:
    vpc = ec2_client.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    theirs = ec2_client.create_security_group(GroupName=NAME, VpcId=vpc, Description="someone's")["GroupId"]
    driver = member(tmp_path, "web-1")
    with pytest.raises(DriverError, match="not cluster web's"):
        driver.create()
    driver.leave_cluster("web", last=True)
    driver.remove()
    assert leftovers(ec2_client) == {"security_groups": [theirs]}
    assert ec2_client.describe_security_groups(GroupIds=[theirs])["SecurityGroups"][0]["IpPermissions"] == []


def test_interrupted_cluster_create_at_every_checkpoint_rolls_back(aws: Any, ec2_client: Any,
                                                                   tmp_path: Path) -> None:
    """A crash at any checkpoint of a member's create: the core's leave_cluster(last=True) and remove()
    find everything, the cluster group included, by the record or by the cluster's name."""
    probe = member(tmp_path, "probe")
    checkpoints = 0

    def counting() -> None:
        nonlocal checkpoints
        checkpoints += 1

    probe.ctx.checkpoint = counting
    probe.create()
    probe.ctx.checkpoint = lambda: None
    probe.leave_cluster("web", last=True)
    probe.remove()
    assert leftovers(ec2_client) == {} and checkpoints >= 6
    for n in range(1, checkpoints + 1):
        driver = member(tmp_path, f"m{n}")
        calls = 0

        def failing() -> None:
            nonlocal calls
            calls += 1
            if calls == n:
                raise KeyboardInterrupt(f"injected at checkpoint {n}")

        driver.ctx.checkpoint = failing
        with pytest.raises(KeyboardInterrupt):
            driver.create()
        driver.ctx.checkpoint = lambda: None
        driver.leave_cluster("web", last=True)
        driver.remove()
        assert leftovers(ec2_client) == {}, f"interrupted at checkpoint {n} of {checkpoints}"
