"""The google driver's cluster door against the Compute Engine fake: one firewall rule per cluster,
from the cluster's network tag to the same tag, created with the first member and deleted with the last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fake_gce import Fault
from fixtures_gce import GCE
from provision.errors import DriverError
from provision_drivers.google import GoogleDriver
from test_google import interrupt_at_each_checkpoint, make_driver, reopen

pytestmark = pytest.mark.gce
ZONE = "us-central1-a"
TAG = "provision-cluster-web"
SWARM_ALLOWED = [{"IPProtocol": "tcp", "ports": ["2377", "7946"]}, {"IPProtocol": "udp", "ports": ["7946", "4789"]}]


def member(gce: GCE, tmp_path: Path, name: str, cluster: str | None = "web", **options: Any) -> GoogleDriver:
    driver = make_driver(gce, tmp_path, name, **options)
    driver.ctx.cluster = cluster
    return driver


def tags_of(gce: GCE, name: str) -> list[str]:
    instance = gce.fake.instance("test-project", ZONE, name)
    assert instance is not None
    return list(instance["tags"].get("items", []))


def assert_rule_is_closed_to_the_world(rule: dict[str, Any] | None) -> None:
    assert rule is not None
    assert "sourceRanges" not in rule  # the fake, like the API, fills in 0.0.0.0/0 when no source is named
    assert rule["sourceTags"] == [TAG] and rule["targetTags"] == [TAG]
    assert rule["allowed"] == SWARM_ALLOWED and rule["direction"] == "INGRESS"
    assert rule["network"].endswith("/global/networks/default")


def set_tags_calls(gce: GCE) -> int:
    return sum(1 for r in gce.fake.requests if r["path"].endswith("/setTags"))


def test_rule_comes_with_the_first_member_and_goes_with_the_last(gce: GCE, tmp_path: Path) -> None:
    baseline = gce.fake.resources()
    first = member(gce, tmp_path, "web-1")
    first.create()
    assert first.capabilities.cluster
    assert_rule_is_closed_to_the_world(gce.fake.firewall("test-project", TAG))
    assert tags_of(gce, "web-1") == ["provision-web-1", TAG]  # tagged at insert: no setTags needed
    assert set_tags_calls(gce) == 0
    second = member(gce, tmp_path, "web-2")
    second.create()  # the rule exists already (409): fine
    assert tags_of(gce, "web-2") == ["provision-web-2", TAG]
    assert first.cluster_address() == first.ctx.data["internal_ip"] != second.cluster_address()
    assert first.cluster_address().startswith("10.128.0.")

    # The core joins after create as well: nothing changes, nothing is written.
    first.join_cluster("web")
    reopen(second).join_cluster("web")
    assert set_tags_calls(gce) == 0 and tags_of(gce, "web-1") == ["provision-web-1", TAG]

    # The first member leaves and is removed; the other still needs the rule.
    first = reopen(first)
    first.leave_cluster("web", last=False)
    assert tags_of(gce, "web-1") == ["provision-web-1"]
    first.remove()
    assert_rule_is_closed_to_the_world(gce.fake.firewall("test-project", TAG))

    # The last member takes the rule with it; again is already done.
    second = reopen(second)
    second.leave_cluster("web", last=True)
    assert gce.fake.firewall("test-project", TAG) is None
    assert tags_of(gce, "web-2") == ["provision-web-2"]
    second.leave_cluster("web", last=True)
    second.remove()
    assert gce.fake.resources() == baseline


def test_join_after_create_adds_the_tag_once_keeping_the_others(gce: GCE, tmp_path: Path) -> None:
    baseline = gce.fake.resources()
    driver = member(gce, tmp_path, "solo", cluster=None, google_tags=["web"])
    driver.create()
    assert gce.fake.firewall("test-project", TAG) is None
    driver.join_cluster("web")
    assert tags_of(gce, "solo") == ["provision-solo", "web", TAG]
    assert_rule_is_closed_to_the_world(gce.fake.firewall("test-project", TAG))
    calls = set_tags_calls(gce)
    reopen(driver).join_cluster("web")
    assert set_tags_calls(gce) == calls == 1
    body = [r for r in gce.fake.requests if r["path"].endswith("/setTags")][0]
    assert body["method"] == "POST" and body["path"] == \
        f"/compute/v1/projects/test-project/zones/{ZONE}/instances/solo/setTags"
    later = reopen(driver)
    later.leave_cluster("web", last=True)
    later.remove()
    assert gce.fake.resources() == baseline


def test_a_tag_writer_racing_us_is_kept(gce: GCE, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    driver = member(gce, tmp_path, "race", cluster=None)
    driver.create()
    fake = gce.fake
    original = fake.instances_set_tags
    raced = []

    def someone_else_first(project: Any, zone: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if not raced:  # another tool sets a tag between our read and our write
            raced.append(True)
            tags = project.instances[zone][name]["tags"]
            tags["items"] = [*tags.get("items", []), "theirs"]
            tags["fingerprint"] = "changed-by-them"
        return original(project, zone, name, body)

    monkeypatch.setattr(fake, "instances_set_tags", someone_else_first)
    driver.join_cluster("web")
    assert raced and tags_of(gce, "race") == ["provision-race", "theirs", TAG]
    driver.leave_cluster("web", last=True)
    assert tags_of(gce, "race") == ["provision-race", "theirs"]
    driver.remove()


def test_a_failed_create_keeps_the_rule_for_the_members_that_remain(gce: GCE, tmp_path: Path) -> None:
    baseline = gce.fake.resources()
    first = member(gce, tmp_path, "web-1")
    first.create()
    gce.fake.inject(Fault("instances.insert"))
    failed = member(gce, tmp_path, "web-2")
    with pytest.raises(DriverError, match="ZONE_RESOURCE_POOL_EXHAUSTED"):
        failed.create()
    # The core's rollback: web-1 remains, so this is not the last member.
    failed.leave_cluster("web", last=False)
    failed.remove()
    assert_rule_is_closed_to_the_world(gce.fake.firewall("test-project", TAG))
    assert gce.fake.instance("test-project", ZONE, "web-2") is None

    # A cluster whose only member fails to be made keeps nothing.
    first.leave_cluster("web", last=True)
    first.remove()
    gce.fake.inject(Fault("instances.insert"))
    alone = member(gce, tmp_path, "web-3")
    with pytest.raises(DriverError):
        alone.create()
    assert gce.fake.firewall("test-project", TAG) is not None  # created before the instance
    alone.leave_cluster("web", last=True)
    alone.remove()
    assert gce.fake.resources() == baseline


def test_a_same_named_rule_that_is_not_the_clusters_is_refused_untouched(gce: GCE, tmp_path: Path) -> None:
    with gce.fake.lock:
        project = gce.fake.projects["test-project"]
        project.firewalls[TAG] = gce.fake._firewall_body("test-project", {
            "name": TAG, "network": "global/networks/default", "targetTags": [TAG],
            "allowed": [{"IPProtocol": "tcp", "ports": ["2377"]}]})  # no source: the world
    before = gce.fake.firewall("test-project", TAG)
    driver = member(gce, tmp_path, "web-1")
    with pytest.raises(DriverError, match="not cluster web's"):
        driver.create()
    driver.remove()
    assert gce.fake.firewall("test-project", TAG) == before
    assert gce.fake.instance("test-project", ZONE, "web-1") is None


def test_members_on_another_network_are_refused(gce: GCE, tmp_path: Path) -> None:
    with gce.fake.lock:
        project = gce.fake.projects["test-project"]
        project.networks["other"] = gce.fake._network_body("test-project", "other")
    first = member(gce, tmp_path, "web-1")
    first.create()
    elsewhere = member(gce, tmp_path, "web-2", google_network="other")
    with pytest.raises(DriverError, match="must share a network|on network default"):
        elsewhere.create()
    elsewhere.leave_cluster("web", last=False)
    elsewhere.remove()
    first.leave_cluster("web", last=True)
    first.remove()
    assert gce.fake.firewall("test-project", TAG) is None


def test_cluster_names_that_are_not_labels(gce: GCE, tmp_path: Path) -> None:
    driver = member(gce, tmp_path, "m1", cluster="Web.Prod")
    driver.create()
    tag = [t for t in tags_of(gce, "m1") if t.startswith("provision-cluster-")][0]
    assert tag.startswith("provision-cluster-web-prod-") and len(tag) <= 63
    rule = gce.fake.firewall("test-project", tag)
    assert rule is not None and rule["sourceTags"] == rule["targetTags"] == [tag] and "sourceRanges" not in rule
    driver.leave_cluster("Web.Prod", last=True)
    driver.remove()
    assert gce.fake.firewall("test-project", tag) is None


def test_an_interrupt_at_every_checkpoint_of_a_member_is_cleaned_up(gce: GCE, tmp_path: Path) -> None:
    baseline = gce.fake.resources()

    def clean_up(later: GoogleDriver) -> None:
        later.leave_cluster("web", last=True)
        later.remove()

    driver, _ = interrupt_at_each_checkpoint(
        gce, lambda n: member(gce, tmp_path, f"int{n}", interrupt_at=n), clean_up)
    snapshots = driver.ctx.checkpoint.snapshots
    # The rule's name is on record before the rule can exist, and before the instance that carries its tag.
    first_rule = next(i for i, s in enumerate(snapshots) if s.get("cluster_rules", {}).get("web") == TAG)
    assert first_rule < next(i for i, s in enumerate(snapshots) if "instance" in s)
    driver.ctx.checkpoint.interrupt_at = None
    driver.leave_cluster("web", last=True)
    driver.remove()
    assert gce.fake.resources() == baseline
