"""The ``digitalocean`` driver: a Droplet with Docker, reached over SSH and TLS on 2376.

What it makes, each recorded in ``ctx.data`` (and checkpointed) by name *before* the call that makes it
and by id the moment the API answers, so ``remove()`` finds what a crash or Ctrl-C left behind:
- a tag ``provision-<uid>`` that only this machine's resources carry (``uid`` is random per machine);
- an SSH key in the account, ``provision-<machine>-<uid>``, unless ``--digitalocean-ssh-key-fingerprint``
  names one of the user's (never deleted);
- a cloud firewall ``provision-<machine>-<uid>`` for that tag, admitting SSH and the engine port (SSH alone
  when the engine is reached over SSH), all outbound traffic allowed;
- the Droplet, carrying the tag (found by it when its id never came back), the common tag ``provision``
  and the user's ``--digitalocean-tags``.
``remove()`` deletes exactly these. Lifecycle verbs are Droplet actions, each polled to completion:
``start`` power_on, ``stop`` shutdown, ``kill`` power_off, ``restart`` reboot.

A cluster's door is one firewall, ``provision-cluster-<cluster>``, admitting the swarm ports from Droplets
carrying the tag of the same name to Droplets carrying it; members are tagged on join, and their swarm
traffic goes over their VPC (private) addresses. The firewall and tag go with the last member.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import secrets
from pathlib import Path
from typing import Any

from provision import waiting
from provision.driver import KEEP_SHARED, Capabilities, Driver, MachineState, OptionSpec, SSHEndpoint
from provision.errors import DriverError, UsageError

from .clusters import SWARM_PORTS, cluster_label
from .do_api import DRIVER, DigitalOceanApi, ResourceNotFound, attempt_each, find_token, ignore_missing

COMMON_TAG = "provision"
CREATE_TIMEOUT = 600.0
ACTION_TIMEOUT = 300.0
ANYWHERE = {"addresses": ["0.0.0.0/0", "::/0"]}
# DigitalOcean's rules: tags are letters, digits, colons, dashes and underscores; a fingerprint is MD5 hex.
TAG_RE = re.compile(r"[A-Za-z0-9:_-]{1,255}")
FINGERPRINT_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){15}")
USER_DATA_LIMIT = 64 * 1024

# https://docs.digitalocean.com/reference/api/api-reference/#tag/Droplets (status)
STATES: dict[str, MachineState] = {
    "new": MachineState.STARTING,
    "active": MachineState.RUNNING,
    "off": MachineState.STOPPED,
    "archive": MachineState.ERROR,
}

def _opt(flag: str, help: str, **kw: Any) -> OptionSpec:
    """Docker Machine's flag ``--digitalocean-FLAG`` and its variable ``DIGITALOCEAN_FLAG``."""
    return OptionSpec(flag=f"digitalocean-{flag}", help=help, envvar="DIGITALOCEAN_" + flag.upper().replace("-", "_"),
                      **kw)


OPTIONS: tuple[OptionSpec, ...] = (
    _opt("access-token", "API token (default: doctl's current context); never stored", secret=True),
    _opt("image", "Image slug or id", default="ubuntu-24-04-x64"),
    _opt("region", "Region slug", default="nyc3"),
    _opt("size", "Droplet size slug", default="s-1vcpu-1gb"),
    _opt("ipv6", "Enable IPv6", type=bool, default=False),
    _opt("private-networking", "Ask for private networking (every Droplet is in a VPC today)", type=bool,
         default=False),
    _opt("backups", "Enable backups", type=bool, default=False),
    _opt("userdata", "File with cloud-init user data, merged with the tool's"),
    _opt("ssh-user", "SSH user", default="root"),
    _opt("ssh-port", "SSH port", type=int, default=22),
    _opt("ssh-key-path", "Private key to use instead of a generated one (its .pub is added to the account "
         "unless --digitalocean-ssh-key-fingerprint is given)"),
    _opt("ssh-key-fingerprint", "MD5 fingerprint of a key already in the account (needs "
         "--digitalocean-ssh-key-path); never deleted"),
    _opt("monitoring", "Install the monitoring agent", type=bool, default=False),
    _opt("tags", "Extra tags, comma-separated"),
    _opt("endpoint", "API base URL (a proxy or a compatible API; HTTPS)"),
)


