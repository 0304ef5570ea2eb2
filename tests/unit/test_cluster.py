"""Clusters without VMs: the local cluster network's addresses and QEMU arguments, the seed's network
files, address allocation among the store's records, and Swarm mode's majority rules."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
import yaml

from provision.driver import DriverContext
from provision.machines import Machines
from provision.record import MachineRecord
from provision_drivers import clusternet, images, qemu
from provision_drivers.local import LocalDriver
from provision_drivers.seed import render_seed_files


def test_lowest_free_address_fills_gaps() -> None:
    assert clusternet.lowest_free_address([]) == "10.213.0.2"
    assert clusternet.lowest_free_address(["10.213.0.2", "10.213.0.4"]) == "10.213.0.3"
    assert clusternet.lowest_free_address([f"10.213.0.{i}" for i in range(2, 256)]) == "10.213.1.0"


def test_multicast_endpoint_is_stable_per_network_and_differs_between_networks() -> None:
    group, port = clusternet.multicast_endpoint("default")
    assert (group, port) == clusternet.multicast_endpoint("default")
    assert group.startswith("230.") and 20000 <= port < 40000
    assert clusternet.multicast_endpoint("other") != (group, port)


def test_mac_is_derived_from_the_address() -> None:
    assert clusternet.mac_for("10.213.0.2") == "52:54:0a:d5:00:02"
    assert clusternet.mac_for("10.213.1.2") != clusternet.mac_for("10.213.0.2")


def test_qemu_argv_adds_the_cluster_nic_on_loopback_multicast_last(tmp_path: Path) -> None:
    image = images.BaseImage(kind="debian", disk=tmp_path / "base.qcow2", disk_format="qcow2")
    common = dict(name="m", cpus=1, memory_mib=1024, accel="tcg", image=image, overlay=tmp_path / "d.qcow2",
                  seed=tmp_path / "s.iso", ssh_port=40022, host_engine_port=42376, guest_engine_port=2376,
                  console_log=tmp_path / "c.log", qmp_socket=tmp_path / "q.sock", pidfile=tmp_path / "p")
    plain = qemu.QemuConfig(**common).argv()  # type: ignore[arg-type]
    assert not any("id=cluster" in a for a in plain)
    argv = qemu.QemuConfig(**common, cluster_nic=("default", "52:54:0a:d5:00:02")).argv()  # type: ignore[arg-type]
    group, port = clusternet.multicast_endpoint("default")
    netdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]
    assert netdevs[0].startswith("user,id=net0")  # the primary NIC keeps its place
    assert netdevs[1] == f"socket,id=cluster,mcast={group}:{port},localaddr=127.0.0.1"
    assert "virtio-net-pci,netdev=cluster,mac=52:54:0a:d5:00:02" in argv


def test_seed_configures_the_cluster_nic_by_mac(tmp_path: Path) -> None:
    files = render_seed_files(instance_id="i", hostname="m", user="provision", ssh_public_key="ssh-ed25519 AAAA k",
                              with_network_config=True, cluster_nic=("52:54:0a:d5:00:02", "10.213.0.2"))
    config = yaml.safe_load(files["network-config"])
    assert config["ethernets"]["cluster"] == {"match": {"macaddress": "52:54:0a:d5:00:02"},
                                              "addresses": ["10.213.0.2/16"], "dhcp4": False}
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(files["provision-files.tar"])) as archive:  # type: ignore[arg-type]
        network = archive.extractfile(clusternet.NETWORK_FILE.lstrip("/")).read().decode()  # type: ignore[union-attr]
    assert "MACAddress=52:54:0a:d5:00:02" in network and "Address=10.213.0.2/16" in network
    # Without a cluster NIC the seed is what it always was.
    plain = render_seed_files(instance_id="i", hostname="m", user="provision", ssh_public_key="k",
                              with_network_config=True)
    assert "cluster" not in yaml.safe_load(plain["network-config"])["ethernets"]


def test_loopback_multicast_reaches_another_socket_of_the_group() -> None:
    """What QEMU's socket netdev relies on: a datagram to the group on 127.0.0.1 reaches every member."""
    group, port = clusternet.multicast_endpoint("test-" + str(threading.get_ident()))
    members = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((group, port))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton("127.0.0.1"))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        s.settimeout(5)
        members.append(s)
    try:
        members[0].sendto(b"frame", (group, port))
        assert members[1].recv(100) == b"frame"
    finally:
        for s in members:
            s.close()


