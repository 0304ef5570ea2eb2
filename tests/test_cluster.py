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
                  seed=tmp_path / "s.iso", ssh_port=40022, engine_port=42376, guest_engine_port=2376,
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
    import base64

    manifest = {line.split()[1]: base64.b64decode(line.split()[2]).decode()
                for line in files["provision-engine-files"].splitlines()}
    network = manifest[clusternet.NETWORK_FILE]
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
