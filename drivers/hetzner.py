"""The ``hetzner`` driver: a Hetzner Cloud server with Docker, reached over SSH and TLS on 2376.

What it makes, each labelled ``provisioned-by=provision``, ``provision-machine=<name>`` and
``provision-uid=<uid>`` (a random per-machine id recorded before the first call) and recorded in
``ctx.data`` the moment the API hands its id back:
- an SSH key ``provision-<name>-<uid>`` holding the machine's public key (cloud-init puts it in root's
  authorized_keys at first boot);
- a firewall ``provision-<name>-<uid>`` admitting SSH, the engine port and any ``--hetzner-open-port``
  from ``--hetzner-allowed-cidr``, applied to this server only;
- the server.
``remove`` finds each by its recorded id and by the uid label (a create interrupted between the API's
answer and the checkpoint left no id), and deletes nothing else: the networks and firewalls the user
names are attached, never changed or deleted.

Lifecycle goes through server actions, each polled to completion: ``start`` is ``poweron``, ``stop`` an
ACPI ``shutdown`` (then waiting for ``off``), ``kill`` a ``poweroff``, ``restart`` an ACPI ``reboot``.
A server keeps its primary IPs across power cycles, but one the user swaps while it is off is noticed by
``refresh`` after ``start``, and the certificate follows.

A cluster's door (``hz_cluster``) is a private network of its own; Hetzner's firewalls filter public
interfaces only, so the swarm ports between members travel there, reachable by members alone.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from pathlib import Path
from typing import Any, ClassVar

from provision.driver import Capabilities, Driver, MachineState, OptionSpec, SSHEndpoint
from provision.errors import DriverError, ProvisionError, UsageError

from .hz_api import InUse, Locked, ResourceNotFound, api_errors, connect, wait_action, wait_all
from .hz_token import DRIVER, Token, find_token

LABEL_BY, LABEL_MACHINE, LABEL_UID = "provisioned-by", "provision-machine", "provision-uid"
OWN_LABELS = (LABEL_BY, LABEL_MACHINE, LABEL_UID)
SSH_PORT = 22
USER_DATA_LIMIT = 32 * 1024  # the API's limit on user_data
CREATE_TIMEOUT = 600.0
ACTION_TIMEOUT = 300.0
FREE_TIMEOUT = 300.0  # how long a resource may stay locked or in use before remove gives up on it

# https://docs.hetzner.cloud/reference/cloud#servers: the status field.
STATES: dict[str, MachineState] = {
    "running": MachineState.RUNNING,
    "initializing": MachineState.STARTING,
    "starting": MachineState.STARTING,
    "rebuilding": MachineState.STARTING,
    "migrating": MachineState.STARTING,
    "stopping": MachineState.STOPPING,
    "deleting": MachineState.STOPPING,
    "off": MachineState.STOPPED,
    "unknown": MachineState.UNKNOWN,
}

# Label keys: an optional DNS prefix and "/", then a name; values: up to 63 of [A-Za-z0-9._-], alphanumeric ends.
LABEL_KEY_RE = re.compile(r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_VALUE_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
PORT_RE = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?(?:/(tcp|udp))?")

_P = "hetzner-"
OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(_P + "api-token", "API token (else $HETZNER_API_TOKEN, else the hcloud CLI's active context); "
               "never stored: later commands read the variables or the CLI's context", envvar="HCLOUD_TOKEN",
               secret=True),
    OptionSpec(_P + "image", "image name or id", default="debian-12", envvar="HETZNER_IMAGE"),
    OptionSpec(_P + "server-type", "server type", default="cx23", envvar="HETZNER_TYPE"),
    OptionSpec(_P + "server-location", "location (fsn1, nbg1, hel1, ash, hil, sin; default: Hetzner's choice)",
               envvar="HETZNER_LOCATION"),
    OptionSpec(_P + "networks", "existing network (id or name) to attach (repeat); never changed or deleted",
               envvar="HETZNER_NETWORKS", multiple=True),
    OptionSpec(_P + "use-private-network", "reach the machine at its address on the first --hetzner-networks",
               type=bool, default=False, envvar="HETZNER_USE_PRIVATE_NETWORK"),
    OptionSpec(_P + "firewalls", "existing firewall (id or name) to apply as well (repeat); never changed or "
               "deleted", envvar="HETZNER_FIREWALLS", multiple=True),
    OptionSpec(_P + "user-data", "cloud-init user data, inline", envvar="HETZNER_USER_DATA"),
    OptionSpec(_P + "user-data-file", "file with cloud-init user data", envvar="HETZNER_USER_DATA_FILE"),
    OptionSpec(_P + "server-label", "label KEY=VALUE for the server (repeat)", envvar="HETZNER_SERVER_LABELS",
               multiple=True),
    OptionSpec(_P + "open-port", "extra port to open in the machine's firewall, PORT[-PORT][/tcp|udp] (repeat)",
               envvar="HETZNER_OPEN_PORTS", multiple=True),
    OptionSpec(_P + "allowed-cidr", "source CIDR allowed to reach SSH, the engine and open ports (repeat)",
               default=("0.0.0.0/0", "::/0"), envvar="HETZNER_ALLOWED_CIDRS", multiple=True),
    OptionSpec(_P + "ssh-user", "SSH user of the image", default="root", envvar="HETZNER_SSH_USER"),
    OptionSpec(_P + "endpoint", "API base URL (default: https://api.hetzner.cloud/v1)", envvar="HCLOUD_ENDPOINT"),
)


def parse_labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not LABEL_KEY_RE.fullmatch(key) or not LABEL_VALUE_RE.fullmatch(value):
            raise UsageError(f'--hetzner-server-label "{item}": expected KEY=VALUE (letters, digits, "-", "_", '
                             '"."; 63 at most each)')
        if key in OWN_LABELS:
            raise UsageError(f'--hetzner-server-label "{item}": {key} is provision\'s own label')
        labels[key] = value
    return labels


def firewall_rules(open_ports: list[str], engine_port: int | None, cidrs: list[str]) -> list[dict[str, Any]]:
    """The machine firewall's inbound rules, as the API takes them."""
    sources = []
    for cidr in cidrs:
        try:
            sources.append(str(ipaddress.ip_network(cidr, strict=False)))
        except ValueError as exc:
            raise UsageError(f'--hetzner-allowed-cidr "{cidr}" is not a CIDR block') from exc
    wanted: list[tuple[str, str]] = [("tcp", str(SSH_PORT))] + ([("tcp", str(engine_port))] if engine_port else [])
    for spec in open_ports:
        match = PORT_RE.fullmatch(str(spec))
        if not match or not all(0 < int(p) < 65536 for p in match.group(1, 2) if p):
            raise UsageError(f'--hetzner-open-port "{spec}": expected PORT, PORT-PORT, optionally /tcp or /udp')
        low, high, protocol = match.group(1), match.group(2), match.group(3) or "tcp"
        entry = (protocol, f"{low}-{high}" if high else low)
        if entry not in wanted:
            wanted.append(entry)
    return [{"direction": "in", "protocol": protocol, "port": port, "source_ips": sources,
             "description": "provision" if port in (str(SSH_PORT), str(engine_port)) else "--hetzner-open-port"}
            for protocol, port in wanted]


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    values = [value] if isinstance(value, str) else value
    return [part.strip() for v in values for part in str(v).split(",") if part.strip()]


