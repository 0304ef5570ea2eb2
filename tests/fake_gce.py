"""A small but faithful fake of the Compute Engine v1 REST API, for the google driver's tests.

No Compute Engine emulator exists, so this serves the parts of the API the driver uses, with the real
URL paths, JSON field names and error shapes: instances (insert, get, list, delete, start, stop, reset,
setMetadata and setTags with fingerprint checking), disks (get, list, delete; a boot disk is created with its
instance and ``autoDelete`` is respected), firewalls, networks, images (get, getFromFamily), zones,
projects, and zone/global operations (get, wait) that stay RUNNING for a few polls before DONE.

Authentication is checked like the real front end: every API request needs a bearer token that is
either an access token handed out by ``POST /token`` (service-account JWT grant or refresh-token
grant) or a self-signed service-account JWT (AIP-4111, what the client library uses by default),
verified against the public key the test registered.

Addresses come from TEST-NET-1 (192.0.2.x, external) and 10.128.0.x (internal). Nothing listens
there: tests must never connect to them.

Every request is recorded (method, path, Host header) so tests can assert nothing else was asked.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import random
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# The real API always answers with selfLinks on this host, whichever endpoint was asked.
SELF_LINK_ROOT = "https://www.googleapis.com/compute/v1/"
API_PREFIX = "/compute/v1/"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
COMPUTE_SCOPES = {"https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/compute"}

DEFAULT_ZONES = ("us-central1-a", "us-central1-b", "us-central1-c", "europe-west1-b")
MACHINE_TYPES = ("e2-micro", "e2-small", "e2-medium", "e2-standard-2", "e2-standard-4",
                 "n1-standard-1", "n2-standard-2")
DISK_TYPES = ("pd-standard", "pd-balanced", "pd-ssd")

# Instance and disk states an operation walks through before it is DONE.
_INSERT_STEPS = ("PROVISIONING", "STAGING")
_START_STEPS = ("STAGING",)


# Network tags and firewall names: lower-case RFC 1035 labels.
TAG_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
MAX_TAGS = 64


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")


def _fingerprint() -> str:
    return base64.b64encode(secrets.token_bytes(8)).decode()


def _last(url_or_path: str) -> str:
    return url_or_path.rstrip("/").rsplit("/", 1)[-1]


class ApiError(Exception):
    """An error answer in the API's JSON shape."""

    def __init__(self, code: int, reason: str, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.status = status

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
        }
        if self.status:
            error["status"] = self.status
        return {"error": error}


def not_found(path: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{path}' was not found")


def already_exists(path: str) -> ApiError:
    return ApiError(409, "alreadyExists", f"The resource '{path}' already exists")


@dataclass
class Fault:
    """An injected failure for the next ``times`` calls of ``method`` (e.g. ``instances.insert``).

    ``operation_error`` makes the call succeed but its operation end DONE with an error (as quota and
    capacity failures do); ``http_status`` makes the call itself fail.
    """

    method: str
    code: str = "ZONE_RESOURCE_POOL_EXHAUSTED"
    message: str = "The zone does not have enough resources available to fulfill the request."
    operation_error: bool = True
    http_status: int = 400
    times: int = 1


@dataclass
class Operation:
    body: dict[str, Any]
    polls_left: int
    deadline: float  # an operation also completes on its own, polled or not, like the real one
    on_done: Any = None  # callable run once when the operation completes (applies or undoes the change)
    error: tuple[str, str] | None = None
    steps: tuple[str, ...] = ()  # status the target instance passes through on each poll
    target: tuple[str, str, str] | None = None  # (project, zone, instance) for the steps


@dataclass
class Project:
    name: str
    number: str
    zones: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=lambda: {"kind": "compute#metadata",
                                                               "fingerprint": _fingerprint(), "items": []})
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    instances: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # zone -> name -> body
    disks: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    firewalls: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    addresses: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # region -> name -> body
    operations: dict[str, Operation] = field(default_factory=dict)


