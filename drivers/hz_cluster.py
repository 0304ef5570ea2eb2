"""The hetzner driver's cluster door: one private network per cluster, shared by its members only.

Hetzner's firewalls filter public interfaces only, and a private network reaches nothing but the servers
attached to it: the swarm ports (2377/tcp, 7946/tcp+udp, 4789/udp) between members travel over the
cluster's network ``provision-cluster-<cluster>``, and each member advertises its address there. The
network is labelled ``provision-cluster=<that name>``; a same-named network without the label is never
adopted or deleted. Its one subnet lies in the network zone of the first member; a member elsewhere is
refused with a hint, since servers attach only to subnets of their own zone.

The network comes with the first member and goes with the last (the core says which is last; Hetzner
knows of servers another store attached, and those keep it).
"""

from __future__ import annotations

from typing import Any, Protocol

from provision.driver import DriverContext
from provision.errors import DriverError

from .clusters import cluster_label
from .hz_api import ResourceNotFound
from .hz_token import DRIVER


class Member(Protocol):
    """What the cluster door needs of the hetzner driver."""

    ctx: DriverContext

    def api(self) -> tuple[Any, Any]: ...

    def server(self, client: Any, errors: Any) -> Any: ...

    def save(self, **values: Any) -> None: ...

    def wait(self, action: Any, what: str) -> None: ...

    def refresh(self) -> bool: ...

LABEL_CLUSTER = "provision-cluster"
IP_RANGE = "10.77.0.0/16"  # every cluster network is its own: they may all use the same range


def _find(client: Any, errors: Any, cluster: str, *, refuse: bool = True) -> Any | None:
    """The cluster's network. A same-named network without the cluster's label is refused, or with
    ``refuse`` off simply not the cluster's."""
    name = cluster_label(cluster)
    with errors(f"Looking up network {name}"):
        network = client.networks.get_by_name(name)
    if network is not None and (network.labels or {}).get(LABEL_CLUSTER) != name:
        if not refuse:
            return None
        raise DriverError(f"Network {name} ({network.id}) exists but is not cluster {cluster}'s (no "
                          f"{LABEL_CLUSTER}={name} label)", driver=DRIVER,
                          hint="rename or delete that network; provision never adopts it")
    return network


def _ensure(driver: Member, client: Any, errors: Any, cluster: str, zone: str) -> Any:
    from hcloud import APIException
    from hcloud.networks import NetworkSubnet

    name = cluster_label(cluster)
    network = _find(client, errors, cluster)
    if network is None:
        driver.ctx.progress(f"Creating network {name} for cluster {cluster}")
        with errors(f"Creating network {name}"):
            try:
                network = client.networks.create(
                    name=name, ip_range=IP_RANGE, labels={LABEL_CLUSTER: name, "provisioned-by": "provision"},
                    subnets=[NetworkSubnet(type="cloud", ip_range=IP_RANGE, network_zone=zone)])
            except APIException as exc:
                if exc.code != "uniqueness_error":
                    raise
        if network is None:  # another member made it between our look and our create
            network = _find(client, errors, cluster)
        if network is None:
            raise DriverError(f"Network {name} was neither created nor found", driver=DRIVER)
    zones = {subnet.network_zone for subnet in network.subnets or []}
    if zone not in zones:
        raise DriverError(f"Cluster {cluster}'s network {name} is in network zone {', '.join(sorted(zones))}, this "
                          f"machine in {zone}", driver=DRIVER,
                          hint="the members of a cluster share a network zone: give --hetzner-server-location")
    return network


def join(driver: Member, cluster: str) -> None:
    client, errors = driver.api()
    server = driver.server(client, errors)
    zone = server.location.network_zone if server.location else None
    if not zone:
        raise DriverError(f"Server {server.id} has no location yet", driver=DRIVER)
    networks = dict(driver.ctx.data.get("cluster_networks") or {})
    networks.setdefault(cluster, None)
    driver.save(cluster_networks=networks)  # before the network may exist: leave() finds it by name
    network = _ensure(driver, client, errors, cluster, zone)
    driver.save(cluster_networks={**networks, cluster: network.id})
    if network.id not in {p.network.id for p in server.private_net or []}:
        what = f"Attaching server {server.id} to network {network.name}"
        driver.ctx.progress(what)
        with errors(what):
            action = client.servers.attach_to_network(server, network)
        driver.wait(action, what)
    driver.refresh()


def cluster_ip(driver: Member) -> str:
    data = driver.ctx.data
    network_id = (data.get("cluster_networks") or {}).get(driver.ctx.cluster or "")
    address = (data.get("private_ips") or {}).get(str(network_id)) if network_id else None
    if not address:
        raise DriverError(f'Machine "{driver.ctx.machine_name}" is on no cluster network', driver=DRIVER,
                          hint="make cluster members with `create -d hetzner ... --swarm` (or --swarm-join): "
                               "they meet on a private network of their own")
    return str(address)


def leave(driver: Member, cluster: str, *, last: bool) -> None:
    data = driver.ctx.data
    if not data.get("uid"):
        return  # create() failed before it made anything, a network included
    client, errors = driver.api()
    network_id = (data.get("cluster_networks") or {}).get(cluster)
    network = None
    try:
        if network_id:
            with errors(f"Reading network {network_id}"):
                network = client.networks.get_by_id(int(network_id))
        else:
            network = _find(client, errors, cluster, refuse=False)
    except ResourceNotFound:
        network = None
    if network is not None:
        members = {s.id for s in network.servers or []}
        server_id = data.get("server_id")
        if server_id and int(server_id) in members:
            what = f"Detaching server {server_id} from network {network.name}"
            driver.ctx.progress(what)
            try:
                with errors(what):
                    action = client.servers.detach_from_network(client.servers.get_by_id(int(server_id)), network)
                driver.wait(action, what)
            except ResourceNotFound:
                pass  # the server is gone, and its attachment with it
            members.discard(int(server_id))
        if last and members:
            driver.ctx.progress(f"Keeping network {network.name}: servers {sorted(members)} still use it")
        elif last:
            driver.ctx.progress(f"Deleting network {network.name}")
            try:
                with errors(f"Deleting network {network.name}"):
                    client.networks.delete(network)
            except ResourceNotFound:
                pass
    driver.save(cluster_networks={k: v for k, v in (data.get("cluster_networks") or {}).items() if k != cluster})