class HetznerDriver(Driver):
    name: ClassVar[str] = "hetzner"
    description: ClassVar[str] = "Hetzner Cloud server (token: HCLOUD_TOKEN or the hcloud CLI's context)"
    options: ClassVar[tuple[OptionSpec, ...]] = OPTIONS
    capabilities: ClassVar[Capabilities] = Capabilities(
        provisions_engine=True, ssh=True, start=True, stop=True, restart=True, kill=True, keys_at_boot=True,
        cluster=True)
    requires: ClassVar[tuple[str, ...]] = ("hcloud",)

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        parse_labels(_list(options.get("hetzner_server_label")))
        firewall_rules(_list(options.get("hetzner_open_port")), None,
                       _list(options.get("hetzner_allowed_cidr")) or ["0.0.0.0/0"])
        if options.get("hetzner_user_data") and options.get("hetzner_user_data_file"):
            raise UsageError("--hetzner-user-data and --hetzner-user-data-file exclude each other")
        if options.get("hetzner_use_private_network") and not _list(options.get("hetzner_networks")):
            raise UsageError("--hetzner-use-private-network needs --hetzner-networks")

    # -- connection --------------------------------------------------------------------------------
    def _endpoint(self) -> str | None:
        return self.ctx.data.get("endpoint") or self.ctx.option("hetzner_endpoint") or None

    def _token(self) -> Token:
        return find_token(self.ctx.option("hetzner_api_token"), self.ctx.environ)

    def api(self) -> tuple[Any, Any]:
        """The SDK client and a context manager factory for its errors."""
        token, endpoint = self._token(), self._endpoint()
        client = connect(token, endpoint)
        return client, lambda what: api_errors(what, token, endpoint)

    def wait(self, action: Any, what: str, timeout: float = ACTION_TIMEOUT) -> None:
        wait_action(action, what, timeout, self._token(), self._endpoint())

    def save(self, **values: Any) -> None:
        self.ctx.data.update(values)
        self.ctx.checkpoint()

    def _labels(self) -> dict[str, str]:
        return {LABEL_BY: "provision", LABEL_MACHINE: self.ctx.machine_name, LABEL_UID: self.ctx.data["uid"]}

    # -- create ------------------------------------------------------------------------------------
    def create(self) -> None:
        opt = self.ctx.option
        client, errors = self.api()
        plan = self._plan(client, errors)
        self.save(uid=secrets.token_hex(6), endpoint=self._endpoint(), ssh_user=opt("hetzner_ssh_user"),
                   use_private=bool(opt("hetzner_use_private_network")), server_type=plan["server_type"],
                   image=plan["image"], networks=plan["network_ids"])
        key_id = self._create_ssh_key(client, errors)
        firewall_id = self._create_firewall(client, errors, plan["rules"])
        self._create_server(client, errors, plan, key_id, firewall_id)
        if self.ctx.cluster:
            self.join_cluster(self.ctx.cluster)
        self.refresh()
        if not self._client_address():
            raise DriverError(f"Server {self.ctx.data['server_id']} has no address to reach it at", driver=DRIVER)

    def _plan(self, client: Any, errors: Any) -> dict[str, Any]:
        """Check every name the user gave and read the user data before anything is made."""
        opt = self.ctx.option
        type_name, image_name = str(opt("hetzner_server_type")), str(opt("hetzner_image"))
        with errors(f"Looking up server type {type_name}"):
            server_type = client.server_types.get_by_name(type_name)
        if server_type is None:
            raise DriverError(f'Server type "{type_name}" does not exist', driver=DRIVER,
                              hint="`hcloud server-type list` shows them")
        with errors(f"Looking up image {image_name}"):
            if image_name.isdigit():
                image = client.images.get_by_id(int(image_name))
            else:
                image = client.images.get_by_name_and_architecture(image_name, server_type.architecture)
        if image is None:
            raise DriverError(f'Image "{image_name}" does not exist for {server_type.architecture} server types',
                              driver=DRIVER, hint="`hcloud image list` shows them")
        location = opt("hetzner_server_location")
        if location:
            with errors(f"Looking up location {location}"):
                if client.locations.get_by_name(str(location)) is None:
                    raise DriverError(f'Location "{location}" does not exist', driver=DRIVER,
                                      hint="`hcloud location list` shows them")
        network_ids = [self._find(client, errors, "networks", ref) for ref in _list(opt("hetzner_networks"))]
        firewall_ids = [self._find(client, errors, "firewalls", ref) for ref in _list(opt("hetzner_firewalls"))]
        return {
            "server_type": type_name, "image": image.id, "location": location, "network_ids": network_ids,
            "firewall_ids": firewall_ids, "labels": parse_labels(_list(opt("hetzner_server_label"))),
            "rules": firewall_rules(_list(opt("hetzner_open_port")), self.exposed_engine_port(),
                                    _list(opt("hetzner_allowed_cidr"))),
            "user_data": self._user_data(),
        }

    def _find(self, client: Any, errors: Any, kind: str, ref: str) -> int:
        what = kind[:-1]
        try:
            with errors(f"Looking up {what} {ref}"):
                found = getattr(client, kind).get_by_id(int(ref)) if ref.isdigit() else \
                    getattr(client, kind).get_by_name(ref)
        except ResourceNotFound:
            found = None
        if found is None:
            raise DriverError(f'No {what} "{ref}" in this project', driver=DRIVER)
        return int(found.id)

    def _user_data(self) -> str | None:
        text = self.ctx.option("hetzner_user_data")
        path = self.ctx.option("hetzner_user_data_file")
        if path:
            from provision.fsutil import read_regular

            try:
                raw = read_regular(str(Path(path).expanduser()), USER_DATA_LIMIT)
            except OSError as exc:
                raise UsageError(f"--hetzner-user-data-file {path}: {exc.strerror}") from exc
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UsageError(f"--hetzner-user-data-file {path} is not UTF-8 text") from exc
        if text and len(str(text).encode()) > USER_DATA_LIMIT:
            raise UsageError(f"The user data is over the API's {USER_DATA_LIMIT // 1024} KiB")
        return str(text) if text else None

    def _create_ssh_key(self, client: Any, errors: Any) -> int:
        name = f"provision-{self.ctx.machine_name}-{self.ctx.data['uid']}"
        public_key = self.ctx.ssh_key_path.with_suffix(".pub").read_text().strip()
        self.save(ssh_key_name=name)
        self.ctx.progress(f"Uploading SSH key {name}")
        with errors(f"Uploading SSH key {name}"):
            key = client.ssh_keys.create(name=name, public_key=public_key, labels=self._labels())
        self.save(ssh_key_id=key.id)
        return int(key.id)

    def _create_firewall(self, client: Any, errors: Any, rules: list[dict[str, Any]]) -> int:
        from hcloud.firewalls import FirewallRule

        name = f"provision-{self.ctx.machine_name}-{self.ctx.data['uid']}"
        self.save(firewall_name=name)
        self.ctx.progress(f"Creating firewall {name}")
        with errors(f"Creating firewall {name}"):
            reply = client.firewalls.create(name=name, labels=self._labels(),
                                            rules=[FirewallRule(**rule) for rule in rules])
        self.save(firewall_id=reply.firewall.id)
        return int(reply.firewall.id)

    def _create_server(self, client: Any, errors: Any, plan: dict[str, Any], key_id: int, firewall_id: int) -> None:
        from hcloud.firewalls import Firewall
        from hcloud.images import Image
        from hcloud.locations import Location
        from hcloud.networks import Network
        from hcloud.server_types import ServerType
        from hcloud.ssh_keys import SSHKey

        name = self.ctx.machine_name.lower()
        self.ctx.progress(f"Creating server {name} ({plan['server_type']})")
        with errors(f"Creating server {name}"):
            reply = client.servers.create(
                name=name, server_type=ServerType(name=plan["server_type"]), image=Image(id=plan["image"]),
                ssh_keys=[SSHKey(id=key_id)],
                firewalls=[Firewall(id=firewall_id), *(Firewall(id=i) for i in plan["firewall_ids"])],
                networks=[Network(id=i) for i in plan["network_ids"]] or None,
                location=Location(name=plan["location"]) if plan["location"] else None,
                labels={**plan["labels"], **self._labels()}, user_data=plan["user_data"])
        self.save(server_id=reply.server.id, server_name=name)
        self.ctx.progress(f"Waiting for server {name} to start")
        wait_all([reply.action, *reply.next_actions], f"Creating server {name}", CREATE_TIMEOUT, self._token(),
                 self._endpoint())

    # -- addresses ---------------------------------------------------------------------------------
    def server(self, client: Any, errors: Any) -> Any:
        server_id = self._server_id()
        with errors(f"Reading server {server_id}"):
            return client.servers.get_by_id(server_id)

    def _server_id(self) -> int:
        server_id = self.ctx.data.get("server_id")
        if not server_id:
            raise DriverError(f'Machine "{self.ctx.machine_name}" has no Hetzner server on record', driver=DRIVER)
        return int(server_id)

    def refresh(self) -> bool:
        """Re-read the server's addresses into ``ctx.data``; True when one changed."""
        client, errors = self.api()
        server = self.server(client, errors)
        before = self.addresses()
        net = server.public_net
        private = {str(p.network.id): p.ip for p in (server.private_net or [])}
        self.save(public_ipv4=net.ipv4.ip if net and net.ipv4 else None,
                   public_ipv6=net.ipv6.ip if net and net.ipv6 else None, private_ips=private,
                   location=server.location.name if server.location else None)
        return self.addresses() != before

    def _client_address(self) -> str | None:
        d = self.ctx.data
        if d.get("use_private"):
            networks = d.get("networks") or []
            return (d.get("private_ips") or {}).get(str(networks[0])) if networks else None
        return d.get("public_ipv4")

    def ip(self) -> str:
        address = self._client_address()
        if not address:
            raise DriverError(f'Machine "{self.ctx.machine_name}" has no address recorded (not created?)',
                              driver=DRIVER)
        return str(address)

    def engine_url(self) -> str:
        return f"tcp://{self.ip()}:{self.engine_port()}"

    def ssh_endpoint(self) -> SSHEndpoint:
        return SSHEndpoint(host=self.ip(), port=SSH_PORT, user=str(self.ctx.data.get("ssh_user") or "root"),
                           key_path=self.ctx.ssh_key_path)

    def addresses(self) -> list[str]:
        d = self.ctx.data
        found = [self._client_address(), d.get("public_ipv4"), *(d.get("private_ips") or {}).values()]
        return [str(a) for a in dict.fromkeys(found) if a]

    def extra(self) -> dict[str, Any]:
        keys = ("server_id", "server_name", "server_type", "image", "location", "ssh_key_id", "firewall_id",
                "networks", "public_ipv6", "cluster_networks", "uid")
        return {key: self.ctx.data[key] for key in keys if self.ctx.data.get(key)}

    # -- lifecycle ---------------------------------------------------------------------------------
    def state(self) -> MachineState:
        if not self.ctx.data.get("server_id"):
            return MachineState.NOT_FOUND
        client, errors = self.api()
        try:
            server = self.server(client, errors)
        except ResourceNotFound:
            return MachineState.NOT_FOUND
        return STATES.get(server.status, MachineState.UNKNOWN)

    def _action(self, verb: str, method: str) -> None:
        from hcloud.servers import Server

        client, errors = self.api()
        server_id = self._server_id()
        what = f"{verb} server {server_id}"
        self.ctx.progress(what)
        with errors(what):
            action = getattr(client.servers, method)(Server(id=server_id))
        self.wait(action, what)

    def start(self) -> None:
        self._action("Powering on", "power_on")

    def stop(self) -> None:
        self._action("Shutting down", "shutdown")
        self._wait_status("off")

    def kill(self) -> None:
        self._action("Powering off", "power_off")

    def restart(self) -> None:
        self._action("Rebooting", "reboot")

    def _wait_status(self, wanted: str) -> None:
        from provision import waiting

        client, errors = self.api()

        def reached() -> bool:
            status = self.server(client, errors).status
            if status != wanted:
                raise waiting.NotYet(status)
            return True

        # An ACPI shutdown is a request the server's OS may take its time over, or ignore.
        waiting.wait_for(f"see server {self._server_id()} {wanted}", reached, timeout=ACTION_TIMEOUT,
                         interval=0.5, backoff=2.0, max_interval=5.0)

    # -- remove ------------------------------------------------------------------------------------
    def remove(self) -> None:
        d = self.ctx.data
        if not d.get("uid"):
            return  # create() failed before it made anything
        client, errors = self.api()
        failures: list[str] = []
        # Servers first: a firewall stays "in use" while a server has it. Each step runs even when one before
        # failed, so one stuck resource does not strand the others. A rollback right after an interrupted
        # create finds the server locked by its create action, and its firewall in use until it is gone.
        for kind, recorded, busy in (("servers", "server_id", Locked), ("firewalls", "firewall_id", InUse),
                                     ("ssh_keys", "ssh_key_id", InUse)):
            try:
                self._delete_ours(client, errors, kind, recorded, busy)
            except ProvisionError as exc:
                failures.append(str(exc))
        if failures:
            raise DriverError("Could not remove everything: " + "; ".join(failures), driver=DRIVER,
                              hint=f"run `provision rm` again; what remains is labelled {LABEL_UID}={d['uid']}")

    def _delete_ours(self, client: Any, errors: Any, kind: str, recorded: str, busy: type[Exception]) -> None:
        """Delete every resource of ``kind`` carrying this machine's uid label, and the recorded one if the
        label search missed it; one still ``busy`` is retried for a while."""
        from hcloud.firewalls import Firewall
        from hcloud.servers import Server
        from hcloud.ssh_keys import SSHKey

        from provision import waiting

        model = {"servers": Server, "firewalls": Firewall, "ssh_keys": SSHKey}[kind]
        noun = kind[:-1].replace("_", " ")
        with errors(f"Finding the machine's {noun}s"):
            found = getattr(client, kind).get_all(label_selector=f"{LABEL_UID}={self.ctx.data['uid']}")
        ids = [int(r.id) for r in found]
        if self.ctx.data.get(recorded) and int(self.ctx.data[recorded]) not in ids:
            ids.append(int(self.ctx.data[recorded]))
        for resource_id in ids:
            what = f"Deleting {noun} {resource_id}"
            self.ctx.progress(what)

            def delete() -> Any:
                try:
                    with errors(what):
                        return getattr(client, kind).delete(model(id=resource_id)) or True
                except ResourceNotFound:
                    return True

            answer = waiting.wait_for(what, delete, timeout=FREE_TIMEOUT, interval=0.5, backoff=2.0,
                                      max_interval=5.0, retry_on=(busy,))
            if answer is not True:  # a server's delete is an action
                self.wait(answer, what)
        self.save(**{recorded: None})

    # -- clusters ----------------------------------------------------------------------------------
    def cluster_address(self) -> str:
        from .hz_cluster import cluster_ip

        return cluster_ip(self)

    def join_cluster(self, cluster: str) -> None:
        from .hz_cluster import join

        join(self, cluster)

    def leave_cluster(self, cluster: str, *, last: bool) -> None:
        from .hz_cluster import leave

        leave(self, cluster, last=last)