def md5_fingerprint(public_line: str) -> str:
    """DigitalOcean's key fingerprint: the MD5 of the key blob, as colon-separated hex pairs."""
    try:
        blob = base64.b64decode(public_line.split()[1], validate=True)
    except (IndexError, ValueError) as exc:
        raise UsageError("the SSH public key is not an OpenSSH public key line") from exc
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def parse_tags(text: str | None) -> list[str]:
    tags = [t.strip() for t in (text or "").split(",") if t.strip()]
    for tag in tags:
        if not TAG_RE.fullmatch(tag):
            raise UsageError(f'--digitalocean-tags "{tag}": letters, digits, ":", "-" and "_" only (255 at most)')
    return list(dict.fromkeys(tags))


def firewall_rules(ssh_port: int, engine_port: int | None) -> list[dict[str, Any]]:
    ports = [ssh_port] + ([engine_port] if engine_port else [])
    return [{"protocol": "tcp", "ports": str(port), "sources": ANYWHERE} for port in dict.fromkeys(ports)]


OUTBOUND_ALL = [{"protocol": protocol, "ports": "all" if protocol != "icmp" else "0", "destinations": ANYWHERE}
                for protocol in ("tcp", "udp", "icmp")]


def cluster_rules(tag: str) -> list[dict[str, Any]]:
    return [{"protocol": protocol, "ports": str(port), "sources": {"tags": [tag]}} for port, protocol in SWARM_PORTS]


