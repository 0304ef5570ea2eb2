"""A small but faithful fake of the DigitalOcean API v2, for the digitalocean driver's tests.

No DigitalOcean emulator exists, so this serves the parts of the API the driver uses, written from the
public API reference: the real paths under ``/v2``, JSON bodies wrapped in their resource key
(``{"droplet": {...}}``), listings paged with ``page``/``per_page`` and ``links.pages`` (``first``, ``prev``,
``next``, ``last``) plus ``meta.total``, errors as ``{"id": "not_found", "message": "...", "request_id":
"..."}``, the ``ratelimit-limit``/``-remaining``/``-reset`` headers on every answer (and 429 with
``Retry-After`` when the budget is spent), bearer-token authentication (401 ``unauthorized``).

Resources: account, account SSH keys (by id or fingerprint), tags (creating one that exists is fine, as
on the real API; tagging and untagging resources), Droplets (create answers 202 with a ``create`` action
in ``links.actions``; status ``new`` until that action completes, then ``active`` with its networks; a
Droplet limit enforced with 422), Droplet actions (power_on, power_off, shutdown, reboot, power_cycle)
and ``/v2/actions/{id}``: actions stay ``in-progress`` for a few polls or seconds, then ``completed`` (or ``errored``
when told), firewalls (create checks that the tags exist; listing; delete).

It serves HTTPS (the SDK refuses to send a bearer token over plain HTTP) with a certificate for
127.0.0.1 made at start; ``ca_file`` is what a client must trust. Public addresses come from TEST-NET-3
(203.0.113.x), private ones from 10.110.0.x, unless a test hands its own: nothing listens there.
Every request is recorded (method, path, query, Host) so tests can assert nothing else was asked.
"""

from __future__ import annotations

import datetime
import hashlib
import base64
import itertools
import json
import re
import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

REGIONS = ("nyc1", "nyc3", "sfo3", "ams3", "fra1", "lon1", "sgp1", "tor1", "blr1", "syd1")
SIZES = ("s-1vcpu-512mb-10gb", "s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb")
IMAGES = {"ubuntu-24-04-x64": 160000001, "ubuntu-22-04-x64": 160000002, "debian-12-x64": 160000003}
TAG_RE = re.compile(r"[A-Za-z0-9:_-]{1,255}")
FIREWALL_NAME_RE = re.compile(r"[A-Za-z0-9.-]{1,255}")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,253}[A-Za-z0-9])?")
ACTION_KINDS = {"power_on", "power_off", "shutdown", "reboot", "power_cycle"}
RATE_LIMIT = 5000


class ApiError(Exception):
    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message


def not_found() -> ApiError:
    return ApiError(404, "not_found", "The resource you were accessing could not be found.")


def unprocessable(message: str) -> ApiError:
    return ApiError(422, "unprocessable_entity", message)


@dataclass
class Fault:
    """An injected failure for the next ``times`` requests matching ``method`` and ``path`` (a regex on the
    path), or, with ``action`` set, the next action of that type ends ``errored`` instead. With ``after`` the
    request is carried out first and only its answer is the error (a gateway timeout after the work was done)."""

    method: str = ""
    path: str = ""
    status: int = 422
    error_id: str = "unprocessable_entity"
    message: str = "injected failure"
    action: str | None = None
    times: int = 1
    after: bool = False


# The failures the tests (and bench/do_speed.py) inject, one per step of a create: a label, the fault, and a
# piece of the one-line error the driver must give.
FAILURES: list[tuple[str, Fault, str]] = [
    ("token refused", Fault("GET", "/v2/account", 401, "unauthorized", "Unable to authenticate you"),
     "Unable to authenticate you"),
    ("tag create refused", Fault("POST", "/v2/tags", 422, "unprocessable_entity", "tag limit reached"),
     "tag limit reached"),
    ("SSH key quota", Fault("POST", "/v2/account/keys", 422, "unprocessable_entity", "SSH key limit exceeded"),
     "SSH key limit exceeded"),
    ("firewall quota", Fault("POST", "/v2/firewalls", 422, "unprocessable_entity", "firewall limit exceeded"),
     "firewall limit exceeded"),
    ("droplet quota", Fault("POST", "/v2/droplets", 422, "unprocessable_entity",
                            "creating this/these droplet(s) will exceed your droplet limit"), "droplet limit"),
    ("create action errored", Fault(action="create"), "errored"),
    ("server error on create", Fault("POST", "/v2/droplets", 500, "server_error", "Server was unable to give you "
                                     "a response.", times=10), "unable to give you a response"),
    ("rate limited", Fault("POST", "/v2/droplets", 429, "too_many_requests", "API Rate limit exceeded.", times=10),
     "rate limited"),
    ("token revoked mid-create", Fault("POST", "/v2/droplets", 401, "unauthorized", "Unable to authenticate you"),
     "refused the token"),
]


