"""The ``local`` driver's cluster network: a virtual Ethernet segment shared by the user's local VMs.

Each machine gets a second NIC on a QEMU ``socket`` netdev that sends its frames to a multicast group
on 127.0.0.1: every QEMU joined to the group sees every frame, as on a hub. The datagrams go out and
back on the loopback interface only (the group is bound to 127.0.0.1, TTL 1), so guest-to-guest traffic
never leaves this computer and no root, bridge or tap device is needed.

A network is named (``--local-network NAME``, default ``default``); its multicast group and port are
derived from the name, so every QEMU of one network finds the others without a registry. Each machine
gets the lowest free address of ``SUBNET`` among the machines of its network (chosen at create under a
store-wide lock) and a MAC derived from that address, both recorded; the guest configures the address
statically with a systemd-networkd file matched by the MAC.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from pathlib import Path

DEFAULT_NETWORK = "default"
SUBNET = ipaddress.IPv4Network("10.213.0.0/16")  # every network uses it: networks are separate segments
FIRST_HOST = 2  # .0.1 stays free (a gateway, should one ever be added)
PORT_BASE, PORT_SPAN = 20000, 20000
NETWORK_FILE = "/etc/systemd/network/10-provision-cluster.network"


def multicast_endpoint(network: str) -> tuple[str, int]:
    """The multicast group (in 230.0.0.0/8) and UDP port that carry ``network``'s frames."""
    digest = hashlib.sha256(b"provision-local-network\0" + network.encode()).digest()
    group = f"230.{digest[0]}.{digest[1]}.{max(1, digest[2])}"
    port = PORT_BASE + int.from_bytes(digest[3:5], "big") % PORT_SPAN
    return group, port


def store_segment(store_root: Path) -> str:
    """An identifier of the store a machine was created in (not its path): part of the segment's key."""
    return hashlib.sha256(str(store_root.resolve()).encode()).hexdigest()[:16]


def segment_key(network: str, segment: str | None) -> str:
    """What ``multicast_endpoint`` hashes: the store's segment and the network name (the name alone for
    machines recorded before segments existed)."""
    return f"{segment}/{network}" if segment else network


def lowest_free_address(used: Iterable[str]) -> str:
    """The lowest address of ``SUBNET`` from ``FIRST_HOST`` on that is not in ``used``."""
    taken = set(used)
    for offset in range(FIRST_HOST, SUBNET.num_addresses - 1):
        candidate = str(SUBNET.network_address + offset)
        if candidate not in taken:
            return candidate
    raise ValueError(f"no free address left in {SUBNET}")


def mac_for(address: str) -> str:
    """A locally administered MAC (QEMU's 52:54 prefix) derived from the address: unique in its network."""
    packed = ipaddress.IPv4Address(address).packed
    return "52:54:%02x:%02x:%02x:%02x" % tuple(packed)


def netdev_args(network: str, mac: str) -> list[str]:
    """QEMU's arguments for the cluster NIC."""
    group, port = multicast_endpoint(network)
    return ["-netdev", f"socket,id=cluster,mcast={group}:{port},localaddr=127.0.0.1",
            "-device", f"virtio-net-pci,netdev=cluster,mac={mac}"]


def networkd_file(mac: str, address: str) -> str:
    """The guest's systemd-networkd config for the cluster NIC (sorts before the DHCP fallback)."""
    return (f"# provision cluster network: static, matched by MAC\n[Match]\nMACAddress={mac}\n\n"
            f"[Network]\nAddress={address}/{SUBNET.prefixlen}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")