class DigitalOceanDriver(Driver):
    name = "digitalocean"
    requires = ("pydo",)
    description = "DigitalOcean Droplet (DIGITALOCEAN_ACCESS_TOKEN or doctl's token)"
    options = OPTIONS
    capabilities = Capabilities(provisions_engine=True, ssh=True, start=True, stop=True, restart=True, kill=True,
                                keys_at_boot=True, cluster=True)

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        parse_tags(options.get("digitalocean_tags"))
        keypath, fingerprint = options.get("digitalocean_ssh_key_path"), options.get("digitalocean_ssh_key_fingerprint")
        if fingerprint and not FINGERPRINT_RE.fullmatch(str(fingerprint).lower()):
            raise UsageError(f'--digitalocean-ssh-key-fingerprint "{fingerprint}" is not an MD5 fingerprint '
                             "(16 hex pairs separated by colons)")
        if fingerprint and not keypath:
            raise UsageError("--digitalocean-ssh-key-fingerprint needs --digitalocean-ssh-key-path (that key's "
                             "private half)")
        if keypath:
            path = Path(str(keypath)).expanduser()
            if not path.is_file():
                raise UsageError(f"--digitalocean-ssh-key-path {keypath}: no such file")
            if not fingerprint and not Path(f"{path}.pub").is_file():
                raise UsageError(f"--digitalocean-ssh-key-path {keypath}: no {path.name}.pub beside it to add "
                                 "to the account")
        userdata = options.get("digitalocean_userdata")
        if userdata and not Path(str(userdata)).expanduser().is_file():
            raise UsageError(f"--digitalocean-userdata {userdata}: no such file")
        port = options.get("digitalocean_ssh_port")
        if port is not None and not 0 < int(port) < 65536:
            raise UsageError(f"--digitalocean-ssh-port {port}: not a port")
        endpoint = options.get("digitalocean_endpoint")
        if endpoint and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", str(endpoint)):
            raise UsageError(f'--digitalocean-endpoint "{endpoint}" is not an http(s) URL')

    # -- settings --------------------------------------------------------------------------------
    def _api(self) -> DigitalOceanApi:
        token = find_token(self.ctx.option("digitalocean_access_token"), self.ctx.environ)
        endpoint = self.ctx.data.get("endpoint") or self.ctx.option("digitalocean_endpoint") or None
        return DigitalOceanApi(token=token, endpoint=endpoint)

    def _save(self, **values: Any) -> None:
        """Record ``values`` and persist them at once; a value of None drops the key from the record."""
        for key, value in values.items():
            if value is None:
                self.ctx.data.pop(key, None)
            else:
                self.ctx.data[key] = value
        self.ctx.checkpoint()

    # -- create ----------------------------------------------------------------------------------
    def create(self) -> None:
        opt = self.ctx.option
        self.check_options(self.ctx.options)
        keypath = opt("digitalocean_ssh_key_path")
        user_data = self._user_data()
        api = self._api()
        self.ctx.progress("Checking the DigitalOcean account")
        account = api.call("Reading the account", "account", "get")["account"]
        if account.get("status") not in (None, "active"):
            raise DriverError(f"The DigitalOcean account is {account.get('status')}: "
                              f"{account.get('status_message') or 'it cannot create Droplets'}", driver=DRIVER)
        uid = secrets.token_hex(8)
        base = f"provision-{self.ctx.machine_name}-{uid}"
        self._save(uid=uid, endpoint=opt("digitalocean_endpoint") or None, region=opt("digitalocean_region"),
                   ssh_user=opt("digitalocean_ssh_user"), ssh_port=int(opt("digitalocean_ssh_port")),
                   ssh_key_path=str(Path(keypath).expanduser()) if keypath else None)
        self._create_tag(api, f"provision-{uid}")
        key_ref = self._ensure_key(api, base, keypath)
        self._create_firewall(api, base)
        if self.ctx.cluster:
            self._ensure_cluster_firewall(api, self.ctx.cluster)
        self._create_droplet(api, key_ref, user_data)
        self.refresh(api)
        if not self.ctx.data.get("public_ip"):
            raise DriverError(f"Droplet {self.ctx.data['droplet_id']} has no public IPv4 address", driver=DRIVER)

    def _user_data(self) -> str:
        from .aws_userdata import merge_user_data, tool_cloud_config

        path = self.ctx.option("digitalocean_userdata")
        raw = None
        if path:
            try:
                raw = Path(path).expanduser().read_bytes()
            except OSError as exc:
                raise UsageError(f"--digitalocean-userdata {path}: {exc.strerror}") from exc
        merged = merge_user_data(tool_cloud_config(self.ctx.machine_name, int(self.ctx.option("digitalocean_ssh_port"))),
                                 raw, f"--digitalocean-userdata {path}")
        if merged[:2] == b"\x1f\x8b":  # packed for EC2's 16 KiB; DigitalOcean takes 64 KiB of text
            merged = gzip.decompress(merged)
        if len(merged) > USER_DATA_LIMIT:
            raise UsageError(f"--digitalocean-userdata {path}: too large (DigitalOcean takes 64 KiB of text)")
        return merged.decode()

    def _create_tag(self, api: DigitalOceanApi, tag: str) -> None:
        self._save(tag=tag)
        self.ctx.progress(f"Creating tag {tag}")
        api.call(f"Creating tag {tag}", "tags", "create", {"name": tag})

    def _ensure_key(self, api: DigitalOceanApi, name: str, keypath: str | None) -> int:
        """The account key the Droplet gets: the user's (named by fingerprint, or already holding the public
        half of ``--digitalocean-ssh-key-path``), used and never deleted; else one added for this machine."""
        fingerprint = self.ctx.option("digitalocean_ssh_key_fingerprint")
        public = Path(f"{Path(keypath).expanduser()}.pub") if keypath else self.ctx.ssh_key_path.with_suffix(".pub")
        line = "" if fingerprint else public.read_text().strip()
        if keypath and not fingerprint:
            fingerprint = md5_fingerprint(line)  # the account refuses a second copy of a key: use the first
        if fingerprint:
            try:
                key = api.call(f"Finding SSH key {fingerprint}", "ssh_keys", "get", str(fingerprint).lower())["ssh_key"]
            except ResourceNotFound:
                if not line:
                    raise
            else:
                self._save(key_fingerprint=key["fingerprint"], key_id=key["id"], key_owned=False)
                return int(key["id"])
        self._save(key_name=name, key_owned=True)
        self.ctx.progress(f"Adding SSH key {name} to the account")
        try:
            key = api.call(f"Adding SSH key {name}", "ssh_keys", "create", {"name": name, "public_key": line})["ssh_key"]
        except DriverError:
            # The SDK retries a lost answer; the account then refuses the copy: the first attempt made ours.
            try:
                key = api.call(f"Finding SSH key {name}", "ssh_keys", "get", md5_fingerprint(line))["ssh_key"]
            except ResourceNotFound:
                key = {}
            if key.get("name") != name:
                raise
        self._save(key_id=key["id"], key_fingerprint=key["fingerprint"])
        return int(key["id"])

    def _create_firewall(self, api: DigitalOceanApi, name: str) -> None:
        self._save(firewall_name=name)
        self.ctx.progress(f"Creating firewall {name}")
        body = {"name": name, "tags": [self.ctx.data["tag"]],
                "inbound_rules": firewall_rules(int(self.ctx.data["ssh_port"]), self.exposed_engine_port()),
                "outbound_rules": OUTBOUND_ALL}
        firewall = api.call(f"Creating firewall {name}", "firewalls", "create", body)["firewall"]
        self._save(firewall_id=firewall["id"])

    def _create_droplet(self, api: DigitalOceanApi, key_ref: int | str, user_data: str) -> None:
        opt = self.ctx.option
        cluster = [cluster_label(self.ctx.cluster)] if self.ctx.cluster else []
        tags = list(dict.fromkeys([self.ctx.data["tag"], COMMON_TAG, *cluster, *parse_tags(opt("digitalocean_tags"))]))
        body = {"name": self.ctx.machine_name, "region": opt("digitalocean_region"), "size": opt("digitalocean_size"),
                "image": opt("digitalocean_image"), "ssh_keys": [key_ref], "backups": bool(opt("digitalocean_backups")),
                "ipv6": bool(opt("digitalocean_ipv6")), "monitoring": bool(opt("digitalocean_monitoring")),
                "private_networking": bool(opt("digitalocean_private_networking")), "user_data": user_data,
                "tags": tags}
        self._save(droplet_name=self.ctx.machine_name, image=opt("digitalocean_image"), size=opt("digitalocean_size"))
        self.ctx.progress(f"Creating a {body['size']} Droplet in {body['region']} from {body['image']}")
        reply = api.call("Creating the Droplet", "droplets", "create", body)
        droplet_id = int(reply["droplet"]["id"])
        self._save(droplet_id=droplet_id)
        actions = [a for a in (reply.get("links") or {}).get("actions", []) if a.get("rel") == "create"]
        self.ctx.progress(f"Waiting for Droplet {droplet_id} to be created")
        if actions:
            action = api.call("Reading the create action", "actions", "get", actions[0]["id"])["action"]
            api.wait_action(action, f"Creating Droplet {droplet_id}", CREATE_TIMEOUT)
        else:  # a compatible API that links no action: the Droplet's own status says when it is built
            waiting.wait_for(f"Droplet {droplet_id} to become active",
                             lambda: self._droplet(api).get("status") == "active", timeout=CREATE_TIMEOUT,
                             interval=0.5, backoff=1.5, max_interval=5.0)

    # -- remove ----------------------------------------------------------------------------------
    def remove(self) -> None:
        d = self.ctx.data
        # Without a uid create() failed before the first resource (nothing in the account is ours), unless the
        # record came from Docker Machine, whose Droplet and key have ids but no uid.
        steps = (self._remove_droplets, self._remove_firewall, self._remove_key, self._remove_tag) \
            if d.get("uid") or d.get(KEEP_SHARED) else ()
        failures = attempt_each(steps, self._api()) if steps else []
        if failures:
            where = f"; what remains carries the tag {d['tag']}" if d.get("tag") else ""
            raise DriverError("Could not remove everything: " + "; ".join(failures), driver=DRIVER,
                              hint=f"run `provision rm` again{where}")

    def _remove_droplets(self, api: DigitalOceanApi) -> None:
        d = self.ctx.data
        ids = {int(d["droplet_id"])} if d.get("droplet_id") else set()
        if d.get("tag"):  # a Droplet whose create answer never came back still carries the tag
            ids |= {int(x["id"]) for x in api.all("Listing the machine's Droplets", "droplets", "list", "droplets",
                                                  tag_name=d["tag"])}
        for droplet_id in sorted(ids):
            self.ctx.progress(f"Deleting Droplet {droplet_id}")
            ignore_missing(lambda: api.call(f"Deleting Droplet {droplet_id}", "droplets", "destroy", droplet_id))
        self._save(droplet_id=None, public_ip=None, private_ip=None, public_ipv6=None)

    def _remove_firewall(self, api: DigitalOceanApi) -> None:
        if self.ctx.data.get(KEEP_SHARED) and not self.ctx.data.get("uid"):
            return
        self._remove_named(api, "firewall", "firewalls", ("firewall_id", "firewall_name"))

    def _remove_key(self, api: DigitalOceanApi) -> None:
        if self.ctx.data.get("key_owned"):  # a key the user named by fingerprint is theirs
            self._remove_named(api, "SSH key", "ssh_keys", ("key_id", "key_name", "key_fingerprint", "key_owned"))

    def _remove_named(self, api: DigitalOceanApi, what: str, group: str, keys: tuple[str, ...]) -> None:
        """Delete the resource recorded under ``keys[0]`` (its id) and every one named ``keys[1]`` (the name is
        recorded before the create call, whose answer may have been lost after the work was done, and the
        SDK's retry of it may have made a second); then drop ``keys`` from the record."""
        d = self.ctx.data
        ids = {d[keys[0]]} if d.get(keys[0]) else set()
        name = d.get(keys[1])
        if name:
            ids |= {item["id"] for item in api.all(f"Listing {what}s", group, "list", group) if item.get("name") == name}
        for ident in sorted(ids, key=str):
            self.ctx.progress(f"Deleting {what} {name or ident}")
            ignore_missing(lambda: api.call(f"Deleting {what} {ident}", group, "delete", ident))
        self._save(**dict.fromkeys(keys))

    def _remove_tag(self, api: DigitalOceanApi) -> None:
        tag = self.ctx.data.get("tag")
        if tag:
            ignore_missing(lambda: api.call(f"Deleting tag {tag}", "tags", "delete", tag))
            self._save(tag=None)

    # -- clusters --------------------------------------------------------------------------------
    def cluster_address(self) -> str:
        return self._recorded("private_ip", "has no private (VPC) address recorded")

    def join_cluster(self, cluster: str) -> None:
        api = self._api()
        self._ensure_cluster_firewall(api, cluster)
        tag = cluster_label(cluster)
        api.call(f"Tagging Droplet {self._droplet_id()} with {tag}", "tags", "assign_resources", tag,
                 {"resources": [{"resource_id": str(self._droplet_id()), "resource_type": "droplet"}]})

    def leave_cluster(self, cluster: str, *, last: bool) -> None:
        tag = cluster_label(cluster)
        api = self._api()
        if self.ctx.data.get("droplet_id"):
            ignore_missing(lambda: api.call(f"Untagging Droplet {self.ctx.data['droplet_id']}", "tags",
                                            "unassign_resources", tag, {"resources": [
                                                {"resource_id": str(self.ctx.data["droplet_id"]),
                                                 "resource_type": "droplet"}]}))
        if last:
            for firewall in self._cluster_firewalls(api, tag):
                self.ctx.progress(f"Deleting firewall {tag}")
                ignore_missing(lambda: api.call(f"Deleting firewall {tag}", "firewalls", "delete", firewall["id"]))
            ignore_missing(lambda: api.call(f"Deleting tag {tag}", "tags", "delete", tag))
        self._save(cluster_firewalls={k: v for k, v in (self.ctx.data.get("cluster_firewalls") or {}).items()
                                      if k != cluster})

    def _cluster_firewalls(self, api: DigitalOceanApi, tag: str) -> list[dict[str, Any]]:
        return [f for f in api.all("Listing firewalls", "firewalls", "list", "firewalls") if f.get("name") == tag]

    def _ensure_cluster_firewall(self, api: DigitalOceanApi, cluster: str) -> None:
        tag = cluster_label(cluster)
        # Recorded before the call: the name is all that leave_cluster needs to find it again.
        self._save(cluster_firewalls={**(self.ctx.data.get("cluster_firewalls") or {}), cluster: tag})
        existing = self._cluster_firewalls(api, tag)
        if existing:
            sources = [s for r in existing[0].get("inbound_rules") or [] for s in
                       [*(r.get("sources") or {}).get("addresses", []), *(r.get("sources") or {}).get("tags", [])]]
            if set(sources) != {tag} or existing[0].get("tags") != [tag]:
                raise DriverError(f"Firewall {tag} exists but is not cluster {cluster}'s: it admits "
                                  f"{', '.join(sorted(set(sources)))}", driver=DRIVER,
                                  hint="rename or delete that firewall; provision never widens or adopts it")
            return
        self.ctx.progress(f"Opening the swarm ports between the members of cluster {cluster}")
        api.call(f"Creating tag {tag}", "tags", "create", {"name": tag})
        api.call(f"Creating firewall {tag}", "firewalls", "create",
                 {"name": tag, "tags": [tag], "inbound_rules": cluster_rules(tag), "outbound_rules": OUTBOUND_ALL})

    # -- lifecycle -------------------------------------------------------------------------------
    def _droplet_id(self) -> int:
        return int(self._recorded("droplet_id", "has no Droplet on record"))

    def _action(self, kind: str, verb: str) -> None:
        droplet_id = self._droplet_id()
        api = self._api()
        self.ctx.progress(f"{verb} Droplet {droplet_id}")
        action = api.call(f"{verb} Droplet {droplet_id}", "droplet_actions", "post", droplet_id, {"type": kind})["action"]
        api.wait_action(action, f"{verb} Droplet {droplet_id}", ACTION_TIMEOUT)

    def start(self) -> None:
        self._action("power_on", "Starting")

    def stop(self) -> None:
        self._action("shutdown", "Stopping")

    def kill(self) -> None:
        self._action("power_off", "Powering off")

    def restart(self) -> None:
        self._action("reboot", "Rebooting")

    def _droplet(self, api: DigitalOceanApi) -> dict[str, Any]:
        droplet_id = self._droplet_id()
        return api.call(f"Reading Droplet {droplet_id}", "droplets", "get", droplet_id)["droplet"]

    def state(self) -> MachineState:
        if not self.ctx.data.get("droplet_id"):
            return MachineState.NOT_FOUND
        try:
            droplet = self._droplet(self._api())
        except ResourceNotFound:
            return MachineState.NOT_FOUND
        return STATES.get(str(droplet.get("status")), MachineState.UNKNOWN)

    def refresh(self, api: DigitalOceanApi | None = None) -> bool:
        """Re-read the Droplet's addresses into ``ctx.data``; True if any address changed."""
        if not self.ctx.data.get("droplet_id"):
            return False
        droplet = self._droplet(api or self._api())
        networks = droplet.get("networks") or {}

        def first(family: str, kind: str) -> str | None:
            found = [n.get("ip_address") for n in networks.get(family) or [] if n.get("type") == kind]
            return str(found[0]) if found and found[0] else None

        before = self.addresses()
        self._save(public_ip=first("v4", "public"), private_ip=first("v4", "private"),
                   public_ipv6=first("v6", "public"))
        return self.addresses() != before

    # -- addresses (from ctx.data only) ----------------------------------------------------------
    def _recorded(self, key: str, missing: str) -> str:
        value = self.ctx.data.get(key)
        if not value:
            raise DriverError(f'Machine "{self.ctx.machine_name}" {missing}', driver=DRIVER)
        return str(value)

    def ip(self) -> str:
        return self._recorded("public_ip", "has no address recorded (not created, or stopped: start it)")

    def engine_url(self) -> str:
        return f"tcp://{self.ip()}:{self.engine_port()}"

    def ssh_endpoint(self) -> SSHEndpoint:
        d = self.ctx.data
        key = Path(d["ssh_key_path"]) if d.get("ssh_key_path") else self.ctx.ssh_key_path
        return SSHEndpoint(host=self.ip(), port=int(d.get("ssh_port") or 22), user=str(d.get("ssh_user") or "root"),
                           key_path=key)

    def addresses(self) -> list[str]:
        d = self.ctx.data
        found = [d.get("public_ip"), d.get("private_ip"), d.get("public_ipv6")]
        return [str(a) for a in dict.fromkeys(found) if a]

    def extra(self) -> dict[str, Any]:
        keys = ("region", "droplet_id", "droplet_name", "size", "image", "tag", "firewall_id", "firewall_name",
                "key_id", "key_fingerprint", "private_ip", "public_ipv6", "cluster_firewalls")
        return {key: self.ctx.data[key] for key in keys if self.ctx.data.get(key)}