def _allocate(service: Machines, name: str, network: str | None = None) -> str:
    record = MachineRecord(name=name, driver="local", driver_options={"local_network": network})
    service.store.claim(record)
    driver = service.driver_for(record)
    data = driver.ctx.data

    def checkpoint() -> None:
        service.store.save(record.evolve(driver_data=dict(data)))

    driver.ctx.checkpoint = checkpoint
    driver._allocate_cluster_address()
    return str(data["cluster_ip"])


def test_addresses_are_the_lowest_free_of_the_network_even_when_allocated_concurrently(tmp_path: Path) -> None:
    service = Machines.open(tmp_path / "store", environ={"HOME": str(tmp_path)})
    got: dict[str, str] = {}
    threads = [threading.Thread(target=lambda n=n: got.update({n: _allocate(service, n)})) for n in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got.values()) == ["10.213.0.2", "10.213.0.3", "10.213.0.4"]
    assert _allocate(service, "other", "lab") == "10.213.0.2"  # another network, its own addresses
    service.store.delete("b")
    assert _allocate(service, "d") == got["b"]  # a freed address is reused
    record = service.store.load("d")
    assert LocalDriver(DriverContext("d", tmp_path, tmp_path, {}, data=dict(record.driver_data))).cluster_address() \
        == got["b"]


def test_a_local_machine_made_before_clusters_has_no_cluster_address(tmp_path: Path) -> None:
    from provision.errors import DriverError

    with pytest.raises(DriverError, match="no cluster network"):
        LocalDriver(DriverContext("m", tmp_path, tmp_path, {})).cluster_address()


# -- majority rules ------------------------------------------------------------------------------------

def test_majority_rules() -> None:
    from provision.swarm import SwarmError, check_last_manager, check_majority

    check_majority({"a": True})
    check_majority({"a": True, "b": True, "c": False})
    check_majority({"a": True, "b": True, "c": True}, removing="c")  # 2 of 2 left
    check_majority({"a": True, "b": True, "c": False}, removing="c")  # the unreachable one goes: 2 of 2
    with pytest.raises(SwarmError, match="1 of 3 managers are reachable"):
        check_majority({"a": True, "b": False, "c": False})
    with pytest.raises(SwarmError, match="no majority"):
        check_majority({"a": True, "b": False}, removing="c")  # 1 of 2: already without a majority
    with pytest.raises(SwarmError, match="would leave 1 of 2"):
        check_majority({"a": True, "b": True, "c": False}, removing="a")
    check_majority({"a": True, "b": True, "c": False, "d": True}, removing="d")  # 2 of 3 left
    with pytest.raises(SwarmError, match="would leave 2 of 4"):
        check_majority({"a": True, "b": False, "c": False, "d": True, "e": True}, removing="e")
    check_last_manager(1, 0, force=False, name="m")
    check_last_manager(2, 3, force=False, name="m")
    check_last_manager(1, 2, force=True, name="m")
    with pytest.raises(SwarmError, match="last manager of a cluster that still has 2 worker"):
        check_last_manager(1, 2, force=False, name="m")


# -- several machines at once ----------------------------------------------------------------------------

