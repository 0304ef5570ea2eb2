"""The ``google`` driver: a Compute Engine instance with Docker, reached over SSH and TLS on 2376.

What it makes, each recorded in ``ctx.data`` (and checkpointed) the moment the API accepts it:
- a firewall rule owned by this machine, ``provision-<instance>``, on the machine's network, opening
  SSH, the engine port 2376 and any ``--google-open-port`` to ``--google-allowed-source-range``,
  for the network tag ``provision-<instance>`` that only this machine carries, so ``remove`` can delete
  it without asking whether another machine still relies on it;
- the instance, labelled ``provisioned-by=provision``, with a boot disk (auto-delete) of the same name.

The machine's SSH key goes into the instance metadata ``ssh-keys`` as ``USER:KEY``. Project metadata is
never written; instance metadata is only ever merged (read with its fingerprint, our line added, every
other item and key line kept), so keys put there by other tools survive.

``kill`` is a ``stop`` with ``noGracefulShutdown``: Compute Engine has no instant power-off, but this
skips the instance's graceful-shutdown period. ``restart`` is a ``reset`` (a hard reset that keeps the
addresses). After ``start`` an ephemeral external IP is usually new: ``refresh`` reports that.

Credentials come from Application Default Credentials, read afresh for every operation.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from provision.errors import DriverError, UsageError

from provision.driver import KEEP_SHARED, Capabilities, Driver, MachineState, OptionSpec, SSHEndpoint
from .clusters import cluster_label, swarm_ports_by_protocol
from .gce_api import DRIVER, ComputeApi, ResourceNotFound, ignore_missing, last_segment, load_credentials

DEFAULT_IMAGE_PROJECT = "debian-cloud"
DEFAULT_IMAGE_FAMILY = "debian-12"
LABEL_KEY = "provisioned-by"
LABEL_VALUE = "provision"
MACHINE_LABEL = "provision-machine"
SSH_PORT = 22
# Bounds for operations: an instance insert can take a few minutes when a zone is busy.
INSERT_TIMEOUT = 600.0
LIFECYCLE_TIMEOUT = 300.0
SMALL_TIMEOUT = 180.0

NAME_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
PORT_RE = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?(?:/(tcp|udp|sctp))?")

# https://cloud.google.com/compute/docs/instances/instance-life-cycle
STATES: dict[str, MachineState] = {
    "PROVISIONING": MachineState.STARTING,
    "STAGING": MachineState.STARTING,
    "RUNNING": MachineState.RUNNING,
    "STOPPING": MachineState.STOPPING,
    "SUSPENDING": MachineState.STOPPING,
    "STOPPED": MachineState.STOPPED,
    "TERMINATED": MachineState.STOPPED,
    "SUSPENDED": MachineState.PAUSED,
    "REPAIRING": MachineState.ERROR,
}


def _opt(flag: str, help: str, **kw: Any) -> OptionSpec:
    envvar = "GOOGLE_" + flag.upper().replace("-", "_")
    return OptionSpec(flag=f"google-{flag}", help=help, envvar=envvar, **kw)


OPTIONS: tuple[OptionSpec, ...] = (
    _opt("project", "GCP project to create the machine in", required=True),
    _opt("zone", "zone to create the machine in", default="us-central1-a"),
    _opt("machine-type", "machine type", default="e2-medium"),
    _opt("machine-image", "boot image (URL or projects/P/global/images/NAME or .../family/F); "
         f"default: the newest image of the {DEFAULT_IMAGE_FAMILY} family in {DEFAULT_IMAGE_PROJECT}"),
    _opt("username", "SSH user created on the machine", default="docker-user"),
    _opt("disk-size", "boot disk size in GB", type=int, default=10),
    _opt("disk-type", "boot disk type", default="pd-standard", choices=("pd-standard", "pd-balanced", "pd-ssd")),
    _opt("network", "VPC network", default="default"),
    _opt("subnetwork", "subnetwork (needed on custom-mode networks)"),
    _opt("address", "static external IP: the address or the name of a reserved regional address"),
    _opt("preemptible", "create a preemptible instance", type=bool, default=False),
    _opt("spot", "create a Spot instance (provisioning model SPOT, stopped on preemption)", type=bool, default=False),
    _opt("tags", "extra network tags (repeat or comma-separate)", multiple=True, default=()),
    _opt("use-internal-ip", "reach the machine at its internal IP", type=bool, default=False),
    _opt("use-internal-ip-only", "give the machine no external IP at all", type=bool, default=False),
    _opt("open-port", "extra port to open, PORT[-PORT][/tcp|udp] (repeat)", multiple=True, default=()),
    _opt("allowed-source-range", "CIDR allowed to reach SSH, the engine and open ports (repeat)",
         multiple=True, default=("0.0.0.0/0",)),
    _opt("service-account", "service account email for the instance", default="default"),
    _opt("scopes", "OAuth scopes for the instance's service account (repeat or comma-separate)", multiple=True,
         default=("https://www.googleapis.com/auth/devstorage.read_only",
                  "https://www.googleapis.com/auth/logging.write")),
    _opt("endpoint", "Compute Engine API endpoint (Private Service Connect or regional endpoint); "
         "used for every call, operation polling included"),
)


def _split(values: Any) -> list[str]:
    """Multiple options also accept comma-separated values, as Docker Machine's did."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