class FakeGCE:
    """The fake's state and its HTTP server. Use as a context manager or call start()/stop()."""

    def __init__(self, projects: tuple[str, ...] = ("test-project",), zones: tuple[str, ...] = DEFAULT_ZONES,
                 op_polls: int = 3, op_seconds: float = 1.0) -> None:
        self.lock = threading.RLock()
        self.op_polls = op_polls
        self.op_seconds = op_seconds
        self.requests: list[dict[str, str]] = []
        self.faults: list[Fault] = []
        self.service_accounts: dict[str, Any] = {}  # email -> public key
        self.refresh_tokens: set[str] = set()
        self.tokens: dict[str, float] = {}  # access token -> expiry (epoch)
        self._ids = itertools.count(random.randint(10**17, 10**18))
        self._external = (f"192.0.2.{n}" for n in itertools.cycle(range(10, 255)))
        self._internal = (f"10.128.0.{n}" for n in itertools.cycle(range(2, 255)))
        self.projects: dict[str, Project] = {}
        for name in projects:
            self.add_project(name, zones)
        self._add_image_project()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up --------------------------------------------------------------------------------------
    def add_project(self, name: str, zones: tuple[str, ...] = DEFAULT_ZONES) -> Project:
        project = Project(name=name, number=str(random.randint(10**11, 10**12)), zones=zones)
        project.networks["default"] = self._network_body(name, "default")
        # A fresh project's default network comes with rules the tool must leave alone.
        project.firewalls["default-allow-internal"] = self._firewall_body(name, {
            "name": "default-allow-internal", "network": "global/networks/default", "priority": 65534,
            "sourceRanges": ["10.128.0.0/9"], "allowed": [{"IPProtocol": "tcp", "ports": ["0-65535"]}]})
        self.projects[name] = project
        return project

    def _add_image_project(self) -> None:
        debian = Project(name="debian-cloud", number="906666666666", zones=())
        for version, deprecated in (("v20240312", True), ("v20240910", False)):
            name = f"debian-12-bookworm-{version}"
            image = {
                "kind": "compute#image", "id": self._id(), "name": name, "family": "debian-12",
                "status": "READY", "diskSizeGb": "10", "architecture": "X86_64",
                "creationTimestamp": _now(), "description": f"Debian, Debian GNU/Linux, 12 (bookworm), {version}",
                "selfLink": f"{SELF_LINK_ROOT}projects/debian-cloud/global/images/{name}",
            }
            if deprecated:
                image["deprecated"] = {"state": "DEPRECATED", "replacement":
                                       f"{SELF_LINK_ROOT}projects/debian-cloud/global/images/debian-12-bookworm-v20240910"}
            debian.images[name] = image
        self.projects["debian-cloud"] = debian

    def register_service_account(self, email: str, public_key: Any) -> None:
        """Accept JWTs signed by this key for ``email`` (what the test's service-account file holds)."""
        with self.lock:
            self.service_accounts[email] = public_key

    def register_refresh_token(self, token: str) -> None:
        with self.lock:
            self.refresh_tokens.add(token)

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def add_static_address(self, project: str, region: str, name: str) -> str:
        with self.lock:
            ip = next(self._external)
            self.projects[project].addresses.setdefault(region, {})[name] = {
                "kind": "compute#address", "id": self._id(), "name": name, "address": ip,
                "addressType": "EXTERNAL", "status": "RESERVED",
                "region": f"{SELF_LINK_ROOT}projects/{project}/regions/{region}",
                "selfLink": f"{SELF_LINK_ROOT}projects/{project}/regions/{region}/addresses/{name}",
            }
            return ip

    # -- side doors for tests (what another tool or the console would do) ------------------------------
    def resources(self, project: str = "test-project") -> dict[str, list[str]]:
        """Names of everything in a project, for asserting what a test left behind."""
        with self.lock:
            p = self.projects[project]
            return {
                "instances": sorted(f"{z}/{n}" for z, d in p.instances.items() for n in d),
                "disks": sorted(f"{z}/{n}" for z, d in p.disks.items() for n in d),
                "firewalls": sorted(p.firewalls),
            }

    def instance(self, project: str, zone: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            body = self.projects[project].instances.get(zone, {}).get(name)
            return copy.deepcopy(body)

    def firewall(self, project: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return copy.deepcopy(self.projects[project].firewalls.get(name))

    def set_instance_metadata(self, project: str, zone: str, name: str, items: list[dict[str, str]]) -> None:
        with self.lock:
            metadata = self.projects[project].instances[zone][name]["metadata"]
            metadata["items"] = copy.deepcopy(items)
            metadata["fingerprint"] = _fingerprint()

    def set_project_metadata(self, project: str, items: list[dict[str, str]]) -> None:
        with self.lock:
            metadata = self.projects[project].metadata
            metadata["items"] = copy.deepcopy(items)
            metadata["fingerprint"] = _fingerprint()

    # -- server --------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeGCE:
        fake = self

        class Handler(_Handler):
            state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-gce", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGCE:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers -------------------------------------------------------------------------------------
    def _id(self) -> str:
        return str(next(self._ids))

    def _project(self, name: str) -> Project:
        project = self.projects.get(name)
        if project is None:
            raise not_found(f"projects/{name}")
        return project

    def _zone(self, project: Project, zone: str) -> str:
        if zone not in project.zones:
            raise not_found(f"projects/{project.name}/zones/{zone}")
        return zone

    def _fault(self, method: str) -> Fault | None:
        """The injected fault for this call, if any: raised here when the call itself is to fail,
        returned when its operation is to end in an error."""
        for fault in self.faults:
            if fault.method == method and fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                if not fault.operation_error:
                    raise ApiError(fault.http_status, fault.code, fault.message)
                return fault
        return None

    def _network_body(self, project: str, name: str) -> dict[str, Any]:
        return {"kind": "compute#network", "id": self._id(), "name": name, "autoCreateSubnetworks": True,
                "routingConfig": {"routingMode": "REGIONAL"}, "creationTimestamp": _now(),
                "selfLink": f"{SELF_LINK_ROOT}projects/{project}/global/networks/{name}"}

    def _firewall_body(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["name"]
        direction = body.get("direction", "INGRESS")
        for key in ("sourceTags", "targetTags"):
            for tag in body.get(key, []):
                if not TAG_RE.fullmatch(tag):
                    raise ApiError(400, "invalid", f"Invalid value for field 'resource.{key}': '{tag}'. Must be a "
                                   "match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'")
        if direction == "EGRESS" and body.get("sourceTags"):
            raise ApiError(400, "invalid", "Invalid value for field 'resource.sourceTags': ''. Source tags cannot be "
                           "specified for egress firewall rules.")
        source_ranges = list(body.get("sourceRanges", []))
        if direction == "INGRESS" and not (source_ranges or body.get("sourceTags")
                                           or body.get("sourceServiceAccounts")):
            # The real API's (documented, often regretted) default: an ingress rule naming no source at all
            # admits every address.
            source_ranges = ["0.0.0.0/0"]
        out = {
            "kind": "compute#firewall", "id": self._id(), "creationTimestamp": _now(), "name": name,
            "description": body.get("description", ""),
            "network": f"{SELF_LINK_ROOT}projects/{project}/global/networks/{_last(body.get('network', 'default'))}",
            "priority": body.get("priority", 1000), "direction": direction,
            "disabled": body.get("disabled", False), "logConfig": {"enable": False},
            "selfLink": f"{SELF_LINK_ROOT}projects/{project}/global/firewalls/{name}",
        }
        if source_ranges:  # the real API leaves empty lists out of its answers
            out["sourceRanges"] = source_ranges
        for key in ("allowed", "denied", "targetTags", "sourceTags", "sourceServiceAccounts"):
            if body.get(key):
                out[key] = copy.deepcopy(body[key])
        return out

    def _operation(self, project: Project, zone: str | None, op_type: str, target_link: str, target_id: str,
                   on_done: Any = None, steps: tuple[str, ...] = (), target: tuple[str, str, str] | None = None,
                   fault: Fault | None = None) -> dict[str, Any]:
        name = f"operation-{int(time.time() * 1000)}-{secrets.token_hex(6)}-{secrets.token_hex(4)}"
        scope = f"projects/{project.name}/zones/{zone}" if zone else f"projects/{project.name}/global"
        body: dict[str, Any] = {
            "kind": "compute#operation", "id": self._id(), "name": name, "operationType": op_type,
            "targetLink": target_link, "targetId": target_id, "status": "RUNNING",
            "user": "fake@example.iam.gserviceaccount.com", "progress": 0,
            "insertTime": _now(), "startTime": _now(),
            "selfLink": f"{SELF_LINK_ROOT}{scope}/operations/{name}",
        }
        if zone:
            body["zone"] = f"{SELF_LINK_ROOT}projects/{project.name}/zones/{zone}"
        op = Operation(body=body, polls_left=self.op_polls, deadline=time.monotonic() + self.op_seconds,
                       on_done=on_done, steps=steps, target=target)
        if fault is not None:
            op.error = (fault.code, fault.message)
        project.operations[name] = op
        return copy.deepcopy(body)

    def _poll(self, project: Project, name: str, zone: str | None) -> dict[str, Any]:
        op = project.operations.get(name)
        scope = f"projects/{project.name}/zones/{zone}" if zone else f"projects/{project.name}/global"
        if op is None or ("zone" in op.body) != (zone is not None) or (
                zone and _last(op.body["zone"]) != zone):
            raise not_found(f"{scope}/operations/{name}")
        if op.body["status"] != "DONE":
            op.polls_left -= 1
            if op.target and op.steps:
                step = op.steps[min(len(op.steps) - 1, self.op_polls - op.polls_left - 1)]
                instance = self._find_instance(*op.target)
                if instance is not None and op.polls_left > 0:
                    instance["status"] = step
            if op.polls_left <= 0:
                self._finish(op)
            else:
                op.body["progress"] = int(100 * (self.op_polls - op.polls_left) / (self.op_polls + 1))
        return copy.deepcopy(op.body)

    def tick(self) -> None:
        """Complete every operation whose time is up, whether anyone polls it or not."""
        now = time.monotonic()
        for project in self.projects.values():
            for op in project.operations.values():
                if op.body["status"] != "DONE" and op.deadline <= now:
                    self._finish(op)

    def _finish(self, op: Operation) -> None:
        op.body["status"] = "DONE"
        op.body["progress"] = 100
        op.body["endTime"] = _now()
        if op.error is not None:
            code, message = op.error
            op.body["error"] = {"errors": [{"code": code, "message": message}]}
            op.body["httpErrorStatusCode"] = 503 if "EXHAUSTED" in code else 400
            op.body["httpErrorMessage"] = "SERVICE UNAVAILABLE" if "EXHAUSTED" in code else "BAD REQUEST"
            if op.on_done is not None:
                op.on_done(failed=True)
        elif op.on_done is not None:
            op.on_done(failed=False)

    def _find_instance(self, project: str, zone: str, name: str) -> dict[str, Any] | None:
        p = self.projects.get(project)
        return None if p is None else p.instances.get(zone, {}).get(name)

    # -- instances -----------------------------------------------------------------------------------
    def instances_insert(self, project: Project, zone: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name", "")
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
            raise ApiError(400, "invalid", f"Invalid value for field 'resource.name': '{name}'. Must be a match "
                           "of regex '[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?'")
        path = f"projects/{project.name}/zones/{zone}/instances/{name}"
        instances = project.instances.setdefault(zone, {})
        if name in instances:
            raise already_exists(path)
        machine_type = _last(body.get("machineType", ""))
        if machine_type not in MACHINE_TYPES:
            raise ApiError(400, "invalid", f"Invalid value for field 'resource.machineType': "
                           f"'{body.get('machineType', '')}'. Machine type with name '{machine_type}' does not "
                           f"exist in zone '{zone}'.")
        disks_in = body.get("disks") or []
        if not disks_in or not disks_in[0].get("boot", True):
            raise ApiError(400, "invalid", "Invalid value for field 'resource.disks': ''. Boot disk must be specified.")
        new_disks: list[dict[str, Any]] = []
        attached: list[dict[str, Any]] = []
        zone_disks = project.disks.setdefault(zone, {})
        for index, disk in enumerate(disks_in):
            params = disk.get("initializeParams") or {}
            disk_name = params.get("diskName") or (name if index == 0 else f"{name}-{index}")
            if disk_name in zone_disks:
                raise already_exists(f"projects/{project.name}/zones/{zone}/disks/{disk_name}")
            image = self._resolve_image(params.get("sourceImage", ""), field=f"resource.disks[{index}]")
            disk_type = _last(params.get("diskType", "pd-standard"))
            if disk_type not in DISK_TYPES:
                raise ApiError(400, "invalid", f"Invalid value for field 'resource.disks[{index}].initializeParams"
                               f".diskType': '{params.get('diskType')}'. The referenced diskType resource cannot be found.")
            size = str(params.get("diskSizeGb") or image["diskSizeGb"])
            if int(size) < int(image["diskSizeGb"]):
                raise ApiError(400, "invalid", f"Invalid value for field 'resource.disks[{index}].initializeParams"
                               f".diskSizeGb': '{size}'. Requested disk size cannot be smaller than the image size "
                               f"({image['diskSizeGb']} GB)")
            link = f"{SELF_LINK_ROOT}projects/{project.name}/zones/{zone}/disks/{disk_name}"
            new_disks.append({
                "kind": "compute#disk", "id": self._id(), "creationTimestamp": _now(), "name": disk_name,
                "sizeGb": size, "zone": f"{SELF_LINK_ROOT}projects/{project.name}/zones/{zone}",
                "status": "CREATING", "sourceImage": image["selfLink"], "sourceImageId": image["id"],
                "type": f"{SELF_LINK_ROOT}projects/{project.name}/zones/{zone}/diskTypes/{disk_type}",
                "labels": copy.deepcopy(params.get("labels", {})), "selfLink": link,
                "users": [f"{SELF_LINK_ROOT}{path}"],
            })
            attached.append({
                "kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": "READ_WRITE", "source": link,
                "deviceName": disk.get("deviceName") or f"persistent-disk-{index}", "index": index,
                "boot": index == 0, "autoDelete": bool(disk.get("autoDelete", False)), "interface": "SCSI",
                "diskSizeGb": size,
            })
        interfaces = []
        for index, nic in enumerate(body.get("networkInterfaces") or [{"network": "global/networks/default"}]):
            network = _last(nic.get("network", "default"))
            if network not in project.networks:
                raise not_found(f"projects/{project.name}/global/networks/{network}")
            region = zone.rsplit("-", 1)[0]
            subnetwork = _last(nic.get("subnetwork", "")) or network
            out_nic: dict[str, Any] = {
                "kind": "compute#networkInterface", "name": f"nic{index}", "fingerprint": _fingerprint(),
                "network": f"{SELF_LINK_ROOT}projects/{project.name}/global/networks/{network}",
                "subnetwork": f"{SELF_LINK_ROOT}projects/{project.name}/regions/{region}/subnetworks/{subnetwork}",
                "networkIP": nic.get("networkIP") or next(self._internal), "stackType": "IPV4_ONLY",
            }
            configs = []
            for config in nic.get("accessConfigs", []):
                nat_ip = config.get("natIP")
                if nat_ip and not any(a["address"] == nat_ip for a in project.addresses.get(region, {}).values()):
                    raise ApiError(400, "invalid", f"Invalid value for field 'resource.networkInterfaces[{index}]"
                                   f".accessConfigs[0].natIP': '{nat_ip}'. The specified external IP address "
                                   f"'{nat_ip}' was not found in region '{region}'.")
                configs.append({"kind": "compute#accessConfig", "type": config.get("type", "ONE_TO_ONE_NAT"),
                                "name": config.get("name", "External NAT"), "networkTier": "PREMIUM",
                                "natIP": nat_ip or next(self._external), "_static": bool(nat_ip)})
            if configs:
                out_nic["accessConfigs"] = configs
            interfaces.append(out_nic)
        tags = list(dict.fromkeys((body.get("tags") or {}).get("items", [])))
        for tag in tags:
            if not TAG_RE.fullmatch(tag):
                raise ApiError(400, "invalid", f"Invalid value for field 'resource.tags.items': '{tag}'. Must be a "
                               "match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'")
        fault = self._fault("instances.insert")
        metadata = copy.deepcopy(body.get("metadata") or {})
        instance: dict[str, Any] = {
            "kind": "compute#instance", "id": self._id(), "creationTimestamp": _now(), "name": name,
            "description": body.get("description", ""),
            "tags": {**({"items": list(tags)} if tags else {}), "fingerprint": _fingerprint()},
            "machineType": f"{SELF_LINK_ROOT}projects/{project.name}/zones/{zone}/machineTypes/{machine_type}",
            "status": "PROVISIONING", "zone": f"{SELF_LINK_ROOT}projects/{project.name}/zones/{zone}",
            "canIpForward": False, "networkInterfaces": interfaces, "disks": attached,
            "metadata": {"kind": "compute#metadata", "fingerprint": _fingerprint(),
                         "items": metadata.get("items", [])},
            "serviceAccounts": copy.deepcopy(body.get("serviceAccounts", [])),
            "selfLink": f"{SELF_LINK_ROOT}{path}",
            "scheduling": {"onHostMaintenance": "MIGRATE", "automaticRestart": True, "preemptible": False,
                           "provisioningModel": "STANDARD", **copy.deepcopy(body.get("scheduling", {}))},
            "labels": copy.deepcopy(body.get("labels", {})), "labelFingerprint": _fingerprint(),
            "fingerprint": _fingerprint(), "cpuPlatform": "Unknown CPU Platform",
        }
        if body.get("hostname"):
            instance["hostname"] = body["hostname"]
        instances[name] = instance
        for disk in new_disks:
            zone_disks[disk["name"]] = disk

        def done(failed: bool) -> None:
            current = instances.get(name)
            if current is not instance:
                return
            if failed:  # the real API leaves neither the instance nor its new disks behind
                del instances[name]
                for disk in new_disks:
                    zone_disks.pop(disk["name"], None)
                return
            instance["status"] = "RUNNING"
            instance["lastStartTimestamp"] = _now()
            instance["cpuPlatform"] = "AMD Rome"
            for disk in new_disks:
                disk["status"] = "READY"

        return self._operation(project, zone, "insert", instance["selfLink"], instance["id"], done,
                               steps=_INSERT_STEPS, target=(project.name, zone, name), fault=fault)

    def _instance(self, project: Project, zone: str, name: str) -> dict[str, Any]:
        instance = project.instances.get(zone, {}).get(name)
        if instance is None:
            raise not_found(f"projects/{project.name}/zones/{zone}/instances/{name}")
        return instance

    def instances_delete(self, project: Project, zone: str, name: str) -> dict[str, Any]:
        instance = self._instance(project, zone, name)
        fault = self._fault("instances.delete")
        instance["status"] = "STOPPING"
        instances = project.instances[zone]

        def done(failed: bool) -> None:
            if failed or instances.get(name) is not instance:
                return
            del instances[name]
            zone_disks = project.disks.get(zone, {})
            for attached in instance["disks"]:
                disk = zone_disks.get(_last(attached["source"]))
                if disk is None:
                    continue
                if attached.get("autoDelete"):
                    del zone_disks[disk["name"]]
                else:
                    disk["users"] = [u for u in disk.get("users", []) if u != instance["selfLink"]]

        return self._operation(project, zone, "delete", instance["selfLink"], instance["id"], done,
                               fault=fault)

    def instances_stop(self, project: Project, zone: str, name: str) -> dict[str, Any]:
        instance = self._instance(project, zone, name)
        if instance["status"] in ("TERMINATED", "STOPPED"):
            return self._operation(project, zone, "stop", instance["selfLink"], instance["id"])
        fault = self._fault("instances.stop")
        instance["status"] = "STOPPING"

        def done(failed: bool) -> None:
            if failed:
                instance["status"] = "RUNNING"
                return
            instance["status"] = "TERMINATED"
            instance["lastStopTimestamp"] = _now()
            for nic in instance["networkInterfaces"]:
                for config in nic.get("accessConfigs", []):
                    if not config.get("_static"):  # an ephemeral external address is released on stop
                        config.pop("natIP", None)

        return self._operation(project, zone, "stop", instance["selfLink"], instance["id"], done,
                               fault=fault)

    def instances_start(self, project: Project, zone: str, name: str) -> dict[str, Any]:
        instance = self._instance(project, zone, name)
        if instance["status"] == "RUNNING":
            return self._operation(project, zone, "start", instance["selfLink"], instance["id"])
        if instance["status"] not in ("TERMINATED", "STOPPED"):
            raise ApiError(400, "resourceNotReady", f"The resource 'projects/{project.name}/zones/{zone}/instances/"
                           f"{name}' is not ready")
        fault = self._fault("instances.start")
        instance["status"] = "STAGING"
        for nic in instance["networkInterfaces"]:
            for config in nic.get("accessConfigs", []):
                if "natIP" not in config:
                    config["natIP"] = next(self._external)

        def done(failed: bool) -> None:
            instance["status"] = "TERMINATED" if failed else "RUNNING"
            if not failed:
                instance["lastStartTimestamp"] = _now()

        return self._operation(project, zone, "start", instance["selfLink"], instance["id"], done,
                               steps=_START_STEPS, target=(project.name, zone, name), fault=fault)

    def instances_reset(self, project: Project, zone: str, name: str) -> dict[str, Any]:
        instance = self._instance(project, zone, name)
        if instance["status"] != "RUNNING":
            raise ApiError(400, "resourceNotReady", f"The resource 'projects/{project.name}/zones/{zone}/instances/"
                           f"{name}' is not ready")
        fault = self._fault("instances.reset")
        return self._operation(project, zone, "reset", instance["selfLink"], instance["id"], fault=fault)

    def instances_set_metadata(self, project: Project, zone: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        instance = self._instance(project, zone, name)
        current = instance["metadata"]
        if body.get("fingerprint") != current["fingerprint"]:
            raise ApiError(412, "conditionNotMet", "Supplied fingerprint does not match current metadata fingerprint.")
        items = copy.deepcopy(body.get("items", []))
        keys = [item.get("key") for item in items]
        if len(keys) != len(set(keys)):
            raise ApiError(400, "invalid", "Invalid value for field 'resource.items': duplicate keys.")
        fault = self._fault("instances.setMetadata")
        # The fingerprint changes at once, so a second writer holding the old one is refused.
        current["fingerprint"] = _fingerprint()

        def done(failed: bool) -> None:
            if not failed:
                current["items"] = items
                current["fingerprint"] = _fingerprint()

        return self._operation(project, zone, "setMetadata", instance["selfLink"], instance["id"], done,
                               fault=fault)

    def instances_set_tags(self, project: Project, zone: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST .../instances/NAME/setTags`` with a ``Tags`` body: ``{"items": [...], "fingerprint": "..."}``.
        The items replace the instance's tags; a missing or stale fingerprint is refused with 412."""
        instance = self._instance(project, zone, name)
        current = instance["tags"]
        if body.get("fingerprint") != current["fingerprint"]:
            raise ApiError(412, "conditionNotMet", "Supplied fingerprint does not match current tags fingerprint.")
        items = list(body.get("items", []))
        for tag in items:
            if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
                raise ApiError(400, "invalid", f"Invalid value for field 'resource.items': '{tag}'. Must be a match "
                               "of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'")
        if len(items) > MAX_TAGS:
            raise ApiError(400, "invalid", f"Invalid value for field 'resource.items': ''. An instance can have at "
                           f"most {MAX_TAGS} tags.")
        fault = self._fault("instances.setTags")
        current["fingerprint"] = _fingerprint()

        def done(failed: bool) -> None:
            if not failed:
                kept = list(dict.fromkeys(items))  # the API keeps each tag once
                if kept:
                    current["items"] = kept
                else:
                    current.pop("items", None)  # empty lists are left out of answers
                current["fingerprint"] = _fingerprint()

        return self._operation(project, zone, "setTags", instance["selfLink"], instance["id"], done, fault=fault)

    # -- disks ---------------------------------------------------------------------------------------
    def _disk(self, project: Project, zone: str, name: str) -> dict[str, Any]:
        disk = project.disks.get(zone, {}).get(name)
        if disk is None:
            raise not_found(f"projects/{project.name}/zones/{zone}/disks/{name}")
        return disk

    def disks_delete(self, project: Project, zone: str, name: str) -> dict[str, Any]:
        disk = self._disk(project, zone, name)
        if disk.get("users"):
            raise ApiError(400, "resourceInUseByAnotherResource",
                           f"The disk resource 'projects/{project.name}/zones/{zone}/disks/{name}' is already being "
                           f"used by '{disk['users'][0].removeprefix(SELF_LINK_ROOT)}'")
        fault = self._fault("disks.delete")
        disk["status"] = "DELETING"

        def done(failed: bool) -> None:
            if not failed and project.disks[zone].get(name) is disk:
                del project.disks[zone][name]

        return self._operation(project, zone, "delete", disk["selfLink"], disk["id"], done, fault=fault)

    # -- firewalls -----------------------------------------------------------------------------------
    def firewalls_insert(self, project: Project, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name", "")
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
            raise ApiError(400, "invalid", f"Invalid value for field 'resource.name': '{name}'.")
        if name in project.firewalls:
            raise already_exists(f"projects/{project.name}/global/firewalls/{name}")
        network = _last(body.get("network", "default"))
        if network not in project.networks:
            raise not_found(f"projects/{project.name}/global/networks/{network}")
        if not body.get("allowed") and not body.get("denied"):
            raise ApiError(400, "invalid", "Invalid value for field 'resource.allowed': ''. Must specify at least one "
                           "of allowed or denied.")
        fault = self._fault("firewalls.insert")
        firewall = self._firewall_body(project.name, body)
        project.firewalls[name] = firewall

        def done(failed: bool) -> None:
            if failed and project.firewalls.get(name) is firewall:
                del project.firewalls[name]

        return self._operation(project, None, "insert", firewall["selfLink"], firewall["id"], done,
                               fault=fault)

    def firewalls_delete(self, project: Project, name: str) -> dict[str, Any]:
        firewall = project.firewalls.get(name)
        if firewall is None:
            raise not_found(f"projects/{project.name}/global/firewalls/{name}")
        fault = self._fault("firewalls.delete")

        def done(failed: bool) -> None:
            if not failed and project.firewalls.get(name) is firewall:
                del project.firewalls[name]

        return self._operation(project, None, "delete", firewall["selfLink"], firewall["id"], done,
                               fault=fault)

    # -- images --------------------------------------------------------------------------------------
    def _resolve_image(self, source: str, field: str) -> dict[str, Any]:
        match = re.search(r"projects/([^/]+)/global/images/(family/)?([^/]+)$", source)
        if not match:
            raise ApiError(400, "invalid", f"Invalid value for field '{field}.initializeParams.sourceImage': "
                           f"'{source}'. The referenced image resource cannot be found.")
        project, family, name = match.groups()
        try:
            return self.image_from_family(project, name) if family else self.image_get(project, name)
        except ApiError:
            raise ApiError(400, "invalid", f"Invalid value for field '{field}.initializeParams.sourceImage': "
                           f"'{source}'. The referenced image resource cannot be found.") from None

    def image_get(self, project: str, name: str) -> dict[str, Any]:
        image = self._project(project).images.get(name)
        if image is None:
            raise not_found(f"projects/{project}/global/images/{name}")
        return image

    def image_from_family(self, project: str, family: str) -> dict[str, Any]:
        candidates = [i for i in self._project(project).images.values()
                      if i.get("family") == family and "deprecated" not in i]
        if not candidates:
            raise not_found(f"projects/{project}/global/images/family/{family}")
        return max(candidates, key=lambda i: i["name"])

    # -- auth ----------------------------------------------------------------------------------------
    def check_auth(self, header: str | None) -> None:
        if not header or not header.startswith("Bearer "):
            raise ApiError(401, "required", "Login Required.", status="UNAUTHENTICATED")
        token = header[len("Bearer "):]
        if self.tokens.get(token, 0) > time.time():
            return
        claims = self._verify_jwt(token, audience=None) if token.count(".") == 2 else None
        if claims is not None and (claims.get("aud") == "https://compute.googleapis.com/"
                                   or set(str(claims.get("scope", "")).split()) & COMPUTE_SCOPES):
            return  # a self-signed JWT (AIP-4111): for this API by audience, or by scope
        raise ApiError(401, "authError", "Request had invalid authentication credentials. Expected OAuth 2 access "
                       "token, login cookie or other valid authentication credential.", status="UNAUTHENTICATED")

    def _verify_jwt(self, token: str, audience: str | None) -> dict[str, Any] | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        def b64(part: str) -> bytes:
            return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

        try:
            head, payload, signature = token.split(".")
            header = json.loads(b64(head))
            claims = json.loads(b64(payload))
        except ValueError:
            return None
        key = self.service_accounts.get(claims.get("iss", ""))
        if key is None or header.get("alg") != "RS256":
            return None
        try:
            key.verify(b64(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return None
        if claims.get("exp", 0) < time.time() or (audience and claims.get("aud") != audience):
            return None
        return claims

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type")
        if grant == JWT_GRANT:
            # google-auth addresses the grant to Google's token endpoint whatever token_uri says, and the
            # real endpoint wants exactly that audience.
            claims = self._verify_jwt(form.get("assertion", ""), audience=GOOGLE_TOKEN_AUDIENCE)
            if claims is None:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        elif grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
        else:
            return 400, {"error": "unsupported_grant_type", "error_description": f"Invalid grant_type: {grant}"}
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + 3600
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    # -- routing -------------------------------------------------------------------------------------
    def dispatch(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if not path.startswith(API_PREFIX + "projects/"):
            raise ApiError(404, "notFound", f"Not Found: {path}")
        parts = path[len(API_PREFIX):].strip("/").split("/")[1:]
        self.tick()
        project = self._project(parts[0])
        rest = parts[1:]
        route = (method, *rest)
        match route:
            case ("GET",):
                return {"kind": "compute#project", "id": project.number, "name": project.name,
                        "commonInstanceMetadata": copy.deepcopy(project.metadata),
                        "selfLink": f"{SELF_LINK_ROOT}projects/{project.name}"}
            case ("GET", "zones", zone):
                self._zone(project, zone)
                return {"kind": "compute#zone", "id": str(2000 + project.zones.index(zone)), "name": zone,
                        "status": "UP", "region": f"{SELF_LINK_ROOT}projects/{project.name}/regions/"
                        f"{zone.rsplit('-', 1)[0]}", "selfLink": f"{SELF_LINK_ROOT}projects/{project.name}/zones/{zone}"}
            case ("GET", "zones", zone, "instances"):
                self._zone(project, zone)
                items = [copy.deepcopy(i) for i in project.instances.get(zone, {}).values()]
                return self._list("compute#instanceList", items, project, f"zones/{zone}/instances")
            case ("POST", "zones", zone, "instances"):
                return self.instances_insert(project, self._zone(project, zone), body)
            case ("GET", "zones", zone, "instances", name):
                return copy.deepcopy(self._instance(project, self._zone(project, zone), name))
            case ("DELETE", "zones", zone, "instances", name):
                return self.instances_delete(project, self._zone(project, zone), name)
            case ("POST", "zones", zone, "instances", name, "stop"):
                return self.instances_stop(project, self._zone(project, zone), name)
            case ("POST", "zones", zone, "instances", name, "start"):
                return self.instances_start(project, self._zone(project, zone), name)
            case ("POST", "zones", zone, "instances", name, "reset"):
                return self.instances_reset(project, self._zone(project, zone), name)
            case ("POST", "zones", zone, "instances", name, "setMetadata"):
                return self.instances_set_metadata(project, self._zone(project, zone), name, body)
            case ("POST", "zones", zone, "instances", name, "setTags"):
                return self.instances_set_tags(project, self._zone(project, zone), name, body)
            case ("GET", "zones", zone, "disks"):
                self._zone(project, zone)
                items = [copy.deepcopy(d) for d in project.disks.get(zone, {}).values()]
                return self._list("compute#diskList", items, project, f"zones/{zone}/disks")
            case ("GET", "zones", zone, "disks", name):
                return copy.deepcopy(self._disk(project, self._zone(project, zone), name))
            case ("DELETE", "zones", zone, "disks", name):
                return self.disks_delete(project, self._zone(project, zone), name)
            case ("GET", "zones", zone, "operations", name):
                return self._poll(project, name, self._zone(project, zone))
            case ("POST", "zones", zone, "operations", name, "wait"):
                return self._wait(project, name, self._zone(project, zone))
            case ("GET", "global", "operations", name):
                return self._poll(project, name, None)
            case ("POST", "global", "operations", name, "wait"):
                return self._wait(project, name, None)
            case ("GET", "global", "firewalls"):
                items = [copy.deepcopy(f) for f in project.firewalls.values()]
                return self._list("compute#firewallList", items, project, "global/firewalls")
            case ("POST", "global", "firewalls"):
                return self.firewalls_insert(project, body)
            case ("GET", "global", "firewalls", name):
                firewall = project.firewalls.get(name)
                if firewall is None:
                    raise not_found(f"projects/{project.name}/global/firewalls/{name}")
                return copy.deepcopy(firewall)
            case ("DELETE", "global", "firewalls", name):
                return self.firewalls_delete(project, name)
            case ("GET", "global", "networks", name):
                network = project.networks.get(name)
                if network is None:
                    raise not_found(f"projects/{project.name}/global/networks/{name}")
                return copy.deepcopy(network)
            case ("GET", "global", "images", "family", family):
                return copy.deepcopy(self.image_from_family(project.name, family))
            case ("GET", "global", "images", name):
                return copy.deepcopy(self.image_get(project.name, name))
            case ("GET", "regions", region, "addresses", name):
                address = project.addresses.get(region, {}).get(name)
                if address is None:
                    raise not_found(f"projects/{project.name}/regions/{region}/addresses/{name}")
                return copy.deepcopy(address)
        raise ApiError(404, "notFound", f"Not Found: {method} {path}")

    def _wait(self, project: Project, name: str, zone: str | None) -> dict[str, Any]:
        # The real wait blocks up to two minutes; this one advances a single step, so a client must loop.
        return self._poll(project, name, zone)

    @staticmethod
    def _list(kind: str, items: list[dict[str, Any]], project: Project, where: str) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": kind, "id": f"projects/{project.name}/{where}",
                               "selfLink": f"{SELF_LINK_ROOT}projects/{project.name}/{where}"}
        if items:
            out["items"] = items
        return out


def _public(body: dict[str, Any]) -> dict[str, Any]:
    """Drop the fake's private bookkeeping keys (leading underscore) from an answer."""
    if isinstance(body, dict):
        return {k: _public(v) for k, v in body.items() if not k.startswith("_")}
    if isinstance(body, list):
        return [_public(v) for v in body]
    return body


class _Handler(BaseHTTPRequestHandler):
    state: FakeGCE
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not traffic
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(_public(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        fake = self.state
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with fake.lock:
            fake.requests.append({"method": self.command, "path": split.path, "host": self.headers.get("Host", ""),
                                  "query": split.query})
        try:
            if split.path == "/token" and self.command == "POST":
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                with fake.lock:
                    status, answer = fake.token(form)
                self._send(status, answer)
                return
            body = json.loads(raw) if raw else {}
            with fake.lock:
                fake.check_auth(self.headers.get("Authorization"))
                answer = fake.dispatch(self.command, split.path, body)
            if split.path.endswith("/wait"):
                time.sleep(0.01)
            self._send(200, answer)
        except ApiError as exc:
            self._send(exc.code, exc.body())
        except json.JSONDecodeError:
            self._send(400, ApiError(400, "parseError", "Parse Error").body())

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _handle