def test_create_many_creates_concurrently_and_rolls_back_only_the_failed_one(tmp_path: Path) -> None:
    from provision.fleet import create_many
    from provision.machines import CreateRequest, Machines

    service = Machines.open(tmp_path / "store", environ={"HOME": str(tmp_path)})
    service.store.claim(MachineRecord(name="web-2", driver="none"))  # taken: the whole request is refused
    with pytest.raises(Exception, match='"web-2" already exists'):
        create_many(service, CreateRequest("web", "none", {"url": "tcp://127.0.0.1:1"}), 3)
    service.store.delete("web-2")
    seen: list[tuple[str, str]] = []
    real_create = Machines.create

    def create(self: Machines, request: CreateRequest) -> MachineRecord:
        if request.name == "web-2":
            from dataclasses import replace

            request = replace(request, driver_flags={"url": "http://not-tcp"})  # the none driver refuses it
        return real_create(self, request)

    Machines.create = create  # type: ignore[method-assign]
    try:
        result = create_many(service, CreateRequest("web", "none", {"url": "tcp://127.0.0.1:1"}), 3, parallel=2,
                             progress=lambda machine, message: seen.append((machine, message)))
    finally:
        Machines.create = real_create  # type: ignore[method-assign]
    assert [r.name for r in result.created] == ["web-1", "web-3"]
    assert list(result.failed) == ["web-2"] and "tcp://HOST:PORT" in result.failed["web-2"]
    assert service.store.names() == ["web-1", "web-3"]
    assert {m for m, _ in seen} == {"web-1", "web-2", "web-3"}  # every line names its machine


def test_ls_swarm_column_from_the_record(tmp_path: Path) -> None:
    from provision.machines import swarm_column

    base = MachineRecord(name="web-1", driver="none")
    assert swarm_column(base) == ""
    assert swarm_column(base.evolve(cluster="web", swarm_role="manager", swarm_manager="web-1")) == "web-1 (manager)"
    assert swarm_column(base.evolve(name="web-2", cluster="web", swarm_role="worker", swarm_manager="web-1")) == "web-1"


def test_bad_swarm_input_gets_one_clear_line_and_changes_nothing(tmp_path: Path) -> None:
    from clirun import run

    run("create", "-d", "none", "--url", "tcp://127.0.0.1:1", "a", check=True)
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:1", "b", check=True)
    before = {name: (tmp_path / "home" / "store" / "machines" / name / "machine.json").read_text() for name in "ab"}
    refused = run("swarm", "join", "a", "b")
    assert refused.returncode != 0
    assert 'machine "a" is not a swarm manager' in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    unreachable = run("swarm", "init", "a")  # the engine does not answer: said in one line, nothing recorded
    assert unreachable.returncode != 0 and 'Docker on machine "a" does not answer' in unreachable.stderr
    for flags, message in ((["-n", "2", "--swarm-managers", "2"], "--swarm-managers goes with --swarm"),
                           (["-n", "2", "--swarm", "x", "--swarm-managers", "3"], "between 1 and the number"),
                           (["--swarm-join", "a"], 'machine "a" is not a swarm manager')):
        result = run("create", "-d", "none", "--url", "tcp://127.0.0.1:1", *flags, "c")
        assert result.returncode != 0 and message in result.stderr, result.stderr
    after = {name: (tmp_path / "home" / "store" / "machines" / name / "machine.json").read_text() for name in "ab"}
    assert after == before
    assert sorted(p.name for p in (tmp_path / "home" / "store" / "machines").iterdir()) == ["a", "b"]
    assert run("ls", "-q", check=True).stdout.split() == ["a", "b"]


def test_env_swarm_points_at_a_manager_and_ls_shows_the_swarm_column(tmp_path: Path) -> None:
    from clirun import run

    from provision.store import Store

    run("create", "-d", "none", "--url", "tcp://127.0.0.1:1", "m", check=True)
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:2", "w", check=True)
    store = Store(tmp_path / "home" / "store")
    for name, role in (("m", "manager"), ("w", "worker")):
        with store.edit(name) as record:
            store.save(record.evolve(cluster="m", swarm_role=role, swarm_manager="m"))
    env = run("env", "--shell", "bash", "--swarm", "w", check=True).stdout
    assert 'DOCKER_HOST="tcp://127.0.0.1:1"' in env
    assert 'DOCKER_HOST="tcp://127.0.0.1:1"' in run("env", "--shell", "bash", "--swarm", "m", check=True).stdout
    table = run("ls", "-t", "1", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "ACTIVE", "DRIVER", "STATE", "URL", "SWARM", "DOCKER", "ERRORS"]
    assert "m (manager)" in table[1] and table[2].split()[5] == "m"
    assert run("ls", "--format", "{{.Name}} {{.Swarm}}", check=True).stdout == "m m (manager)\nw m\n"


