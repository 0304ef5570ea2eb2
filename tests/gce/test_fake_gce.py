"""The fake Compute Engine server answers as the real REST API does, for the parts the driver uses.

Raw HTTP here, so the paths, status codes and JSON shapes are checked as they go over the wire; the
token comes from the fake's /token through google-auth's real service-account JWT grant.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fake_gce import FakeGCE, Fault
from fixtures_gce import write_service_account

pytestmark = pytest.mark.gce
P = "/compute/v1/projects/test-project"
ZONE = f"{P}/zones/us-central1-a"


class Client:
    def __init__(self, fake: FakeGCE, token: str | None) -> None:
        self.fake = fake
        self.token = token

    def __call__(self, method: str, path: str, body: dict[str, Any] | None = None,
                 token: str | None = "default") -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.fake.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        bearer = self.token if token == "default" else token
        if bearer:
            request.add_header("Authorization", f"Bearer {bearer}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def done(self, op: dict[str, Any]) -> dict[str, Any]:
        """Poll an operation through its own URL (zone or global) until DONE; count the polls."""
        scope = f"{P}/zones/{op['zone'].rsplit('/', 1)[-1]}" if "zone" in op else f"{P}/global"
        for _ in range(20):
            if op["status"] == "DONE":
                return op
            status, op = self("GET", f"{scope}/operations/{op['name']}")
            assert status == 200
        raise AssertionError("operation never finished")


@pytest.fixture
def api(tmp_path: Path, loopback_only: Any) -> Any:
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    with FakeGCE(op_polls=3, op_seconds=30) as fake:
        key_file = write_service_account(tmp_path / "sa.json", fake, "test-project")
        # A token through the OAuth JWT grant at token_uri, as a service account without self-signed JWTs does.
        creds = service_account.Credentials.from_service_account_file(
            str(key_file), scopes=["https://www.googleapis.com/auth/cloud-platform"])
        creds.refresh(Request())
        assert creds.token.startswith("ya29.")
        assert [r["path"] for r in fake.requests] == ["/token"]
        yield Client(fake, creds.token)


def instance_body(name: str = "vm1", **extra: Any) -> dict[str, Any]:
    body = {
        "name": name, "machineType": "zones/us-central1-a/machineTypes/e2-medium",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
            "sourceImage": "projects/debian-cloud/global/images/family/debian-12", "diskSizeGb": "10"}}],
        "networkInterfaces": [{"network": "global/networks/default",
                               "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]}],
        "metadata": {"items": [{"key": "ssh-keys", "value": "u:ssh-ed25519 AAAA"}]},
    }
    body.update(extra)
    return body


def test_auth_is_required(api: Client) -> None:
    status, body = api("GET", f"{ZONE}/instances", token=None)
    assert status == 401 and body["error"]["code"] == 401 and body["error"]["status"] == "UNAUTHENTICATED"
    status, body = api("GET", f"{ZONE}/instances", token="ya29.forged")
    assert status == 401 and body["error"]["errors"][0]["reason"] == "authError"


def test_bad_jwt_grant_is_refused(api: Client) -> None:
    request = urllib.request.Request(api.fake.url + "/token", method="POST", data=b"grant_type="
                                     b"urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400 and json.loads(caught.value.read())["error"] == "invalid_grant"


def test_unknown_project_and_zone_are_404(api: Client) -> None:
    status, body = api("GET", "/compute/v1/projects/nope/zones/us-central1-a/instances")
    assert status == 404
    assert body["error"]["errors"][0] == {"message": "The resource 'projects/nope' was not found",
                                          "domain": "global", "reason": "notFound"}
    status, body = api("GET", f"{P}/zones/us-central1-q")
    assert status == 404 and "projects/test-project/zones/us-central1-q" in body["error"]["message"]


def test_image_family_gives_the_newest_non_deprecated(api: Client) -> None:
    status, image = api("GET", "/compute/v1/projects/debian-cloud/global/images/family/debian-12")
    assert status == 200 and image["name"] == "debian-12-bookworm-v20240910" and image["kind"] == "compute#image"
    status, old = api("GET", "/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20240312")
    assert status == 200 and old["deprecated"]["state"] == "DEPRECATED"
    assert api("GET", "/compute/v1/projects/debian-cloud/global/images/family/debian-99")[0] == 404


def test_instance_insert_runs_for_a_few_polls_then_is_done(api: Client) -> None:
    status, op = api("POST", f"{ZONE}/instances", instance_body())
    assert status == 200 and op["kind"] == "compute#operation" and op["status"] == "RUNNING"
    assert op["operationType"] == "insert" and op["targetLink"].endswith("/zones/us-central1-a/instances/vm1")
    assert isinstance(op["id"], str) and op["selfLink"].startswith("https://www.googleapis.com/compute/v1/")
    seen = []
    for _ in range(3):
        seen.append(api("GET", f"{ZONE}/instances/vm1")[1]["status"])
        op = api("GET", f"{ZONE}/operations/{op['name']}")[1]
    assert seen == ["PROVISIONING", "PROVISIONING", "STAGING"] and op["status"] == "DONE"
    status, vm = api("GET", f"{ZONE}/instances/vm1")
    assert vm["status"] == "RUNNING" and isinstance(vm["id"], str) and vm["kind"] == "compute#instance"
    nic = vm["networkInterfaces"][0]
    assert nic["networkIP"].startswith("10.128.0.") and nic["accessConfigs"][0]["natIP"].startswith("192.0.2.")
    assert set(nic["accessConfigs"][0]) == {"kind", "type", "name", "networkTier", "natIP"}
    assert vm["metadata"]["fingerprint"] and vm["metadata"]["items"][0]["key"] == "ssh-keys"
    status, disk = api("GET", f"{ZONE}/disks/vm1")
    assert status == 200 and disk["status"] == "READY" and disk["users"] == [vm["selfLink"]]
    assert disk["sourceImage"].endswith("/debian-12-bookworm-v20240910")
    listed = api("GET", f"{ZONE}/instances")[1]
    assert listed["kind"] == "compute#instanceList" and [i["name"] for i in listed["items"]] == ["vm1"]


def test_wait_also_returns_before_done(api: Client) -> None:
    op = api("POST", f"{ZONE}/instances", instance_body())[1]
    statuses = [api("POST", f"{ZONE}/operations/{op['name']}/wait")[1]["status"] for _ in range(3)]
    assert statuses == ["RUNNING", "RUNNING", "DONE"]
    # A zone operation is not found under the global scope.
    assert api("GET", f"{P}/global/operations/{op['name']}")[0] == 404


def test_operations_finish_on_their_own(tmp_path: Path) -> None:
    with FakeGCE(op_polls=100, op_seconds=0.2) as fake:
        write_service_account(tmp_path / "sa.json", fake, "test-project")
        fake.tokens["t"] = time.time() + 60
        client = Client(fake, "t")
        op = client("POST", f"{ZONE}/instances", instance_body())[1]
        time.sleep(0.3)
        assert client("GET", f"{ZONE}/instances/vm1")[1]["status"] == "RUNNING"
        assert client("GET", f"{ZONE}/operations/{op['name']}")[1]["status"] == "DONE"


def test_duplicate_names_are_409(api: Client) -> None:
    api.done(api("POST", f"{ZONE}/instances", instance_body())[1])
    status, body = api("POST", f"{ZONE}/instances", instance_body())
    assert status == 409 and body["error"]["errors"][0]["reason"] == "alreadyExists"
    rule = {"name": "fw1", "network": "global/networks/default", "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}
    api.done(api("POST", f"{P}/global/firewalls", rule)[1])
    status, body = api("POST", f"{P}/global/firewalls", rule)
    assert status == 409 and "projects/test-project/global/firewalls/fw1" in body["error"]["message"]


def test_bad_inputs_are_400(api: Client) -> None:
    status, body = api("POST", f"{ZONE}/instances", instance_body(machineType="zones/us-central1-a/machineTypes/x9"))
    assert status == 400 and "Machine type with name 'x9' does not exist" in body["error"]["message"]
    status, body = api("POST", f"{ZONE}/instances", instance_body(name="Bad_Name"))
    assert status == 400 and body["error"]["errors"][0]["reason"] == "invalid"
    status, body = api("POST", f"{P}/global/firewalls", {"name": "fw", "network": "global/networks/nope",
                                                          "allowed": [{"IPProtocol": "tcp"}]})
    assert status == 404
    assert api.fake.resources()["instances"] == []


def test_an_error_operation_leaves_nothing(api: Client) -> None:
    api.fake.inject(Fault("instances.insert"))
    op = api.done(api("POST", f"{ZONE}/instances", instance_body())[1])
    assert op["error"]["errors"][0]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert op["httpErrorStatusCode"] == 503
    assert api.fake.resources()["instances"] == [] and api.fake.resources()["disks"] == []


def test_stop_releases_the_ephemeral_ip_and_start_hands_out_a_new_one(api: Client) -> None:
    api.done(api("POST", f"{ZONE}/instances", instance_body())[1])
    first = api("GET", f"{ZONE}/instances/vm1")[1]["networkInterfaces"][0]["accessConfigs"][0]["natIP"]
    api.done(api("POST", f"{ZONE}/instances/vm1/stop")[1])
    stopped = api("GET", f"{ZONE}/instances/vm1")[1]
    assert stopped["status"] == "TERMINATED" and "natIP" not in stopped["networkInterfaces"][0]["accessConfigs"][0]
    assert api("POST", f"{ZONE}/instances/vm1/reset")[0] == 400  # not running
    api.done(api("POST", f"{ZONE}/instances/vm1/start")[1])
    started = api("GET", f"{ZONE}/instances/vm1")[1]
    assert started["status"] == "RUNNING"
    assert started["networkInterfaces"][0]["accessConfigs"][0]["natIP"] not in ("", first)


def test_set_metadata_checks_the_fingerprint(api: Client) -> None:
    api.done(api("POST", f"{ZONE}/instances", instance_body())[1])
    metadata = api("GET", f"{ZONE}/instances/vm1")[1]["metadata"]
    status, body = api("POST", f"{ZONE}/instances/vm1/setMetadata", {"fingerprint": "stale", "items": []})
    assert status == 412 and body["error"]["errors"][0]["reason"] == "conditionNotMet"
    items = [*metadata["items"], {"key": "startup-script", "value": "true"}]
    op = api("POST", f"{ZONE}/instances/vm1/setMetadata", {"fingerprint": metadata["fingerprint"], "items": items})[1]
    # The same fingerprint cannot be used twice: a second writer is refused.
    assert api("POST", f"{ZONE}/instances/vm1/setMetadata",
               {"fingerprint": metadata["fingerprint"], "items": []})[0] == 412
    api.done(op)
    after = api("GET", f"{ZONE}/instances/vm1")[1]["metadata"]
    assert after["items"] == items and after["fingerprint"] != metadata["fingerprint"]


def test_delete_honours_auto_delete(api: Client) -> None:
    body = instance_body()
    body["disks"][0]["autoDelete"] = False
    api.done(api("POST", f"{ZONE}/instances", body)[1])
    status, err = api("DELETE", f"{ZONE}/disks/vm1")
    assert status == 400 and err["error"]["errors"][0]["reason"] == "resourceInUseByAnotherResource"
    api.done(api("DELETE", f"{ZONE}/instances/vm1")[1])
    assert api("GET", f"{ZONE}/instances/vm1")[0] == 404
    disk = api("GET", f"{ZONE}/disks/vm1")[1]
    assert disk["users"] == []
    api.done(api("DELETE", f"{ZONE}/disks/vm1")[1])
    assert api("GET", f"{ZONE}/disks/vm1")[0] == 404

    api.done(api("POST", f"{ZONE}/instances", instance_body("vm2"))[1])
    api.done(api("DELETE", f"{ZONE}/instances/vm2")[1])
    assert api.fake.resources()["disks"] == []


def test_firewall_lifecycle_uses_global_operations(api: Client) -> None:
    rule = {"name": "fw1", "network": "projects/test-project/global/networks/default", "targetTags": ["t"],
            "sourceRanges": ["203.0.113.0/24"], "allowed": [{"IPProtocol": "tcp", "ports": ["22", "2376"]}]}
    op = api("POST", f"{P}/global/firewalls", rule)[1]
    assert "zone" not in op and "/global/operations/" in op["selfLink"]
    api.done(op)
    got = api("GET", f"{P}/global/firewalls/fw1")[1]
    assert got["kind"] == "compute#firewall" and got["direction"] == "INGRESS" and got["priority"] == 1000
    assert got["allowed"] == rule["allowed"] and got["network"].endswith("/global/networks/default")
    names = [f["name"] for f in api("GET", f"{P}/global/firewalls")[1]["items"]]
    assert names == ["default-allow-internal", "fw1"]
    api.done(api("DELETE", f"{P}/global/firewalls/fw1")[1])
    assert api("GET", f"{P}/global/firewalls/fw1")[0] == 404
    assert api("DELETE", f"{P}/global/firewalls/fw1")[0] == 404


def test_requests_are_recorded_with_their_host(api: Client) -> None:
    api("GET", f"{ZONE}/instances")
    last = api.fake.requests[-1]
    assert last["method"] == "GET" and last["path"] == f"{ZONE}/instances"
    assert last["host"] == f"127.0.0.1:{api.fake.port}"


def test_set_tags_checks_the_fingerprint_and_answers_with_a_zone_operation(api: Client) -> None:
    api.done(api("POST", f"{ZONE}/instances", instance_body())[1])
    tags = api("GET", f"{ZONE}/instances/vm1")[1]["tags"]
    assert "items" not in tags and tags["fingerprint"]  # no tags: the API leaves the empty list out
    status, body = api("POST", f"{ZONE}/instances/vm1/setTags", {"items": ["a"], "fingerprint": "stale"})
    assert status == 412 and body["error"]["errors"][0]["reason"] == "conditionNotMet"
    status, body = api("POST", f"{ZONE}/instances/vm1/setTags", {"items": ["Bad_Tag"],
                                                                  "fingerprint": tags["fingerprint"]})
    assert status == 400
    op = api("POST", f"{ZONE}/instances/vm1/setTags", {"items": ["a", "b"], "fingerprint": tags["fingerprint"]})[1]
    assert op["kind"] == "compute#operation" and op["operationType"] == "setTags" and "/zones/" in op["zone"]
    # A second writer holding the same fingerprint is refused while the first one's change is in flight.
    assert api("POST", f"{ZONE}/instances/vm1/setTags",
               {"items": [], "fingerprint": tags["fingerprint"]})[0] == 412
    api.done(op)
    after = api("GET", f"{ZONE}/instances/vm1")[1]["tags"]
    assert after["items"] == ["a", "b"] and after["fingerprint"] != tags["fingerprint"]
    api.done(api("POST", f"{ZONE}/instances/vm1/setTags", {"items": [], "fingerprint": after["fingerprint"]})[1])
    assert "items" not in api("GET", f"{ZONE}/instances/vm1")[1]["tags"]
    assert api("POST", f"{ZONE}/instances/nope/setTags", {"items": [], "fingerprint": "x"})[0] == 404


def test_firewall_sources_as_the_real_api_keeps_them(api: Client) -> None:
    allowed = [{"IPProtocol": "tcp", "ports": ["2377"]}]
    by_tag = {"name": "by-tag", "network": "global/networks/default", "sourceTags": ["c"], "targetTags": ["c"],
              "allowed": allowed}
    api.done(api("POST", f"{P}/global/firewalls", by_tag)[1])
    got = api("GET", f"{P}/global/firewalls/by-tag")[1]
    assert got["sourceTags"] == ["c"] and got["targetTags"] == ["c"] and "sourceRanges" not in got
    # An ingress rule that names no source at all admits the world: the API fills in 0.0.0.0/0.
    api.done(api("POST", f"{P}/global/firewalls", {"name": "open", "network": "global/networks/default",
                                                   "allowed": allowed})[1])
    assert api("GET", f"{P}/global/firewalls/open")[1]["sourceRanges"] == ["0.0.0.0/0"]
    status, _ = api("POST", f"{P}/global/firewalls", {**by_tag, "name": "bad", "sourceTags": ["Bad_Tag"]})
    assert status == 400
    status, _ = api("POST", f"{P}/global/firewalls", {**by_tag, "name": "egress", "direction": "EGRESS"})
    assert status == 400