def gce_name(machine_name: str) -> str:
    """Compute Engine names are lower-case RFC 1035 labels; machine names may have upper case and dots."""
    name = machine_name.lower().replace(".", "-").replace("_", "-")
    if not NAME_RE.fullmatch(name):
        raise UsageError(f'Machine name "{machine_name}" cannot name a Compute Engine instance ("{name}")',
                         hint="use letters, digits and dashes, starting with a letter (63 at most)")
    return name


def firewall_rules(open_ports: list[str], engine_port: int | None) -> list[dict[str, Any]]:
    """The firewall's ``allowed`` list: SSH and the engine (unless reached over SSH), plus ``open_ports``
    grouped by protocol."""
    by_protocol: dict[str, list[str]] = {"tcp": [str(SSH_PORT)] + ([str(engine_port)] if engine_port else [])}
    for spec in open_ports:
        match = PORT_RE.fullmatch(spec)
        if not match or not all(0 < int(p) < 65536 for p in match.group(1, 2) if p):
            raise UsageError(f'--google-open-port "{spec}": expected PORT, PORT-PORT, optionally /tcp or /udp')
        low, high, protocol = match.group(1), match.group(2), match.group(3) or "tcp"
        ports = by_protocol.setdefault(protocol, [])
        port = f"{low}-{high}" if high else low
        if port not in ports:
            ports.append(port)
    return [{"I_p_protocol": protocol, "ports": ports} for protocol, ports in by_protocol.items()]


def merge_ssh_keys(items: list[tuple[str, str]], line: str) -> tuple[list[tuple[str, str]], bool]:
    """Add ``line`` to the ``ssh-keys`` item of metadata ``items``, keeping every other item and line.
    Returns the new items and whether anything changed."""
    out: list[tuple[str, str]] = []
    found = changed = False
    for key, value in items:
        if key == "ssh-keys":
            found = True
            lines = [existing for existing in value.splitlines() if existing.strip()]
            if line not in lines:
                lines.append(line)
                changed = True
            value = "\n".join(lines)
        out.append((key, value))
    if not found:
        out.append(("ssh-keys", line))
        changed = True
    return out, changed