def _public(value: Any) -> Any:
    """The answer without the fake's own bookkeeping (keys starting with ``_``)."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _md5_fingerprint(public_key: str) -> str:
    parts = public_key.split()
    try:
        digest = hashlib.md5(base64.b64decode(parts[1], validate=True)).digest()
    except (IndexError, ValueError):
        raise unprocessable("Key invalid, key should be of the form `type key [comment]`") from None
    return ":".join(f"{byte:02x}" for byte in digest)


@dataclass
class Account:
    droplet_limit: int = 10
    keys: dict[int, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)  # tag name -> droplet ids (as strings)
    droplets: dict[int, dict[str, Any]] = field(default_factory=dict)
    firewalls: dict[str, dict[str, Any]] = field(default_factory=dict)
    actions: dict[int, dict[str, Any]] = field(default_factory=dict)


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the file is also the CA a client trusts)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake DigitalOcean API")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "fake-do.pem", directory / "fake-do-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class FakeDigitalOcean:
    """The fake server. Use as a context manager; ``url`` is its endpoint, ``tokens`` the ones it accepts."""

    def __init__(self, *, action_polls: int = 2, action_seconds: float = 2.0, tokens: tuple[str, ...] = ("dop_v1_test",),
                 public_addresses: Iterator[str] | None = None, readdress_on_start: bool = False) -> None:
        self.account = Account()
        self.tokens = set(tokens)
        self.action_polls = action_polls  # an action is in-progress for this many polls,
        self.action_seconds = action_seconds  # or this long, whichever comes first
        # The real API keeps a Droplet's public address across power cycles; this knob stands for an address
        # that changed anyway (a reserved IP moved away), so tests can check that `start` notices.
        self.readdress_on_start = readdress_on_start
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self.rate_remaining = RATE_LIMIT
        self.lock = threading.RLock()
        self._ids = itertools.count(300000001)
        self._action_ids = itertools.count(1700000001)
        self._public = public_addresses or (f"203.0.113.{n}" for n in itertools.count(10))
        self._private = (f"10.110.0.{n}" for n in itertools.count(2))
        self._dir = tempfile.TemporaryDirectory(prefix="fake-do-")
        self.ca_file, key_file = _certificate(Path(self._dir.name))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle of the fake ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeDigitalOcean:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()

    def resources(self) -> dict[str, list[str]]:
        """Everything in the account, by kind (for 'nothing was left' assertions)."""
        a = self.account
        return {"droplets": sorted(str(d["name"]) for d in a.droplets.values()),
                "ssh_keys": sorted(str(k["name"]) for k in a.keys.values()),
                "firewalls": sorted(str(f["name"]) for f in a.firewalls.values()),
                "tags": sorted(a.tags)}

    def add_key(self, name: str, public_key: str) -> dict[str, Any]:
        """A key the user put in the account themselves."""
        with self.lock:
            return self._create_key({"name": name, "public_key": public_key})

    # -- HTTP plumbing ------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                fake.requests.append({"method": self.command, "path": split.path, "query": split.query,
                                      "host": self.headers.get("Host")})
                headers: dict[str, str] = {}
                try:
                    body = json.loads(raw) if raw else None
                    status, answer, headers = fake.dispatch(self.command, split.path, parse_qs(split.query),
                                                            body, self.headers.get("Authorization", ""))
                except ApiError as exc:
                    status = exc.status
                    answer = {"id": exc.error_id, "message": exc.message, "request_id": secrets.token_hex(16)}
                    if status == 429:
                        headers = {"Retry-After": "1"}
                except json.JSONDecodeError:
                    status, answer = 400, {"id": "bad_request", "message": "unparseable JSON",
                                           "request_id": secrets.token_hex(16)}
                data = b"" if answer is None else json.dumps(_public(answer)).encode()
                self.send_response(status)
                reset = int(time.time()) + 60
                for name, value in {"ratelimit-limit": str(RATE_LIMIT),
                                    "ratelimit-remaining": str(max(fake.rate_remaining, 0)),
                                    "ratelimit-reset": str(reset), **headers}.items():
                    self.send_header(name, value)
                if data:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = _serve

        return Handler

    def dispatch(self, method: str, path: str, query: dict[str, list[str]], body: Any,
                 authorization: str) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            if not authorization.startswith("Bearer ") or authorization[7:] not in self.tokens:
                raise ApiError(401, "unauthorized", "Unable to authenticate you")
            self.rate_remaining -= 1
            self._finish_due_actions()
            if self.rate_remaining < 0:
                raise ApiError(429, "too_many_requests", "API Rate limit exceeded.")
            struck = next((f for f in self.faults if f.action is None and f.times > 0 and f.method == method
                           and re.fullmatch(f.path, path)), None)
            if struck is not None:
                struck.times -= 1
                if not struck.after:
                    raise ApiError(struck.status, struck.error_id, struck.message)
            status, answer = self._route(method, path, query, body or {})
            if struck is not None:
                raise ApiError(struck.status, struck.error_id, struck.message)
            return status, answer, {}

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> tuple[int, Any]:
        parts = [unquote(part) for part in path.strip("/").split("/")]
        if parts[:1] != ["v2"]:
            raise not_found()
        p = parts[1:]
        a = self.account
        if p == ["account"] and method == "GET":
            return 200, {"account": {"droplet_limit": a.droplet_limit, "floating_ip_limit": 3, "volume_limit": 100,
                                     "email": "tester@example.com", "uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
                                     "email_verified": True, "status": "active", "status_message": ""}}
        if p == ["account", "keys"]:
            if method == "GET":
                return 200, self._page(path, query, "ssh_keys", list(a.keys.values()))
            if method == "POST":
                return 201, {"ssh_key": self._create_key(body)}
        if len(p) == 3 and p[:2] == ["account", "keys"]:
            key = self._find_key(p[2])
            if method == "GET":
                return 200, {"ssh_key": key}
            if method == "DELETE":
                del a.keys[key["id"]]
                return 204, None
        if p == ["tags"]:
            if method == "GET":
                return 200, self._page(path, query, "tags", [self._tag(t) for t in a.tags])
            if method == "POST":
                name = str(body.get("name") or "")
                if not TAG_RE.fullmatch(name):
                    raise ApiError(400, "bad_request", "tag name must contain only letters, numbers, colons, "
                                   "dashes and underscores")
                a.tags.setdefault(name, set())
                return 201, {"tag": self._tag(name)}
        if len(p) >= 2 and p[0] == "tags":
            if p[1] not in a.tags:
                raise not_found()
            if len(p) == 2 and method == "GET":
                return 200, {"tag": self._tag(p[1])}
            if len(p) == 2 and method == "DELETE":
                del a.tags[p[1]]
                for droplet in a.droplets.values():
                    droplet["tags"] = [t for t in droplet["tags"] if t != p[1]]
                for firewall in a.firewalls.values():
                    firewall["tags"] = [t for t in firewall["tags"] if t != p[1]]
                return 204, None
            if p[2:] == ["resources"] and method in ("POST", "DELETE"):
                for resource in body.get("resources") or []:
                    droplet = a.droplets.get(int(resource.get("resource_id", 0)))
                    if droplet is None or resource.get("resource_type") != "droplet":
                        raise not_found()
                    if method == "POST" and p[1] not in droplet["tags"]:
                        droplet["tags"].append(p[1])
                    if method == "DELETE":
                        droplet["tags"] = [t for t in droplet["tags"] if t != p[1]]
                return 204, None
        if p == ["droplets"]:
            if method == "GET":
                droplets = list(a.droplets.values())
                if "tag_name" in query:
                    droplets = [d for d in droplets if query["tag_name"][0] in d["tags"]]
                return 200, self._page(path, query, "droplets", droplets)
            if method == "POST":
                return self._create_droplet(body)
        if len(p) >= 2 and p[0] == "droplets":
            droplet = a.droplets.get(int(p[1])) if p[1].isdigit() else None
            if droplet is None:
                raise not_found()
            if len(p) == 2 and method == "GET":
                return 200, {"droplet": droplet}
            if len(p) == 2 and method == "DELETE":
                del a.droplets[droplet["id"]]
                return 204, None
            if p[2:] == ["actions"] and method == "POST":
                return 201, {"action": self._droplet_action(droplet, str(body.get("type")))}
        if len(p) == 2 and p[0] == "actions" and method == "GET":
            action = a.actions.get(int(p[1])) if p[1].isdigit() else None
            if action is None:
                raise not_found()
            self._poll(action)
            return 200, {"action": {k: v for k, v in action.items() if not k.startswith("_")}}
        if p == ["firewalls"]:
            if method == "GET":
                return 200, self._page(path, query, "firewalls", list(a.firewalls.values()))
            if method == "POST":
                return 202, {"firewall": self._create_firewall(body)}
        if len(p) == 2 and p[0] == "firewalls":
            firewall = a.firewalls.get(p[1])
            if firewall is None:
                raise not_found()
            if method == "GET":
                return 200, {"firewall": firewall}
            if method == "DELETE":
                del a.firewalls[p[1]]
                return 204, None
        raise not_found()

    # -- resources ----------------------------------------------------------------------------------
    def _page(self, path: str, query: dict[str, list[str]], key: str, items: list[Any]) -> dict[str, Any]:
        per_page = min(int(query.get("per_page", ["20"])[0]), 200)
        page = max(int(query.get("page", ["1"])[0]), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        link = f"https://api.digitalocean.com{path}?page={{}}&per_page={per_page}"
        pages: dict[str, str] = {}
        if page > 1:
            pages.update(first=link.format(1), prev=link.format(page - 1))
        if page < last:
            pages.update(next=link.format(page + 1), last=link.format(last))
        return {key: items[(page - 1) * per_page: page * per_page], "links": {"pages": pages},
                "meta": {"total": len(items)}}

    def _tag(self, name: str) -> dict[str, Any]:
        count = sum(1 for d in self.account.droplets.values() if name in d["tags"])
        return {"name": name, "resources": {"count": count, "droplets": {"count": count}}}

    def _create_key(self, body: dict[str, Any]) -> dict[str, Any]:
        name, public = str(body.get("name") or ""), str(body.get("public_key") or "")
        if not name:
            raise unprocessable("Name is too short (minimum is 1 character)")
        fingerprint = _md5_fingerprint(public)
        if any(k["fingerprint"] == fingerprint for k in self.account.keys.values()):
            raise unprocessable("SSH Key is already in use on your account")
        key = {"id": next(self._ids), "fingerprint": fingerprint, "public_key": public, "name": name}
        self.account.keys[key["id"]] = key
        return key

    def _find_key(self, ref: str) -> dict[str, Any]:
        for key in self.account.keys.values():
            if str(key["id"]) == ref or key["fingerprint"] == ref:
                return key
        raise not_found()

    def _create_firewall(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("name") or "")
        if not FIREWALL_NAME_RE.fullmatch(name):
            raise ApiError(400, "bad_request", "name: must contain only alphanumeric characters, dashes, and periods")
        for tag in body.get("tags") or []:
            if tag not in self.account.tags:
                raise ApiError(400, "bad_request", f"tag {tag} does not exist")
        for rule in [*(body.get("inbound_rules") or []), *(body.get("outbound_rules") or [])]:
            if rule.get("protocol") not in ("tcp", "udp", "icmp"):
                raise ApiError(400, "bad_request", "protocol must be one of tcp, udp, icmp")
        firewall = {"id": secrets.token_hex(4) + "-" + secrets.token_hex(2) + "-4" + secrets.token_hex(2)[1:]
                          + "-a" + secrets.token_hex(2)[1:] + "-" + secrets.token_hex(6),
                    "status": "succeeded", "created_at": _now(), "pending_changes": [], "name": name,
                    "droplet_ids": list(body.get("droplet_ids") or []), "tags": list(body.get("tags") or []),
                    "inbound_rules": body.get("inbound_rules") or [], "outbound_rules": body.get("outbound_rules") or []}
        self.account.firewalls[firewall["id"]] = firewall
        return firewall

    def _create_droplet(self, body: dict[str, Any]) -> tuple[int, Any]:
        a = self.account
        name = str(body.get("name") or "")
        if not HOSTNAME_RE.fullmatch(name):
            raise unprocessable("Name Only valid hostname characters are allowed. (a-z, A-Z, 0-9, . and -)")
        if body.get("region") not in REGIONS:
            raise unprocessable("You specified an invalid region for Droplet creation.")
        if body.get("size") not in SIZES:
            raise unprocessable("You specified an invalid size for Droplet creation.")
        image = body.get("image")
        if image not in IMAGES and image not in IMAGES.values():
            raise unprocessable("You specified an invalid image for Droplet creation.")
        for ref in body.get("ssh_keys") or []:
            try:
                self._find_key(str(ref))
            except ApiError:
                raise unprocessable(f"SSH key {ref} was not found") from None
        if len(a.droplets) >= a.droplet_limit:
            raise unprocessable("creating this/these droplet(s) will exceed your droplet limit")
        if len(str(body.get("user_data") or "").encode()) > 64 * 1024:
            raise unprocessable("user_data is too large")
        tags = list(dict.fromkeys(body.get("tags") or []))
        for tag in tags:
            if not TAG_RE.fullmatch(str(tag)):
                raise unprocessable(f"tag {tag} is invalid")
            a.tags.setdefault(tag, set())  # tags that do not exist are created
        droplet_id = next(self._ids)
        droplet = {"id": droplet_id, "name": name, "memory": 1024, "vcpus": 1, "disk": 25, "locked": False,
                   "status": "new", "created_at": _now(), "features": [], "backup_ids": [], "snapshot_ids": [],
                   "image": {"slug": image if isinstance(image, str) else None, "distribution": "Ubuntu"},
                   "size_slug": body["size"], "networks": {"v4": [], "v6": []},
                   "region": {"slug": body["region"], "name": body["region"]}, "tags": tags,
                   "volume_ids": [], "vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
                   "_request": body}
        a.droplets[droplet_id] = droplet
        action = self._new_action("create", droplet)
        public = {"self": f"https://api.digitalocean.com/v2/droplets/{droplet_id}"}
        return 202, {"droplet": {k: v for k, v in droplet.items() if not k.startswith("_")},
                     "links": {**public, "actions": [{"id": action["id"], "rel": "create",
                                                      "href": f"https://api.digitalocean.com/v2/actions/{action['id']}"}]}}

    def droplet(self, droplet_id: int) -> dict[str, Any]:
        return self.account.droplets[droplet_id]

    # -- actions ------------------------------------------------------------------------------------
    def _new_action(self, kind: str, droplet: dict[str, Any]) -> dict[str, Any]:
        errored = False
        for fault in self.faults:
            if fault.action == kind and fault.times > 0:
                fault.times -= 1
                errored = True
                break
        action = {"id": next(self._action_ids), "status": "in-progress", "type": kind, "started_at": _now(),
                  "completed_at": None, "resource_id": droplet["id"], "resource_type": "droplet",
                  "region_slug": droplet["region"]["slug"], "_polls": self.action_polls, "_errored": errored,
                  "_due": time.monotonic() + self.action_seconds}
        self.account.actions[action["id"]] = action
        return action

    def _droplet_action(self, droplet: dict[str, Any], kind: str) -> dict[str, Any]:
        if kind not in ACTION_KINDS:
            raise unprocessable(f"{kind} is not a valid action type")
        if droplet["status"] == "new":
            raise unprocessable("Droplet is currently locked for another action")
        action = self._new_action(kind, droplet)
        return {k: v for k, v in action.items() if not k.startswith("_")}

    def _finish_due_actions(self) -> None:
        """Actions also finish on their own, polled or not, as the real ones do."""
        for action in self.account.actions.values():
            if action["status"] == "in-progress" and time.monotonic() >= action["_due"]:
                self._finish(action)

    def _poll(self, action: dict[str, Any]) -> None:
        if action["status"] != "in-progress":
            return
        action["_polls"] -= 1
        if action["_polls"] <= 0:
            self._finish(action)

    def _finish(self, action: dict[str, Any]) -> None:
        action["completed_at"] = _now()
        if action["_errored"]:
            action["status"] = "errored"
            if action["type"] == "create":
                droplet = self.account.droplets.get(action["resource_id"])
                if droplet is not None:
                    droplet["status"] = "off"  # a failed build: the Droplet exists, broken, until deleted
            return
        action["status"] = "completed"
        droplet = self.account.droplets.get(action["resource_id"])
        if droplet is None:
            return
        kind = action["type"]
        if kind == "create":
            self._assign_addresses(droplet, keep_private=False)
            droplet["status"] = "active"
        elif kind in ("power_on", "reboot", "power_cycle") and droplet["status"] == "off":
            if kind == "power_on" and self.readdress_on_start:
                self._assign_addresses(droplet, keep_private=True)
            droplet["status"] = "active"
        elif kind in ("power_off", "shutdown"):
            droplet["status"] = "off"

    def _assign_addresses(self, droplet: dict[str, Any], keep_private: bool) -> None:
        private = [n for n in droplet["networks"]["v4"] if n["type"] == "private"]
        if not keep_private or not private:
            private = [{"ip_address": next(self._private), "netmask": "255.255.240.0", "gateway": "10.110.0.1",
                        "type": "private"}]
        public = {"ip_address": next(self._public), "netmask": "255.255.255.0", "gateway": "203.0.113.1",
                  "type": "public"}
        droplet["networks"]["v4"] = [public, *private]
        if droplet["_request"].get("ipv6"):
            droplet["networks"]["v6"] = [{"ip_address": f"2001:db8::{droplet['id'] % 65536:x}", "netmask": 64,
                                          "gateway": "2001:db8::1", "type": "public"}]
