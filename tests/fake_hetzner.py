"""A small but faithful fake of the Hetzner Cloud API v1, for the hetzner driver's tests.

No emulator exists, so this serves what the driver uses, written from the public API reference
(docs.hetzner.cloud): the real paths under ``/v1``, the JSON shapes of servers, SSH keys, firewalls,
networks, images, server types, locations and actions; pagination (``page``/``per_page``, at most 50,
``meta.pagination``); ``label_selector`` (``k=v``, ``k!=v``, ``k``, ``!k``, comma for AND); error bodies
``{"error": {"code", "message", "details"}}`` with their statuses; bearer-token authentication; and the
rate limit (``RateLimit-Limit``/``-Remaining``/``-Reset`` on every answer, one request refilled per second,
429 ``rate_limit_exceeded`` when empty). Actions start ``running`` and finish after a few polls or a
little time, polled or not; a server with a running action is ``locked`` to others.

Public addresses come from TEST-NET-3 (203.0.113.x) unless a test hands the fake its own; nothing listens
there. Every request is recorded (method, path, query, Host header).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/v1"
USER_DATA_LIMIT = 32 * 1024
HOSTNAME_RE = re.compile(r"(?=.{1,253}$)[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}"
                         r"[a-zA-Z0-9])?)*")
LABEL_KEY_RE = re.compile(r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_VALUE_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")

LOCATIONS = {  # name: (id, city, country, network zone)
    "fsn1": (1, "Falkenstein", "DE", "eu-central"), "nbg1": (2, "Nuremberg", "DE", "eu-central"),
    "hel1": (3, "Helsinki", "FI", "eu-central"), "ash": (4, "Ashburn, VA", "US", "us-east"),
    "hil": (5, "Hillsboro, OR", "US", "us-west"), "sin": (6, "Singapore", "SG", "ap-southeast"),
}
SERVER_TYPES = {  # name: (id, cores, memory GB, disk GB, architecture)
    "cx23": (104, 2, 4.0, 40, "x86"), "cx33": (105, 4, 8.0, 80, "x86"), "cpx22": (108, 3, 4.0, 80, "x86"),
    "cax11": (45, 2, 4.0, 40, "arm"),
}
IMAGES = (  # (id, name, architecture, os flavor, version)
    (114690387, "debian-12", "x86", "debian", "12"), (114690389, "debian-12", "arm", "debian", "12"),
    (161547269, "ubuntu-24.04", "x86", "ubuntu", "24.04"), (161547270, "ubuntu-24.04", "arm", "ubuntu", "24.04"),
)
# Statuses of https://docs.hetzner.cloud (error codes table).
STATUS = {"invalid_input": 400, "json_error": 400, "unauthorized": 401, "forbidden": 403,
          "resource_limit_exceeded": 403, "not_found": 404, "uniqueness_error": 409, "conflict": 409,
          "resource_in_use": 422, "locked": 423, "rate_limit_exceeded": 429, "server_error": 500}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class ApiError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or {}
        self.status = status or STATUS.get(code, 400)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def invalid(field_name: str, message: str) -> ApiError:
    return ApiError("invalid_input", f"invalid input in field '{field_name}'",
                    {"fields": [{"name": field_name, "messages": [message]}]})


@dataclass
class Fault:
    """An injected failure of the next ``times`` requests matching ``route`` (e.g. ``POST /servers`` or
    ``POST /servers/{id}/actions/poweron``). ``action_error`` lets the request succeed and its action end in
    ``error`` (as a failed placement does); otherwise the request itself is refused with ``code``."""

    route: str
    code: str = "server_error"
    message: str = "an injected failure"
    action_error: bool = False
    times: int = 1


@dataclass
class Action:
    body: dict[str, Any]
    polls_left: int
    deadline: float
    on_done: Callable[[bool], None] | None = None
    error: tuple[str, str] | None = None


@dataclass
class Account:
    servers: dict[int, dict[str, Any]] = field(default_factory=dict)
    ssh_keys: dict[int, dict[str, Any]] = field(default_factory=dict)
    firewalls: dict[int, dict[str, Any]] = field(default_factory=dict)
    networks: dict[int, dict[str, Any]] = field(default_factory=dict)
    actions: dict[int, Action] = field(default_factory=dict)


def matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.strip().rstrip("=")) != value.strip().lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeHetzner:
    """The fake's state, and its HTTP server while used as a context manager."""

    def __init__(self, tokens: tuple[str, ...] = (), action_polls: int = 2, action_seconds: float = 1.0,
                 addresses: Iterator[str] | None = None, rate_limit: int = 3600) -> None:
        self.lock = threading.RLock()
        self.tokens = set(tokens)
        self.action_polls, self.action_seconds = action_polls, action_seconds
        self.account = Account()
        self.requests: list[dict[str, str]] = []
        self.faults: list[Fault] = []
        self.limits = {"servers": 25, "ssh_keys": 100, "firewalls": 50, "networks": 50}
        self.rate_limit, self.rate_remaining, self._rate_at = rate_limit, float(rate_limit), time.monotonic()
        self._ids = itertools.count(4_000_000 + secrets.randbelow(1_000_000))
        self.addresses = addresses or (f"203.0.113.{n}" for n in itertools.cycle(range(10, 255)))
        self._v6 = (f"2001:db8:{n:x}::/64" for n in itertools.count(1))
        self._server: ThreadingHTTPServer | None = None

    # -- set-up and side doors (what the Cloud Console would do) -----------------------------------
    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def add_token(self, token: str) -> None:
        with self.lock:
            self.tokens.add(token)

    def revoke_token(self, token: str) -> None:
        with self.lock:
            self.tokens.discard(token)

    def drain_rate_limit(self) -> None:
        with self.lock:
            self.rate_remaining, self._rate_at = 0.0, time.monotonic()

    def resources(self) -> dict[str, list[str]]:
        """Names of everything in the account, for asserting what a test left behind."""
        with self.lock:
            a = self.account
            return {kind: sorted(r["name"] for r in getattr(a, kind).values())
                    for kind in ("servers", "ssh_keys", "firewalls", "networks")}

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            for body in getattr(self.account, kind).values():
                if body["name"] == name:
                    return copy.deepcopy(body)
        return None

    def add_network(self, name: str, zone: str = "eu-central", labels: dict[str, str] | None = None) -> int:
        with self.lock:
            return self._network_create({"name": name, "ip_range": "10.0.0.0/16", "labels": labels or {},
                                         "subnets": [{"type": "cloud", "ip_range": "10.0.1.0/24",
                                                      "network_zone": zone}]})["network"]["id"]

    def add_firewall(self, name: str) -> int:
        with self.lock:
            return self._firewall_create({"name": name, "rules": []})["firewall"]["id"]

    def swap_primary_ip(self, server_id: int) -> str:
        """Give a powered-off server another primary IPv4 (unassign its own, assign a new one)."""
        with self.lock:
            server = self.account.servers[server_id]
            assert server["status"] == "off", "primary IPs are swapped while the server is off"
            server["public_net"]["ipv4"] = {"id": next(self._ids), "ip": next(self.addresses), "blocked": False,
                                            "dns_ptr": "static.example.invalid"}
            return server["public_net"]["ipv4"]["ip"]

    # -- the HTTP side ---------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def __enter__(self) -> FakeHetzner:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"state": self}))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-hetzner", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- plumbing ------------------------------------------------------------------------------------
    def _id(self) -> int:
        return next(self._ids)

    def take_rate(self) -> tuple[int, int]:
        """Refill the bucket (one request a second) and take one request from it; returns what the
        ``RateLimit-Remaining`` and ``RateLimit-Reset`` headers say, and raises when the bucket is empty."""
        now = time.monotonic()
        self.rate_remaining = min(float(self.rate_limit), self.rate_remaining + (now - self._rate_at))
        self._rate_at = now
        if self.rate_remaining >= 1:
            self.rate_remaining -= 1
        reset = int(time.time() + (self.rate_limit - self.rate_remaining))
        self.last_rate = (int(self.rate_remaining), reset)
        return self.last_rate

    def _fault(self, route: str) -> Fault | None:
        for fault in self.faults:
            if fault.route == route and fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                if not fault.action_error:
                    raise ApiError(fault.code, fault.message)
                return fault
        return None

    def _action(self, command: str, resources: list[tuple[int, str]], on_done: Callable[[bool], None] | None = None,
                fault: Fault | None = None) -> dict[str, Any]:
        body = {"id": self._id(), "command": command, "status": "running", "progress": 0, "started": _now(),
                "finished": None, "resources": [{"id": i, "type": t} for i, t in resources], "error": None}
        action = Action(body, self.action_polls, time.monotonic() + self.action_seconds, on_done,
                        (fault.code, fault.message) if fault else None)
        self.account.actions[body["id"]] = action
        return copy.deepcopy(body)

    def _finish(self, action: Action) -> None:
        action.body.update(status="error" if action.error else "success", progress=100, finished=_now())
        if action.error:
            action.body["error"] = {"code": action.error[0], "message": action.error[1]}
        if action.on_done is not None:
            action.on_done(action.error is not None)

    def tick(self) -> None:
        """Finish every action whose time is up, polled or not, as the real ones do."""
        now = time.monotonic()
        for action in list(self.account.actions.values()):
            if action.body["status"] == "running" and action.deadline <= now:
                self._finish(action)

    def _poll(self, action_id: int) -> dict[str, Any]:
        action = self.account.actions.get(action_id)
        if action is None:
            raise ApiError("not_found", "action not found")
        if action.body["status"] == "running":
            action.polls_left -= 1
            if action.polls_left <= 0:
                self._finish(action)
            else:
                action.body["progress"] = min(90, action.body["progress"] + 100 // (self.action_polls + 1))
        return {"action": copy.deepcopy(action.body)}

    def _locked(self, resource_id: int, kind: str) -> None:
        for action in self.account.actions.values():
            if action.body["status"] == "running" and {"id": resource_id, "type": kind} in action.body["resources"]:
                raise ApiError("locked", f"{kind} is locked by another action ({action.body['command']})")

    def _get(self, kind: str, resource_id: int) -> dict[str, Any]:
        body = getattr(self.account, kind).get(resource_id)
        if body is None:
            raise ApiError("not_found", f"{kind[:-1].replace('_', ' ')} with ID '{resource_id}' not found")
        return body

    def _labels(self, body: dict[str, Any]) -> dict[str, str]:
        labels = body.get("labels") or {}
        if not isinstance(labels, dict):
            raise invalid("labels", "must be an object")
        for key, value in labels.items():
            if not LABEL_KEY_RE.fullmatch(str(key)) or not isinstance(value, str) or not LABEL_VALUE_RE.fullmatch(value):
                raise invalid("labels", f"label '{key}' is invalid")
        return dict(labels)

    def _unique_name(self, kind: str, name: Any) -> str:
        if not isinstance(name, str) or not name:
            raise invalid("name", "Missing data for required field.")
        if any(r["name"] == name for r in getattr(self.account, kind).values()):
            raise ApiError("uniqueness_error", "name is already used", {"fields": [{"name": "name"}]})
        return name

    def _quota(self, kind: str) -> None:
        if len(getattr(self.account, kind)) >= self.limits[kind]:
            raise ApiError("resource_limit_exceeded", f"{kind[:-1].replace('_', ' ')} limit exceeded",
                           {"limits": [{"name": f"project_limit_{kind}"}]})

    # -- catalog -------------------------------------------------------------------------------------
    @staticmethod
    def location_body(name: str) -> dict[str, Any]:
        lid, city, country, zone = LOCATIONS[name]
        return {"id": lid, "name": name, "description": f"{city} DC Park 1", "country": country, "city": city,
                "latitude": 50.47612, "longitude": 12.370071, "network_zone": zone}

    @staticmethod
    def server_type_body(name: str) -> dict[str, Any]:
        tid, cores, memory, disk, arch = SERVER_TYPES[name]
        return {"id": tid, "name": name, "description": name.upper(), "cores": cores, "memory": memory,
                "disk": disk, "deprecated": False, "deprecation": None, "prices": [], "storage_type": "local",
                "cpu_type": "shared", "architecture": arch, "category": "cost_optimized", "locations": [
                    {"id": LOCATIONS[loc][0], "name": loc, "deprecation": None, "available": True,
                     "recommended": loc == "fsn1"} for loc in LOCATIONS]}

    @staticmethod
    def image_body(image: tuple[Any, ...]) -> dict[str, Any]:
        iid, name, arch, flavor, version = image
        return {"id": iid, "type": "system", "status": "available", "name": name, "description": name,
                "image_size": None, "disk_size": 5, "created": "2024-01-01T00:00:00Z", "created_from": None,
                "bound_to": None, "os_flavor": flavor, "os_version": version, "rapid_deploy": True,
                "protection": {"delete": False}, "deprecated": None, "deleted": None, "labels": {},
                "architecture": arch}

    # -- servers -------------------------------------------------------------------------------------
    def _server_create(self, body: dict[str, Any]) -> dict[str, Any]:
        a = self.account
        name = self._unique_name("servers", body.get("name"))
        if not HOSTNAME_RE.fullmatch(name):
            raise invalid("name", "must be a valid hostname")
        type_name = body.get("server_type")
        st = next((n for n, v in SERVER_TYPES.items() if type_name in (n, v[0])), None)
        if st is None:
            raise invalid("server_type", "server type not found")
        image = next((i for i in IMAGES if body.get("image") == i[0]
                      or (body.get("image") == i[1] and i[2] == SERVER_TYPES[st][4])), None)
        if image is None:
            raise invalid("image", "image not found")
        if image[2] != SERVER_TYPES[st][4]:
            raise ApiError("invalid_input", "image architecture does not match the server type's",
                           {"fields": [{"name": "image", "messages": ["architecture mismatch"]}]})
        location = body.get("location") or "fsn1"
        location = next((n for n, v in LOCATIONS.items() if location in (n, v[0])), None)
        if location is None:
            raise invalid("location", "location not found")
        keys = []
        for ref in body.get("ssh_keys") or []:
            key = next((k for k in a.ssh_keys.values() if ref in (k["id"], k["name"])), None)
            if key is None:
                raise invalid("ssh_keys", f"ssh key {ref} not found")
            keys.append(key)
        firewalls = []
        for entry in body.get("firewalls") or []:
            firewalls.append(self._get("firewalls", entry.get("firewall")) if isinstance(entry, dict) else None)
            if firewalls[-1] is None:
                raise invalid("firewalls", "expected objects with a firewall id")
        networks = [self._get("networks", n) for n in body.get("networks") or []]
        zone = LOCATIONS[location][3]
        for network in networks:
            if not any(s["network_zone"] == zone for s in network["subnets"]):
                raise ApiError("invalid_input", f"network {network['id']} has no subnet in network zone {zone}")
        user_data = body.get("user_data")
        if user_data is not None and len(str(user_data).encode()) > USER_DATA_LIMIT:
            raise invalid("user_data", "Longer than maximum length 32768.")
        labels = self._labels(body)
        self._quota("servers")
        fault = self._fault("POST /servers")
        server_id = self._id()
        server: dict[str, Any] = {
            "id": server_id, "name": name, "status": "initializing", "created": _now(),
            "public_net": {
                "ipv4": {"id": self._id(), "ip": next(self.addresses), "blocked": False,
                         "dns_ptr": f"static.{server_id}.example.invalid"},
                "ipv6": {"id": self._id(), "ip": next(self._v6), "blocked": False, "dns_ptr": []},
                "floating_ips": [], "firewalls": [{"id": f["id"], "status": "pending"} for f in firewalls]},
            "private_net": [], "server_type": self.server_type_body(st),
            "datacenter": {"id": LOCATIONS[location][0], "name": f"{location}-dc14", "description": location,
                           "location": self.location_body(location)},
            "location": self.location_body(location), "image": self.image_body(image), "iso": None,
            "rescue_enabled": False, "locked": False, "backup_window": None, "outgoing_traffic": 0,
            "ingoing_traffic": 0, "included_traffic": 21990232555520, "protection": {"delete": False, "rebuild": False},
            "labels": labels, "volumes": [], "load_balancers": [], "primary_disk_size": SERVER_TYPES[st][3],
            "placement_group": None, "_user_data": user_data, "_ssh_keys": [k["public_key"] for k in keys],
        }
        a.servers[server_id] = server
        for firewall in firewalls:
            firewall["applied_to"].append({"type": "server", "server": {"id": server_id}})
        for network in networks:
            self._attach(server, network)
        start = body.get("start_after_create", True)

        next_actions = [self._action("start_server", [(server_id, "server")])] if start else []

        def done(failed: bool) -> None:
            server["status"] = "off" if failed or not start else "running"
            for entry in server["public_net"]["firewalls"]:
                entry["status"] = "applied"
            for body in next_actions:  # a server that was never made is never started
                follower = self.account.actions[body["id"]]
                if failed and follower.body["status"] == "running":
                    follower.error = ("action_failed", "the server could not be created")
                    self._finish(follower)

        action = self._action("create_server", [(server_id, "server")], done, fault)
        return {"server": self._public(server), "action": action, "next_actions": next_actions,
                "root_password": None if keys else secrets.token_urlsafe(12)}

    def _attach(self, server: dict[str, Any], network: dict[str, Any], ip: str | None = None) -> None:
        taken = {p["ip"] for s in self.account.servers.values() for p in s["private_net"]
                 if p["network"] == network["id"]}
        base = network["subnets"][0]["ip_range"].rsplit(".", 2)[0]
        ip = ip or next(f"{base}.0.{n}" for n in range(2, 255) if f"{base}.0.{n}" not in taken)
        server["private_net"].append({"network": network["id"], "ip": ip, "alias_ips": [],
                                      "mac_address": "86:00:00:%02x:%02x:%02x" % tuple(secrets.token_bytes(3))})
        network["servers"].append(server["id"])

    def _detach(self, server: dict[str, Any], network: dict[str, Any]) -> None:
        server["private_net"] = [p for p in server["private_net"] if p["network"] != network["id"]]
        network["servers"] = [s for s in network["servers"] if s != server["id"]]

    def _server_delete(self, server_id: int) -> dict[str, Any]:
        server = self._get("servers", server_id)
        self._locked(server_id, "server")
        fault = self._fault("DELETE /servers/{id}")
        server["status"] = "deleting"

        def done(failed: bool) -> None:
            if failed or self.account.servers.get(server_id) is not server:
                return
            del self.account.servers[server_id]
            for firewall in self.account.firewalls.values():
                firewall["applied_to"] = [r for r in firewall["applied_to"]
                                          if r.get("server", {}).get("id") != server_id]
            for network in self.account.networks.values():
                network["servers"] = [s for s in network["servers"] if s != server_id]

        return {"action": self._action("delete_server", [(server_id, "server")], done, fault)}

    def _server_action(self, server_id: int, command: str, body: dict[str, Any]) -> dict[str, Any]:
        server = self._get("servers", server_id)
        self._locked(server_id, "server")
        fault = self._fault(f"POST /servers/{{id}}/actions/{command}")
        status = server["status"]
        resources: list[tuple[int, str]] = [(server_id, "server")]
        on_done: Callable[[bool], None] | None = None
        if command == "poweron":
            if status == "off":
                server["status"] = "starting"
                on_done = lambda failed: server.update(status="off" if failed else "running")  # noqa: E731
            name = "start_server"
        elif command in ("poweroff", "shutdown"):
            if status == "running":
                if command == "poweroff":
                    server["status"] = "off"  # pulled plug: at once
                else:
                    server["status"] = "stopping"
                    on_done = lambda failed: server.update(status="running" if failed else "off")  # noqa: E731
            name = "stop_server" if command == "poweroff" else "shutdown_server"
        elif command in ("reboot", "reset"):
            name = f"{command}_server"
        elif command in ("attach_to_network", "detach_from_network"):
            network = self._get("networks", body.get("network"))
            attached = any(p["network"] == network["id"] for p in server["private_net"])
            if command == "attach_to_network":
                if attached:
                    raise ApiError("server_already_attached", "server is already attached to this network",
                                   status=412)
                zone = server["location"]["network_zone"]
                if not any(s["network_zone"] == zone for s in network["subnets"]):
                    raise ApiError("invalid_input", f"network {network['id']} has no subnet in network zone {zone}")
                on_done = lambda failed: None if failed else self._attach(server, network, body.get("ip"))  # noqa: E731
            else:
                if not attached:
                    raise ApiError("server_not_attached", "server is not attached to this network", status=412)
                on_done = lambda failed: None if failed else self._detach(server, network)  # noqa: E731
            resources.append((network["id"], "network"))
            name = command
        else:
            raise ApiError("not_found", f"action {command} not found")
        return {"action": self._action(name, resources, on_done, fault)}

    # -- ssh keys, firewalls, networks -----------------------------------------------------------------
    def _ssh_key_create(self, body: dict[str, Any]) -> dict[str, Any]:
        import base64
        import hashlib

        name = self._unique_name("ssh_keys", body.get("name"))
        parts = str(body.get("public_key") or "").split()
        try:
            blob = base64.b64decode(parts[1], validate=True) if len(parts) >= 2 else b""
        except ValueError:
            blob = b""
        if not blob:
            raise invalid("public_key", "invalid public key")
        digest = hashlib.md5(blob).hexdigest()
        fingerprint = ":".join(digest[i:i + 2] for i in range(0, 32, 2))
        if any(k["fingerprint"] == fingerprint for k in self.account.ssh_keys.values()):
            raise ApiError("uniqueness_error", "SSH key with the same fingerprint already exists",
                           {"fields": [{"name": "public_key"}]})
        labels = self._labels(body)
        self._quota("ssh_keys")
        self._fault("POST /ssh_keys")
        key = {"id": self._id(), "name": name, "fingerprint": fingerprint, "public_key": body["public_key"],
               "labels": labels, "created": _now()}
        self.account.ssh_keys[key["id"]] = key
        return {"ssh_key": copy.deepcopy(key)}

    def _firewall_create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._unique_name("firewalls", body.get("name"))
        rules = []
        for index, rule in enumerate(body.get("rules") or []):
            if rule.get("direction") not in ("in", "out") or rule.get("protocol") not in ("tcp", "udp", "icmp",
                                                                                          "esp", "gre"):
                raise invalid(f"rules[{index}]", "direction must be in/out, protocol tcp/udp/icmp/esp/gre")
            if rule["protocol"] in ("tcp", "udp") and not rule.get("port"):
                raise invalid(f"rules[{index}].port", "port is required for tcp and udp")
            if rule["direction"] == "in" and not rule.get("source_ips"):
                raise invalid(f"rules[{index}].source_ips", "source_ips is required for inbound rules")
            rules.append({"direction": rule["direction"], "protocol": rule["protocol"], "port": rule.get("port"),
                          "source_ips": list(rule.get("source_ips") or []),
                          "destination_ips": list(rule.get("destination_ips") or []),
                          "description": rule.get("description")})
        labels = self._labels(body)
        self._quota("firewalls")
        self._fault("POST /firewalls")
        firewall = {"id": self._id(), "name": name, "labels": labels, "created": _now(), "rules": rules,
                    "applied_to": []}
        self.account.firewalls[firewall["id"]] = firewall
        return {"firewall": copy.deepcopy(firewall), "actions": []}

    def _firewall_delete(self, firewall_id: int) -> None:
        firewall = self._get("firewalls", firewall_id)
        if firewall["applied_to"]:
            raise ApiError("resource_in_use", "firewall is still in use", status=422)
        self._fault("DELETE /firewalls/{id}")
        del self.account.firewalls[firewall["id"]]

    def _network_create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._unique_name("networks", body.get("name"))
        if not body.get("ip_range"):
            raise invalid("ip_range", "Missing data for required field.")
        subnets = []
        for subnet in body.get("subnets") or []:
            if subnet.get("network_zone") not in {v[3] for v in LOCATIONS.values()}:
                raise invalid("subnets", "network zone not found")
            subnets.append({"type": subnet.get("type", "cloud"), "ip_range": subnet["ip_range"],
                            "network_zone": subnet["network_zone"], "gateway": subnet["ip_range"].rsplit(".", 2)[0]
                            + ".0.1", "vswitch_id": None})
        labels = self._labels(body)
        self._quota("networks")
        self._fault("POST /networks")
        network = {"id": self._id(), "name": name, "ip_range": body["ip_range"], "subnets": subnets, "routes": [],
                   "servers": [], "load_balancers": [], "protection": {"delete": False}, "labels": labels,
                   "created": _now(), "expose_routes_to_vswitch": False}
        self.account.networks[network["id"]] = network
        return {"network": copy.deepcopy(network)}

    def _network_delete(self, network_id: int) -> None:
        network = self._get("networks", network_id)
        if network["servers"]:
            raise ApiError("resource_in_use", "network is still in use by servers", status=422)
        self._fault("DELETE /networks/{id}")
        del self.account.networks[network_id]

    # -- routing -------------------------------------------------------------------------------------
    @staticmethod
    def _public(body: Any) -> Any:
        if isinstance(body, dict):
            return {k: FakeHetzner._public(v) for k, v in body.items() if not k.startswith("_")}
        if isinstance(body, list):
            return [FakeHetzner._public(v) for v in body]
        return copy.deepcopy(body)

    def _page(self, key: str, items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
        try:
            page = int(query.get("page", ["1"])[0])
            per_page = int(query.get("per_page", ["25"])[0])
        except ValueError:
            raise invalid("page", "must be a number") from None
        if page < 1 or not 1 <= per_page <= 50:
            raise invalid("per_page", "must be between 1 and 50")
        if "label_selector" in query:
            items = [i for i in items if matches(i.get("labels") or {}, query["label_selector"][0])]
        if "name" in query:
            items = [i for i in items if i.get("name") == query["name"][0]]
        if "architecture" in query:
            items = [i for i in items if i.get("architecture") == query["architecture"][0]]
        if "status" in query:
            items = [i for i in items if i.get("status") in query["status"]]
        items = sorted(items, key=lambda i: i["id"])
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        return {key: self._public(chunk), "meta": {"pagination": {
            "page": page, "per_page": per_page, "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < last else None, "last_page": last, "total_entries": len(items)}}}

    def dispatch(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> tuple[int, Any]:
        if not path.startswith(PREFIX + "/"):
            raise ApiError("not_found", "not found")
        parts = path[len(PREFIX) + 1:].strip("/").split("/")
        self.tick()
        a = self.account
        kinds = {"servers": a.servers, "ssh_keys": a.ssh_keys, "firewalls": a.firewalls, "networks": a.networks}
        singular = {"servers": "server", "ssh_keys": "ssh_key", "firewalls": "firewall", "networks": "network"}
        try:
            ids = [int(p) for p in parts[1:2]]
        except ValueError:
            raise ApiError("invalid_input", f"invalid id '{parts[1]}'") from None
        match (method, parts[0], len(parts)):
            case ("GET", "actions", 2):
                return 200, self._poll(ids[0])
            case ("GET", "locations", 1):
                return 200, self._page("locations", [self.location_body(n) for n in LOCATIONS], query)
            case ("GET", "server_types", 1):
                return 200, self._page("server_types", [self.server_type_body(n) for n in SERVER_TYPES], query)
            case ("GET", "images", 1):
                return 200, self._page("images", [self.image_body(i) for i in IMAGES], query)
            case ("GET", "images", 2):
                image = next((i for i in IMAGES if i[0] == ids[0]), None)
                if image is None:
                    raise ApiError("not_found", f"image with ID '{ids[0]}' not found")
                return 200, {"image": self.image_body(image)}
            case ("GET", kind, 1) if kind in kinds:
                return 200, self._page(kind, list(kinds[kind].values()), query)
            case ("GET", kind, 2) if kind in kinds:
                return 200, {singular[kind]: self._public(self._get(kind, ids[0]))}
            case ("POST", "servers", 1):
                return 201, self._server_create(body)
            case ("POST", "ssh_keys", 1):
                return 201, self._ssh_key_create(body)
            case ("POST", "firewalls", 1):
                return 201, self._firewall_create(body)
            case ("POST", "networks", 1):
                return 201, self._network_create(body)
            case ("DELETE", "servers", 2):
                return 200, self._server_delete(ids[0])
            case ("DELETE", "ssh_keys", 2):
                self._get("ssh_keys", ids[0])
                self._fault("DELETE /ssh_keys/{id}")
                del a.ssh_keys[ids[0]]
                return 204, None
            case ("DELETE", "firewalls", 2):
                self._firewall_delete(ids[0])
                return 204, None
            case ("DELETE", "networks", 2):
                self._network_delete(ids[0])
                return 204, None
            case ("POST", "servers", 4) if parts[2] == "actions":
                return 201, self._server_action(ids[0], parts[3], body)
        raise ApiError("not_found", f"no route {method} {path}")

    def handle(self, method: str, target: str, headers: Any, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        """One HTTP exchange: authentication, the rate limit, the route; the status, body and headers."""
        split = urlsplit(target)
        out = {"X-Correlation-Id": secrets.token_hex(8), "RateLimit-Limit": str(self.rate_limit)}
        with self.lock:
            self.requests.append({"method": method, "path": split.path, "query": split.query,
                                  "host": headers.get("Host", "")})
            try:
                auth = headers.get("Authorization") or ""
                if not auth.startswith("Bearer ") or auth[len("Bearer "):] not in self.tokens:
                    raise ApiError("unauthorized", "unable to authenticate")
                empty = self.rate_remaining + (time.monotonic() - self._rate_at) < 1
                out["RateLimit-Remaining"], out["RateLimit-Reset"] = map(str, self.take_rate())
                if empty:
                    raise ApiError("rate_limit_exceeded", f"limit of {self.rate_limit} requests per hour reached")
                try:
                    body = json.loads(raw) if raw else {}
                except json.JSONDecodeError:
                    raise ApiError("json_error", "invalid JSON in request body") from None
                if not isinstance(body, dict):
                    raise ApiError("json_error", "the request body must be an object")
                status, answer = self.dispatch(method, split.path, parse_qs(split.query), body)
            except ApiError as exc:
                status, answer = exc.status, exc.body()
        return status, answer, out


class _Handler(BaseHTTPRequestHandler):
    state: FakeHetzner
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _exchange(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, answer, headers = self.state.handle(self.command, self.path, self.headers, raw)
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = _exchange