def test_machine_lines_prefix_each_line_with_its_machine() -> None:
    import io

    from provision.cli.progress import MachineLines

    stream = io.StringIO()
    with MachineLines(["a-1", "a-2"], stream=stream) as lines:
        lines.step("a-2", "booting")
        lines.step("a-1", "created")
    printed = stream.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in printed] == ["a-2: booting", "a-1: created"]


def test_two_stores_never_share_a_local_cluster_segment(tmp_path: Path) -> None:
    """Addresses are unique within one store: another store's machines (another project or user on this
    host) must sit on another multicast segment, or both would answer at 10.213.0.2."""
    from provision_drivers import clusternet

    one = clusternet.segment_key("default", clusternet.store_segment(tmp_path / "a"))
    two = clusternet.segment_key("default", clusternet.store_segment(tmp_path / "b"))
    assert clusternet.multicast_endpoint(one) != clusternet.multicast_endpoint(two)
    assert clusternet.segment_key("default", None) == "default"  # machines recorded before segments existed


def test_a_new_node_joins_through_the_leader_then_the_reachable_managers() -> None:
    from types import SimpleNamespace

    from provision.swarm import _join_addresses

    def node(status: dict | None) -> SimpleNamespace:
        return SimpleNamespace(attrs={"ManagerStatus": status} if status is not None else {})

    nodes = {
        "w": node(None),  # a worker: no address to join through
        "m2": node({"Addr": "10.0.0.3:2377", "Reachability": "reachable"}),
        "m3": node({"Addr": "10.0.0.4:2377", "Reachability": "unknown"}),  # joining this moment
        "m1": node({"Addr": "10.0.0.2:2377", "Reachability": "reachable", "Leader": True}),
        "m4": node({"Addr": "10.0.0.5:2377", "Reachability": "unreachable"}),
    }
    assert _join_addresses(nodes) == ["10.0.0.2:2377", "10.0.0.3:2377"]
    assert _join_addresses({"w": node(None)}) == []


def test_the_threads_of_one_command_share_one_engine_client_per_machine(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    """A fleet's joins all ask the leader: one client (one TLS handshake) for it, however many threads ask at
    once; a machine dropped gets a fresh one next time; close closes every client made."""
    from provision import swarm

    made: list[str] = []
    closed: list[str] = []
    first_call = threading.Event()

    class Client:
        def __init__(self, name: str) -> None:
            self.name = name

        def close(self) -> None:
            closed.append(self.name)

    def slow_client(service: object, record: MachineRecord) -> Client:
        made.append(record.name)
        first_call.wait(0.2)  # the other threads arrive while the first is still connecting
        return Client(record.name)

    monkeypatch.setattr(swarm, "client", slow_client)
    engines = swarm.EngineClients(Machines.open(tmp_path / "store"))
    leader = MachineRecord(name="m1", driver="none", url="tcp://10.0.0.2:2376")
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(engines.get(leader))) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == ["m1"] and len(got) == 16 and len({id(c) for c in got}) == 1

    worker = MachineRecord(name="w1", driver="none", url="tcp://10.0.0.3:2376")
    engines.get(worker)
    engines.drop("w1")
    assert closed == ["w1"]
    engines.get(worker)
    assert made == ["m1", "w1", "w1"]
    engines.close()
    assert sorted(closed) == ["m1", "w1", "w1"]