class GoogleDriver(Driver):
    name: ClassVar[str] = "google"
    description: ClassVar[str] = "Google Compute Engine instance (Application Default Credentials)"
    options: ClassVar[tuple[OptionSpec, ...]] = OPTIONS
    capabilities: ClassVar[Capabilities] = Capabilities(
        provisions_engine=True, ssh=True, start=True, stop=True, restart=True, kill=True, keys_at_boot=True,
        cluster=True)
    requires: ClassVar[tuple[str, ...]] = ("google-cloud-compute", "google-auth")

    # -- settings --------------------------------------------------------------------------------
    @property
    def project(self) -> str:
        project = self.ctx.data.get("project") or self.ctx.option("google_project")
        if not project:
            raise UsageError("--google-project (or GOOGLE_PROJECT) is required for the google driver")
        return str(project)

    @property
    def zone(self) -> str:
        return str(self.ctx.data.get("zone") or self.ctx.option("google_zone"))

    def _api(self) -> ComputeApi:
        endpoint = self.ctx.data.get("endpoint") or self.ctx.option("google_endpoint") or None
        return ComputeApi(project=self.project, credentials=load_credentials(), endpoint=endpoint)

    def _save(self, **values: Any) -> None:
        self.ctx.data.update(values)
        self.ctx.checkpoint()

    def _forget(self, *keys: str) -> None:
        for key in keys:
            self.ctx.data.pop(key, None)
        self.ctx.checkpoint()

    # -- create ----------------------------------------------------------------------------------
    def create(self) -> None:
        opt = self.ctx.option
        name = gce_name(self.ctx.machine_name)
        if opt("google_preemptible") and opt("google_spot"):
            raise UsageError("--google-preemptible and --google-spot exclude each other")
        public_key = self.ctx.ssh_key_path.with_suffix(".pub").read_text().strip()
        allowed = firewall_rules(_split(opt("google_open_port")), self.exposed_engine_port())
        self._save(project=self.project, zone=self.zone,
                   endpoint=opt("google_endpoint") or None, ssh_user=opt("google_username"),
                   use_internal_ip=bool(opt("google_use_internal_ip") or opt("google_use_internal_ip_only")))
        api = self._api()

        self.ctx.progress(f"Checking zone {self.zone} in project {self.project}")
        try:
            api.call(f"Zone {self.zone} of project {self.project}", "ZonesClient", "get",
                     project=self.project, zone=self.zone)
        except ResourceNotFound as exc:
            raise DriverError(f'Project "{self.project}" or zone "{self.zone}" does not exist or is not '
                              f"visible to these credentials ({exc.message})", driver=DRIVER) from exc
        image = self._resolve_image(api)
        nat_ip = self._resolve_address(api)

        self._create_firewall(api, name, allowed)
        if self.ctx.cluster:
            self._ensure_cluster_rule(api, self.ctx.cluster)
        self._create_instance(api, name, image, nat_ip, public_key)
        self.refresh(api)

    def _resolve_image(self, api: ComputeApi) -> str:
        image = self.ctx.option("google_machine_image")
        if image:
            return str(image)
        self.ctx.progress(f"Looking up the newest {DEFAULT_IMAGE_FAMILY} image")
        found = api.call(f"Image family {DEFAULT_IMAGE_FAMILY} in {DEFAULT_IMAGE_PROJECT}", "ImagesClient",
                         "get_from_family", project=DEFAULT_IMAGE_PROJECT, family=DEFAULT_IMAGE_FAMILY)
        # The selfLink always names www.googleapis.com; pass the path so no endpoint is implied.
        path = f"projects/{DEFAULT_IMAGE_PROJECT}/global/images/{found.name}"
        self._save(image=path)
        return path

    def _resolve_address(self, api: ComputeApi) -> str | None:
        address = self.ctx.option("google_address")
        if not address or self.ctx.option("google_use_internal_ip_only"):
            return None
        if re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", str(address)):
            return str(address)
        region = self.zone.rsplit("-", 1)[0]
        found = api.call(f"Static address {address} in {region}", "AddressesClient", "get",
                         project=self.project, region=region, address=str(address))
        return str(found.address)

    def _create_firewall(self, api: ComputeApi, name: str, allowed: list[dict[str, Any]]) -> None:
        from google.cloud import compute_v1

        rule = f"provision-{name}"[:63].rstrip("-")
        network = self.ctx.option("google_network")
        firewall = compute_v1.Firewall(
            name=rule, network=f"projects/{self.project}/global/networks/{network}", direction="INGRESS",
            description=f"provision: SSH and the Docker engine for machine {self.ctx.machine_name}",
            allowed=[compute_v1.Allowed(**a) for a in allowed], target_tags=[rule],
            source_ranges=_split(self.ctx.option("google_allowed_source_range")))
        self.ctx.progress(f"Creating firewall rule {rule}")
        api.run(f"Firewall rule {rule}", "FirewallsClient", "insert_unary", timeout=SMALL_TIMEOUT,
                on_accepted=lambda op: self._save(firewall=rule, network_tag=rule),
                project=self.project, firewall_resource=firewall)

    def _create_instance(self, api: ComputeApi, name: str, image: str, nat_ip: str | None,
                         public_key: str) -> None:
        from google.cloud import compute_v1

        opt = self.ctx.option
        zone = self.zone
        labels = {LABEL_KEY: LABEL_VALUE, MACHINE_LABEL: name}
        nic = compute_v1.NetworkInterface(network=f"projects/{self.project}/global/networks/"
                                                  f"{opt('google_network')}")
        if opt("google_subnetwork"):
            nic.subnetwork = (f"projects/{self.project}/regions/{zone.rsplit('-', 1)[0]}/subnetworks/"
                              f"{opt('google_subnetwork')}")
        if not opt("google_use_internal_ip_only"):
            access = compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")
            if nat_ip:
                access.nat_i_p = nat_ip
            nic.access_configs = [access]
        scheduling = compute_v1.Scheduling()
        if opt("google_spot"):
            scheduling = compute_v1.Scheduling(provisioning_model="SPOT", instance_termination_action="STOP",
                                               automatic_restart=False, on_host_maintenance="TERMINATE")
        elif opt("google_preemptible"):
            scheduling = compute_v1.Scheduling(preemptible=True, automatic_restart=False,
                                               on_host_maintenance="TERMINATE")
        user = self.ctx.data["ssh_user"]
        instance = compute_v1.Instance(
            name=name,
            description=f"provision machine {self.ctx.machine_name}",
            machine_type=f"zones/{zone}/machineTypes/{opt('google_machine_type')}",
            labels=labels,
            tags=compute_v1.Tags(items=list(dict.fromkeys([
                self.ctx.data["network_tag"], *_split(opt("google_tags")),
                *([cluster_label(self.ctx.cluster)] if self.ctx.cluster else [])]))),
            disks=[compute_v1.AttachedDisk(
                boot=True, auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    disk_name=name, source_image=image, disk_size_gb=int(opt("google_disk_size")),
                    disk_type=f"zones/{zone}/diskTypes/{opt('google_disk_type')}",
                    labels=labels))],
            network_interfaces=[nic],
            metadata=compute_v1.Metadata(items=[compute_v1.Items(key="ssh-keys", value=f"{user}:{public_key}")]),
            scheduling=scheduling,
            service_accounts=[compute_v1.ServiceAccount(
                email=opt("google_service_account"), scopes=_split(opt("google_scopes")))],
        )
        self.ctx.progress(f"Creating instance {name} in {zone}")
        api.run(f"Instance {name}", "InstancesClient", "insert_unary", timeout=INSERT_TIMEOUT,
                on_accepted=lambda op: self._save(instance=name, boot_disk=name),
                project=self.project, zone=zone, instance_resource=instance)

    # -- remove ----------------------------------------------------------------------------------
    def remove(self) -> None:
        data = self.ctx.data
        if not any(data.get(key) for key in ("instance", "boot_disk", "firewall")):
            return  # nothing was made (create failed before the first resource existed)
        api = self._api()
        if data.get("instance"):
            name = data["instance"]
            self.ctx.progress(f"Deleting instance {name}")
            ignore_missing(lambda: api.run(f"Deleting instance {name}", "InstancesClient", "delete_unary",
                                           timeout=LIFECYCLE_TIMEOUT, project=self.project, zone=self.zone,
                                           instance=name))
            self._forget("instance", "instance_id", "external_ip", "internal_ip", "hostname")
        if data.get("boot_disk"):
            # Auto-deleted with the instance normally; deleted here when the instance never came to be
            # or the disk was set to outlive it.
            disk = data["boot_disk"]
            ignore_missing(lambda: api.run(f"Deleting disk {disk}", "DisksClient", "delete_unary",
                                           timeout=SMALL_TIMEOUT, project=self.project, zone=self.zone,
                                           disk=disk))
            self._forget("boot_disk")
        if data.get("firewall") and not data.get(KEEP_SHARED):  # Docker Machine's rule serves all its machines
            rule = data["firewall"]
            self.ctx.progress(f"Deleting firewall rule {rule}")
            ignore_missing(lambda: api.run(f"Deleting firewall rule {rule}", "FirewallsClient", "delete_unary",
                                           timeout=SMALL_TIMEOUT, project=self.project, firewall=rule))
            self._forget("firewall", "network_tag")

    # -- clusters --------------------------------------------------------------------------------
    # A cluster's door is one firewall rule, ``provision-cluster-<cluster>``, admitting the swarm ports
    # from instances carrying the network tag of the same name to instances carrying it: no source
    # range, so nothing outside the cluster is admitted. Members carry the tag; the rule goes with the
    # last member (the core decides which one is last).
    def cluster_address(self) -> str:
        address = self.ctx.data.get("internal_ip")
        if not address:
            raise DriverError(f'Machine "{self.ctx.machine_name}" has no internal IP recorded', driver=DRIVER)
        return str(address)

    def join_cluster(self, cluster: str) -> None:
        api = self._api()
        self._ensure_cluster_rule(api, cluster)
        self._set_tag(api, cluster_label(cluster), present=True)

    def leave_cluster(self, cluster: str, *, last: bool) -> None:
        tag = cluster_label(cluster)
        api = self._api()
        if self.ctx.data.get("instance"):
            try:
                self._set_tag(api, tag, present=False)
            except ResourceNotFound:
                pass  # the instance is gone, and its tag with it
        if last:
            self.ctx.progress(f"Deleting firewall rule {tag}")
            ignore_missing(lambda: api.run(f"Deleting firewall rule {tag}", "FirewallsClient", "delete_unary",
                                           timeout=SMALL_TIMEOUT, project=self.project, firewall=tag))
        rules = {k: v for k, v in (self.ctx.data.get("cluster_rules") or {}).items() if k != cluster}
        self._save(cluster_rules=rules)

    def _ensure_cluster_rule(self, api: ComputeApi, cluster: str) -> None:
        from google.api_core import exceptions as api_exceptions
        from google.cloud import compute_v1

        rule = cluster_label(cluster)
        network = self.ctx.option("google_network")
        # Recorded before the call: the name is all that leave_cluster needs to find it again.
        self._save(cluster_rules={**(self.ctx.data.get("cluster_rules") or {}), cluster: rule})
        firewall = compute_v1.Firewall(
            name=rule, network=f"projects/{self.project}/global/networks/{network}", direction="INGRESS",
            description=f"provision: swarm ports between the members of cluster {cluster}",
            allowed=[compute_v1.Allowed(I_p_protocol=protocol, ports=ports)
                     for protocol, ports in swarm_ports_by_protocol().items()],
            source_tags=[rule], target_tags=[rule])
        what = f"Firewall rule {rule}"
        with api.errors(what):
            try:
                operation = api.client("FirewallsClient").insert_unary(
                    project=self.project, firewall_resource=firewall, timeout=60)
            except api_exceptions.Conflict:
                operation = None  # another member made it first
        if operation is not None:
            self.ctx.progress(f"Creating firewall rule {rule}")
            api.wait(operation, what, SMALL_TIMEOUT)
            return
        existing = api.call(what, "FirewallsClient", "get", project=self.project, firewall=rule)
        if existing.source_ranges or list(existing.source_tags) != [rule]:
            raise DriverError(f"Firewall rule {rule} exists but is not cluster {cluster}'s: it admits "
                              f"{', '.join([*existing.source_ranges, *existing.source_tags])}", driver=DRIVER,
                              hint="rename or delete that rule; provision never widens or adopts it")
        if last_segment(existing.network) != network:
            raise DriverError(f"Cluster {cluster}'s firewall rule {rule} is on network "
                              f"{last_segment(existing.network)}, this machine on {network}", driver=DRIVER,
                              hint="the members of a cluster must share a network (--google-network)")

    def _set_tag(self, api: ComputeApi, tag: str, *, present: bool) -> None:
        """Add or remove one network tag of the instance, keeping the others (reread on a stale fingerprint)."""
        from google.api_core import exceptions as api_exceptions
        from google.cloud import compute_v1

        name = self._recorded_instance()
        what = f"Updating the network tags of instance {name}"
        for _ in range(5):
            instance = api.call(f"Instance {name}", "InstancesClient", "get",
                                project=self.project, zone=self.zone, instance=name)
            items = list(instance.tags.items)
            if (tag in items) == present:
                return
            items = [*items, tag] if present else [t for t in items if t != tag]
            with api.errors(what):
                try:
                    operation = api.client("InstancesClient").set_tags_unary(
                        project=self.project, zone=self.zone, instance=name,
                        tags_resource=compute_v1.Tags(items=items, fingerprint=instance.tags.fingerprint),
                        timeout=60)
                except api_exceptions.PreconditionFailed:
                    continue  # another writer changed the tags between our read and write
            api.wait(operation, what, SMALL_TIMEOUT)
            return
        raise DriverError(f"{what}: they kept changing under us", driver=DRIVER)

    # -- lifecycle -------------------------------------------------------------------------------
    def _instance_call(self, verb: str, method: str, timeout: float = LIFECYCLE_TIMEOUT,
                       api: ComputeApi | None = None) -> None:
        name = self._recorded_instance()
        api = api or self._api()
        self.ctx.progress(f"{verb} instance {name}")
        api.run(f"{verb} instance {name}", "InstancesClient", method, timeout=timeout,
                project=self.project, zone=self.zone, instance=name)

    def _recorded_instance(self) -> str:
        name = self.ctx.data.get("instance")
        if not name:
            raise DriverError(f'Machine "{self.ctx.machine_name}" has no Compute Engine instance on record',
                              driver=DRIVER)
        return str(name)

    def start(self) -> None:
        api = self._api()
        self._instance_call("Starting", "start_unary", api=api)
        self.ensure_ssh_key(api)

    def stop(self) -> None:
        self._instance_call("Stopping", "stop_unary")
        self._forget_external_address()

    def kill(self) -> None:
        from google.cloud import compute_v1

        name = self._recorded_instance()
        self.ctx.progress(f"Killing instance {name}")
        # noGracefulShutdown is not one of stop's flattened arguments: it goes in the request object.
        request = compute_v1.StopInstanceRequest(project=self.project, zone=self.zone, instance=name,
                                                 no_graceful_shutdown=True)
        self._api().run(f"Killing instance {name}", "InstancesClient", "stop_unary", timeout=LIFECYCLE_TIMEOUT,
                        request=request)
        self._forget_external_address()

    def _forget_external_address(self) -> None:
        # A stopped instance gives its ephemeral external IP back (it may go to someone else): forget it,
        # so `ip`, `url` and `env` cannot point there; start() and refresh() read the new one. A reserved
        # static address (--google-address) stays the project's and comes back with the instance.
        if not self.ctx.option("google_address"):
            self._save(external_ip=None)

    def restart(self) -> None:
        self._instance_call("Resetting", "reset_unary")

    def state(self) -> MachineState:
        name = self.ctx.data.get("instance")
        if not name:
            return MachineState.NOT_FOUND
        api = self._api()
        try:
            instance = api.call(f"Instance {name}", "InstancesClient", "get",
                                project=self.project, zone=self.zone, instance=name)
        except ResourceNotFound:
            return MachineState.NOT_FOUND
        return STATES.get(instance.status, MachineState.UNKNOWN)

    def ensure_ssh_key(self, api: ComputeApi | None = None) -> bool:
        """Put our key back into ``ssh-keys`` if someone removed it, merging with what is there.
        True if the metadata had to change."""
        api = api or self._api()
        name = self._recorded_instance()
        line = f"{self.ctx.data['ssh_user']}:{self.ctx.ssh_key_path.with_suffix('.pub').read_text().strip()}"
        for _ in range(5):  # another writer between our read and write changes the fingerprint: reread
            instance = api.call(f"Instance {name}", "InstancesClient", "get",
                                project=self.project, zone=self.zone, instance=name)
            items, changed = merge_ssh_keys([(i.key, i.value) for i in instance.metadata.items], line)
            if not changed:
                return False
            from google.api_core import exceptions as api_exceptions
            from google.cloud import compute_v1

            metadata = compute_v1.Metadata(fingerprint=instance.metadata.fingerprint,
                                           items=[compute_v1.Items(key=k, value=v) for k, v in items])
            what = f"Updating metadata of instance {name}"
            with api.errors(what):
                try:
                    operation = api.client("InstancesClient").set_metadata_unary(
                        project=self.project, zone=self.zone, instance=name, metadata_resource=metadata,
                        timeout=60)
                except api_exceptions.PreconditionFailed:
                    operation = None
            if operation is None:
                continue
            api.wait(operation, what, SMALL_TIMEOUT)
            return True
        raise DriverError(f"Updating metadata of instance {name}: it kept changing under us", driver=DRIVER)

    def refresh(self, api: ComputeApi | None = None) -> bool:
        """Re-read the instance's addresses into ``ctx.data``; True if any address changed."""
        name = self._recorded_instance()
        api = api or self._api()
        instance = api.call(f"Instance {name}", "InstancesClient", "get",
                            project=self.project, zone=self.zone, instance=name)
        nic = instance.network_interfaces[0] if instance.network_interfaces else None
        external = ""
        if nic is not None and nic.access_configs:
            external = nic.access_configs[0].nat_i_p or ""
        before = self.addresses()
        self._save(external_ip=external, internal_ip=nic.network_i_p if nic is not None else "",
                   hostname=instance.hostname or "", instance_id=str(instance.id))
        return self.addresses() != before

    # -- addresses (from ctx.data only) ----------------------------------------------------------
    def ip(self) -> str:
        data = self.ctx.data
        address = data.get("internal_ip") if data.get("use_internal_ip") else data.get("external_ip")
        if not address:
            raise DriverError(f'Machine "{self.ctx.machine_name}" has no address recorded '
                              "(not created, or stopped: start it)", driver=DRIVER)
        return str(address)

    def engine_url(self) -> str:
        return f"tcp://{self.ip()}:{self.engine_port()}"

    def ssh_endpoint(self) -> SSHEndpoint:
        return SSHEndpoint(host=self.ip(), port=SSH_PORT, user=str(self.ctx.data.get("ssh_user") or "docker-user"),
                           key_path=self.ctx.ssh_key_path)

    def addresses(self) -> list[str]:
        data = self.ctx.data
        found = [data.get("external_ip"), data.get("internal_ip"), data.get("hostname")]
        return [str(a) for a in dict.fromkeys(found) if a]

    def extra(self) -> dict[str, Any]:
        keys = ("project", "zone", "instance", "instance_id", "boot_disk", "firewall", "image", "cluster_rules")
        return {key: self.ctx.data[key] for key in keys if self.ctx.data.get(key)}
