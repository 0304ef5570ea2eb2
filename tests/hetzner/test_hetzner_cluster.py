"""The hetzner driver's cluster door against the fake: a private network per cluster, made with the first
member, joined by the others, deleted with the last; members advertise their addresses on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fake_hetzner import Fault
from fixtures_hetzner import Hetzner, hetzner  # noqa: F401 (fixture used by name)
from provision.errors import DriverError
from provision_drivers.hetzner import HetznerDriver
from test_hetzner import make_driver, reopen

pytestmark = pytest.mark.hetzner
NETWORK = "provision-cluster-web"
EMPTY = {"servers": [], "ssh_keys": [], "firewalls": [], "networks": []}


def member(env: Hetzner, tmp_path: Path, name: str, cluster: str | None = "web", **options: Any) -> HetznerDriver:
    driver = make_driver(env, tmp_path, name, **options)
    driver.ctx.cluster = cluster
    return driver


def rollback(driver: HetznerDriver, *, last: bool) -> None:
    """What the core does when a member goes: close its cluster door, then remove it."""
    later = reopen(driver)
    if later.ctx.cluster:
        later.leave_cluster(later.ctx.cluster, last=last)
    later.remove()


def test_the_network_comes_with_the_first_member_and_goes_with_the_last(hetzner: Hetzner, tmp_path: Path) -> None:
    fake = hetzner.fake
    first = member(hetzner, tmp_path, "web-1")
    first.create()
    network = fake.find("networks", NETWORK)
    assert network is not None and network["labels"] == {"provision-cluster": NETWORK, "provisioned-by": "provision"}
    assert [s["network_zone"] for s in network["subnets"]] == ["eu-central"]
    second = member(hetzner, tmp_path, "web-2")
    second.create()
    assert sorted(fake.find("networks", NETWORK)["servers"]) == sorted(
        [first.ctx.data["server_id"], second.ctx.data["server_id"]])
    a, b = first.cluster_address(), second.cluster_address()
    assert a != b and a.startswith("10.77.") and b.startswith("10.77.")
    assert first.ip() == first.ctx.data["public_ipv4"]  # the engine stays on the public address
    assert a in first.addresses()  # and the certificate covers the cluster address too
    joins = sum(1 for r in fake.requests if r["path"].endswith("/attach_to_network"))
    reopen(first).join_cluster("web")  # the core joins again before swarm join: nothing to do
    assert sum(1 for r in fake.requests if r["path"].endswith("/attach_to_network")) == joins == 2

    rollback(first, last=False)
    assert fake.find("networks", NETWORK)["servers"] == [second.ctx.data["server_id"]]
    rollback(second, last=True)
    assert fake.resources() == EMPTY


def test_the_last_member_here_keeps_a_network_other_servers_still_use(hetzner: Hetzner, tmp_path: Path) -> None:
    ours = member(hetzner, tmp_path / "a", "web-1")
    ours.create()
    theirs = member(hetzner, tmp_path / "b", "web-9")  # another store's member
    theirs.create()
    rollback(ours, last=True)  # last of this store, not of the cloud
    assert hetzner.fake.find("networks", NETWORK)["servers"] == [theirs.ctx.data["server_id"]]
    rollback(theirs, last=True)
    assert hetzner.fake.resources() == EMPTY


def test_a_member_in_another_network_zone_is_refused(hetzner: Hetzner, tmp_path: Path) -> None:
    first = member(hetzner, tmp_path, "web-1", hetzner_server_location="nbg1")
    first.create()
    far = member(hetzner, tmp_path, "web-2", hetzner_server_location="ash")
    with pytest.raises(DriverError, match="network zone eu-central, this machine in us-east") as caught:
        far.create()
    assert "--hetzner-server-location" in (caught.value.hint or "")
    rollback(far, last=False)
    rollback(first, last=True)
    assert hetzner.fake.resources() == EMPTY


def test_a_same_named_network_of_someone_else_is_never_adopted(hetzner: Hetzner, tmp_path: Path) -> None:
    hetzner.fake.add_network(NETWORK)
    driver = member(hetzner, tmp_path, "web-1")
    with pytest.raises(DriverError, match="exists but is not cluster web's"):
        driver.create()
    rollback(driver, last=True)
    assert hetzner.fake.resources() == {**EMPTY, "networks": [NETWORK]}


@pytest.mark.parametrize("fault", [
    Fault("POST /servers/{id}/actions/attach_to_network", code="ip_not_available", message="no IP left",
          action_error=True),
    Fault("POST /networks", code="resource_limit_exceeded", message="network limit exceeded"),
])
def test_a_failed_join_at_create_leaves_nothing(hetzner: Hetzner, tmp_path: Path, fault: Fault) -> None:
    hetzner.fake.inject(fault)
    driver = member(hetzner, tmp_path, "web-1")
    with pytest.raises(DriverError, match=fault.message):
        driver.create()
    rollback(driver, last=True)
    assert hetzner.fake.resources() == EMPTY


def test_a_machine_on_no_cluster_network_says_how_to_get_one(hetzner: Hetzner, tmp_path: Path) -> None:
    driver = member(hetzner, tmp_path, "solo", cluster=None)
    driver.create()
    with pytest.raises(DriverError, match="is on no cluster network") as caught:
        driver.cluster_address()
    assert "--swarm" in (caught.value.hint or "")
    driver.ctx.cluster = "web"
    driver.join_cluster("web")  # a later join attaches it
    assert driver.cluster_address().startswith("10.77.")
    rollback(driver, last=True)
    assert hetzner.fake.resources() == EMPTY


def test_members_created_at_once_share_one_network(hetzner: Hetzner, tmp_path: Path) -> None:
    """`create -n 2 --swarm` makes its members concurrently: both may find no network and create one; the
    loser of that race (uniqueness_error) joins the winner's."""
    from concurrent.futures import ThreadPoolExecutor

    members = [member(hetzner, tmp_path, f"web-{n}") for n in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda driver: driver.create(), members))
    assert hetzner.fake.resources()["networks"] == [NETWORK]
    ids = {m.ctx.data["cluster_networks"]["web"] for m in members}
    assert len(ids) == 1 and len({m.cluster_address() for m in members}) == 2
    rollback(members[0], last=False)
    rollback(members[1], last=True)
    assert hetzner.fake.resources() == EMPTY


def test_the_loser_of_the_network_race_joins_the_winners(hetzner: Hetzner, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from provision_drivers import hz_cluster

    first = member(hetzner, tmp_path, "web-1")
    first.create()
    real, looks = hz_cluster._find, []

    def missed_once(*args: Any, **kwargs: Any) -> Any:
        looks.append(1)
        return None if len(looks) == 1 else real(*args, **kwargs)  # made by web-1 just after this look

    monkeypatch.setattr(hz_cluster, "_find", missed_once)
    second = member(hetzner, tmp_path, "web-2")
    second.create()
    posts = [r for r in hetzner.fake.requests if (r["method"], r["path"]) == ("POST", "/v1/networks")]
    assert len(posts) == 2 and hetzner.fake.resources()["networks"] == [NETWORK]
    assert second.ctx.data["cluster_networks"] == first.ctx.data["cluster_networks"]
    monkeypatch.setattr(hz_cluster, "_find", real)
    rollback(first, last=False)
    rollback(second, last=True)
    assert hetzner.fake.resources() == EMPTY
