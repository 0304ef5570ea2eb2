"""What the cloud drivers share about clusters: the swarm ports and the name of a cluster's shared door.

Every member of a cluster derives the same name from the cluster's name, so whichever member comes
first creates the shared security group or firewall rule and the others find it by that name.
"""

from __future__ import annotations

import hashlib
import re

# Swarm mode between members: cluster management (managers), node gossip, overlay (VXLAN) traffic.
SWARM_PORTS: tuple[tuple[int, str], ...] = ((2377, "tcp"), (7946, "tcp"), (7946, "udp"), (4789, "udp"))
PREFIX = "provision-cluster-"
_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def cluster_label(cluster: str) -> str:
    """``provision-cluster-<cluster>`` as a lower-case RFC 1035 label (63 characters at most), usable as a
    Compute Engine network tag, firewall name or EC2 group name. A name that had to be changed to fit
    (upper case, dots, length) gets a short hash of the original, so two clusters never share a door."""
    plain = PREFIX + cluster
    label = re.sub(r"[^a-z0-9-]", "-", plain.lower())
    if label == plain and _LABEL.fullmatch(label):
        return label
    digest = hashlib.sha256(cluster.encode()).hexdigest()[:8]
    return f"{label[:63 - 9].rstrip('-')}-{digest}"


def swarm_ports_by_protocol() -> dict[str, list[str]]:
    by_protocol: dict[str, list[str]] = {}
    for port, protocol in SWARM_PORTS:
        by_protocol.setdefault(protocol, []).append(str(port))
    return by_protocol
