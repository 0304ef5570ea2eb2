"""The amazonec2 driver against moto's server with real boto3.

Nothing here opens a connection to an address moto hands out: the driver only records them, and the
tests only compare them. The account is inspected with a separate boto3 client (``ec2_client``).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from provision_drivers.amazonec2 import OPTIONS, TAG_MACHINE, TAG_UID, AmazonEC2Driver, map_state
from provision_drivers.aws_userdata import USER_MERGE_TYPE
from readback import parse_user_data
from provision.driver import DriverContext, MachineState
from provision.errors import CredentialsError, DriverError, UsageError

pytestmark = pytest.mark.aws

NEWEST_UBUNTU_AMD64 = "ami-0c0a1b2c3d4e50002"
NEWEST_UBUNTU_ARM64 = "ami-0c0a1b2c3d4e50003"
NEWEST_DEBIAN_AMD64 = "ami-0d0e1b2c3d4e50002"
LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


# -- helpers ---------------------------------------------------------------------------------------
def write_ed25519(path: Path) -> Path:
    """A key pair as OpenSSH writes it: ``path`` (private) and ``path.pub``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    path.with_name(path.name + ".pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        + b" test\n")
    return path


def option_defaults() -> dict[str, Any]:
    """What the core hands a driver when no flag or env var is given: each spec's default."""
    return {spec.key: (list(spec.default) if spec.multiple and spec.default else spec.default)
            for spec in OPTIONS}


def make_driver(tmp_path: Path, name: str = "web1", **options: Any) -> AmazonEC2Driver:
    machine_dir = tmp_path / "machines" / name
    machine_dir.mkdir(parents=True, exist_ok=True)
    write_ed25519(machine_dir / "id_ed25519")
    values = option_defaults()
    values.update({f"amazonec2_{k}": v for k, v in options.items()})
    progress: list[str] = []
    ctx = DriverContext(machine_name=name, machine_dir=machine_dir, cache_dir=tmp_path / "cache",
                        options=values, progress=progress.append)
    return AmazonEC2Driver(ctx)


def leftovers(client: Any) -> dict[str, list[str]]:
    """Everything in the account that this tool made and that still costs money or blocks a name."""
    instances = [i["InstanceId"]
                 for r in client.describe_instances(Filters=[
                     {"Name": "instance-state-name", "Values": LIVE_STATES}])["Reservations"]
                 for i in r["Instances"]]
    key_pairs = [k["KeyName"] for k in client.describe_key_pairs()["KeyPairs"]]
    groups = [g["GroupId"] for g in client.describe_security_groups()["SecurityGroups"]
              if g["GroupName"] != "default"]
    spot = [s["SpotInstanceRequestId"] for s in client.describe_spot_instance_requests()["SpotInstanceRequests"]
            if s["State"] in ("open", "active", "disabled")]
    return {k: v for k, v in {"instances": instances, "key_pairs": key_pairs, "security_groups": groups,
                              "spot_requests": spot}.items() if v}


def instance(client: Any, instance_id: str) -> dict[str, Any]:
    return client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def groups_of(vm: dict[str, Any]) -> set[str]:
    """The groups on the instance's primary interface, which is where EC2 applies them (moto lists them
    only there for instances launched with a NetworkInterfaces spec)."""
    primary = [n for n in vm.get("NetworkInterfaces", []) if n.get("Attachment", {}).get("DeviceIndex") == 0]
    return {g["GroupId"] for g in (primary[0]["Groups"] if primary else vm.get("SecurityGroups", []))}


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def ingress(client: Any, group_id: str) -> set[tuple[str, int, str]]:
    group = client.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    return {(p["IpProtocol"], p["FromPort"], r.get("CidrIp") or r.get("CidrIpv6"))
            for p in group["IpPermissions"] for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", [])}


def user_data_of(client: Any, instance_id: str) -> dict[str, Any]:
    value = client.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    return parse_user_data(base64.b64decode(value))


# -- options -----------------------------------------------------------------------------------------
def test_options_are_declared_with_docker_machines_env_vars() -> None:
    by_flag = {spec.flag: spec for spec in OPTIONS}
    expected = {
        "region": "AWS_DEFAULT_REGION", "zone": "AWS_ZONE", "ami": "AWS_AMI", "instance-type": "AWS_INSTANCE_TYPE",
        "root-size": "AWS_ROOT_SIZE", "volume-type": "AWS_VOLUME_TYPE", "vpc-id": "AWS_VPC_ID",
        "subnet-id": "AWS_SUBNET_ID", "security-group": "AWS_SECURITY_GROUP", "open-port": "AWS_OPEN_PORT",
        "tags": "AWS_TAGS", "iam-instance-profile": "AWS_INSTANCE_PROFILE", "ssh-user": "AWS_SSH_USER",
        "ssh-port": "AWS_SSH_PORT", "ssh-keypath": "AWS_SSH_KEYPATH", "keypair-name": "AWS_KEYPAIR_NAME",
        "request-spot-instance": "AWS_SPOT_INSTANCE", "spot-price": "AWS_SPOT_PRICE",
        "private-address-only": "AWS_PRIVATE_ADDRESS_ONLY", "use-private-address": "AWS_USE_PRIVATE_ADDRESS",
        "userdata": "AWS_USERDATA", "endpoint": "AWS_ENDPOINT", "allowed-cidr": "AWS_ALLOWED_CIDR",
    }
    assert {f: by_flag[f"amazonec2-{f}"].envvar for f in expected} == expected
    assert by_flag["amazonec2-region"].default == "us-east-1"
    assert by_flag["amazonec2-root-size"].default == 16 and by_flag["amazonec2-root-size"].type is int
    assert by_flag["amazonec2-volume-type"].default == "gp3"
    assert by_flag["amazonec2-allowed-cidr"].multiple and list(by_flag["amazonec2-allowed-cidr"].default) == ["0.0.0.0/0"]
    assert by_flag["amazonec2-open-port"].multiple and by_flag["amazonec2-security-group"].multiple
    assert by_flag["amazonec2-request-spot-instance"].type is bool
    # Credentials are never flags: they come from boto3's chain only.
    assert not any("key" in spec.flag and "secret" in spec.flag for spec in OPTIONS)
    assert not any(spec.flag.endswith(("access-key", "secret-key", "session-token")) for spec in OPTIONS)


def test_state_mapping() -> None:
    assert map_state("pending") is MachineState.STARTING
    assert map_state("running") is MachineState.RUNNING
    assert map_state("stopping") is MachineState.STOPPING
    assert map_state("shutting-down") is MachineState.STOPPING
    assert map_state("stopped") is MachineState.STOPPED
    assert map_state("terminated") is MachineState.NOT_FOUND
    assert map_state("something-new") is MachineState.UNKNOWN


# -- create and remove -------------------------------------------------------------------------------
def test_create_then_remove_leaves_nothing(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    driver = make_driver(tmp_path, open_port=["8080", "53/udp"], allowed_cidr=["198.51.100.0/24", "2001:db8::/32"],
                         tags="team,infra,env,test")
    saved: list[dict[str, Any]] = []
    driver.ctx.checkpoint = lambda: saved.append(dict(driver.ctx.data))
    driver.create()
    d = driver.ctx.data

    vm = instance(ec2_client, d["instance_id"])
    assert vm["State"]["Name"] == "running"
    assert vm["ImageId"] == NEWEST_UBUNTU_AMD64  # the newest Canonical build, not the look-alike
    assert vm["InstanceType"] == "t3.medium"
    assert vm["KeyName"] == d["key_pair_name"]
    assert vm["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert groups_of(vm) == {d["security_group_id"]}
    assert tags_of(vm) == {"Name": "web1", TAG_MACHINE: "web1", TAG_UID: d["uid"], "team": "infra", "env": "test"}
    assert ingress(ec2_client, d["security_group_id"]) == {
        (proto, port, cidr) for proto, port in (("tcp", 22), ("tcp", 2376), ("tcp", 8080), ("udp", 53))
        for cidr in ("198.51.100.0/24", "2001:db8::/32")}
    # The imported key is the machine's own public key.
    pairs = ec2_client.describe_key_pairs(KeyNames=[d["key_pair_name"]])["KeyPairs"]
    assert pairs and d["key_pair_owned"] is True
    # Every id was checkpointed as soon as it existed, in creation order.
    first_seen = [next(i for i, s in enumerate(saved) if s.get(k)) for k in
                  ("key_pair_name", "key_pair_id", "security_group_id", "instance_id", "public_ip")]
    assert first_seen == sorted(first_seen)
    assert saved[-1] == d

    assert driver.state() is MachineState.RUNNING
    assert d["public_ip"] == vm["PublicIpAddress"] and d["private_ip"] == vm["PrivateIpAddress"]
    assert driver.engine_url() == f"tcp://{vm['PublicIpAddress']}:2376"
    assert driver.ip() == vm["PublicIpAddress"]
    assert driver.addresses() == [vm["PublicIpAddress"], vm["PrivateIpAddress"], vm["PublicDnsName"],
                                  vm["PrivateDnsName"]]
    endpoint = driver.ssh_endpoint()
    assert (endpoint.host, endpoint.port, endpoint.user, endpoint.key_path) == (
        vm["PublicIpAddress"], 22, "ubuntu", driver.ctx.ssh_key_path)
    # Nothing credential-like reaches the record.
    assert "AKIA" not in repr(d) and "SECRET" not in repr(d).upper()

    driver.remove()
    assert leftovers(ec2_client) == {}
    assert instance(ec2_client, d["instance_id"])["State"]["Name"] == "terminated"
    assert driver.state() is MachineState.NOT_FOUND
    driver.remove()  # a second remove finds everything gone and is content


def test_image_families_and_architecture(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    debian = make_driver(tmp_path, name="deb", ami="debian-12")
    debian.create()
    assert instance(ec2_client, debian.ctx.data["instance_id"])["ImageId"] == NEWEST_DEBIAN_AMD64
    assert debian.ssh_endpoint().user == "admin"
    arm = make_driver(tmp_path, name="arm", instance_type="t4g.small")
    arm.create()
    assert instance(ec2_client, arm.ctx.data["instance_id"])["ImageId"] == NEWEST_UBUNTU_ARM64
    given = make_driver(tmp_path, name="given", ami="ami-0d0e1b2c3d4e50001", ssh_user="admin")
    given.create()
    assert instance(ec2_client, given.ctx.data["instance_id"])["ImageId"] == "ami-0d0e1b2c3d4e50001"
    assert given.ssh_endpoint().user == "admin"
    for driver in (debian, arm, given):
        driver.remove()
    assert leftovers(ec2_client) == {}


def test_invalid_instance_type_fails_clearly_and_leaves_nothing(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    driver = make_driver(tmp_path, instance_type="t9.enormous")
    with pytest.raises(DriverError, match='Instance type "t9.enormous" does not exist'):
        driver.create()
    driver.remove()  # the core's rollback
    assert leftovers(ec2_client) == {}


def test_unknown_ami_and_bad_options_fail_before_anything_exists(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="ami-0123456789abcdef0"):
        make_driver(tmp_path, ami="ami-0123456789abcdef0").create()
    with pytest.raises(DriverError, match="neither an AMI id"):
        make_driver(tmp_path, ami="centos-5").create()
    with pytest.raises(UsageError, match="open-port"):
        make_driver(tmp_path, open_port=["http"]).create()
    with pytest.raises(UsageError, match="allowed-cidr"):
        make_driver(tmp_path, allowed_cidr=["10.0.0.0/33"]).create()
    with pytest.raises(DriverError, match="not found in VPC"):
        make_driver(tmp_path, security_group=["no-such-group"]).create()
    assert leftovers(ec2_client) == {}


class Injected(Exception):
    pass


def count_calls(tmp_path: Path, hook: str, **options: Any) -> int:
    """How often a successful create calls ``hook`` (checkpoint or progress); the driver is removed after."""
    driver = make_driver(tmp_path, name="probe", **options)
    calls = 0

    def counting(*_: Any) -> None:
        nonlocal calls
        calls += 1

    setattr(driver.ctx, hook, counting)
    driver.create()
    driver.ctx.checkpoint = lambda: None
    driver.ctx.progress = lambda _message: None
    driver.remove()
    return calls


@pytest.mark.parametrize("spot", [False, True], ids=["on-demand", "spot"])
@pytest.mark.parametrize("hook,exc", [("checkpoint", KeyboardInterrupt), ("progress", Injected)])
def test_interrupted_create_at_every_step_rolls_back(aws: Any, ec2_client: Any, tmp_path: Path, spot: bool,
                                                     hook: str, exc: type[BaseException]) -> None:
    options = {"request_spot_instance": spot, "use_private_address": spot}  # see test_spot_create_and_remove
    total = count_calls(tmp_path, hook, **options)
    assert total >= 4
    assert leftovers(ec2_client) == {}
    for n in range(1, total + 1):
        driver = make_driver(tmp_path, name=f"m{n}", **options)
        calls = 0

        def failing(*_: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == n:
                raise exc(f"injected at call {n}")

        setattr(driver.ctx, hook, failing)
        with pytest.raises(exc):
            driver.create()
        driver.ctx.checkpoint = lambda: None
        driver.ctx.progress = lambda _message: None
        driver.remove()
        assert leftovers(ec2_client) == {}, f"{hook} failing at call {n} of {total}"


def test_remove_finds_resources_whose_ids_never_came_back(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    """A crash after AWS made a resource but before its id was recorded: names and tags still find it."""
    driver = make_driver(tmp_path)
    driver.create()
    d = driver.ctx.data
    for key in ("instance_id", "security_group_id", "key_pair_id"):
        d.pop(key)
    driver.remove()
    assert leftovers(ec2_client) == {}


# -- spot ----------------------------------------------------------------------------------------------
def test_spot_create_and_remove(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    # moto's spot requests ignore LaunchSpecification.NetworkInterfaces and never assign a public IP,
    # so spot machines here are reached (on paper) at their private address.
    driver = make_driver(tmp_path, request_spot_instance=True, spot_price="0.05", use_private_address=True)
    driver.create()
    d = driver.ctx.data
    request = ec2_client.describe_spot_instance_requests(
        SpotInstanceRequestIds=[d["spot_request_id"]])["SpotInstanceRequests"][0]
    assert request["InstanceId"] == d["instance_id"]
    assert tags_of(request)[TAG_UID] == d["uid"]
    vm = instance(ec2_client, d["instance_id"])
    assert vm["State"]["Name"] == "running"
    assert tags_of(vm)[TAG_MACHINE] == "web1"
    assert d["security_group_id"] in groups_of(vm)
    # Spot user data is base64-encoded by us, once: cloud-init must see the plain cloud-config.
    assert "hostname: web1" in user_data_of(ec2_client, d["instance_id"])["provision.cfg"][1]
    assert driver.state() is MachineState.RUNNING and driver.ip() == vm["PrivateIpAddress"]
    driver.remove()
    assert leftovers(ec2_client) == {}


# -- user-owned resources ------------------------------------------------------------------------------
def test_existing_key_pair_is_used_and_kept(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    key = write_ed25519(tmp_path / "team_key")
    ec2_client.import_key_pair(KeyName="team", PublicKeyMaterial=key.with_name("team_key.pub").read_bytes())
    with pytest.raises(UsageError, match="needs --amazonec2-ssh-keypath"):
        make_driver(tmp_path, name="nokey", keypair_name="team").create()
    with pytest.raises(DriverError, match="no-such-pair"):
        make_driver(tmp_path, name="nopair", keypair_name="no-such-pair", ssh_keypath=str(key)).create()

    driver = make_driver(tmp_path, keypair_name="team", ssh_keypath=str(key))
    driver.create()
    assert instance(ec2_client, driver.ctx.data["instance_id"])["KeyName"] == "team"
    assert driver.ssh_endpoint().key_path == key
    driver.remove()
    assert leftovers(ec2_client) == {"key_pairs": ["team"]}


def test_own_key_path_is_imported_as_the_machines_pair(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    key = write_ed25519(tmp_path / "mine")
    driver = make_driver(tmp_path, ssh_keypath=str(key))
    driver.create()
    d = driver.ctx.data
    assert d["key_pair_owned"] and driver.ssh_endpoint().key_path == key
    driver.remove()
    assert leftovers(ec2_client) == {}


def test_user_named_security_group_is_attached_untouched_and_kept(aws: Any, ec2_client: Any,
                                                                  tmp_path: Path) -> None:
    vpc = ec2_client.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    team = ec2_client.create_security_group(GroupName="team", Description="team's", VpcId=vpc)["GroupId"]
    ec2_client.authorize_security_group_ingress(GroupId=team, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    before = ingress(ec2_client, team)

    driver = make_driver(tmp_path, security_group=["team"])
    driver.create()
    vm = instance(ec2_client, driver.ctx.data["instance_id"])
    assert groups_of(vm) == {team, driver.ctx.data["security_group_id"]}
    assert ingress(ec2_client, team) == before
    driver.remove()
    assert leftovers(ec2_client) == {"security_groups": [team]}
    assert ingress(ec2_client, team) == before


def test_custom_vpc_and_subnet(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    vpc = ec2_client.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2_client.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24",
                                      AvailabilityZone="us-east-1c")["Subnet"]["SubnetId"]
    by_vpc = make_driver(tmp_path, name="byvpc", vpc_id=vpc, zone="c")
    by_vpc.create()
    vm = instance(ec2_client, by_vpc.ctx.data["instance_id"])
    assert vm["SubnetId"] == subnet and vm["VpcId"] == vpc
    assert vm.get("PublicIpAddress")  # asked for explicitly: this subnet does not map public IPs itself
    group = ec2_client.describe_security_groups(GroupIds=[by_vpc.ctx.data["security_group_id"]])["SecurityGroups"][0]
    assert group["VpcId"] == vpc
    by_subnet = make_driver(tmp_path, name="bysubnet", subnet_id=subnet)
    by_subnet.create()
    assert by_subnet.ctx.data["vpc_id"] == vpc and by_subnet.ctx.data["zone"] == "us-east-1c"
    default_vpc = ec2_client.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    with pytest.raises(UsageError, match=f"is in VPC {vpc}"):
        make_driver(tmp_path, name="mismatch", subnet_id=subnet, vpc_id=default_vpc).create()
    with pytest.raises(DriverError, match="No subnet"):
        make_driver(tmp_path, name="nozone", vpc_id=vpc, zone="d").create()
    for driver in (by_vpc, by_subnet):
        driver.remove()
    assert leftovers(ec2_client) == {}


# -- lifecycle -----------------------------------------------------------------------------------------
def test_stop_start_gives_a_new_ip_that_refresh_picks_up(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    driver.create()
    first_ip = driver.ip()
    assert driver.refresh() is False  # nothing changed yet

    driver.stop()
    assert driver.state() is MachineState.STOPPED
    assert not instance(ec2_client, driver.ctx.data["instance_id"]).get("PublicIpAddress")
    with pytest.raises(DriverError, match="no address"):  # released by EC2: never point at it
        driver.engine_url()
    assert driver.addresses() == [driver.ctx.data["private_ip"], driver.ctx.data["private_dns"]]
    driver.start()
    assert driver.state() is MachineState.RUNNING
    # moto, like EC2, releases the public IP on stop and assigns a new one on start.
    assert driver.refresh() is True
    new_ip = instance(ec2_client, driver.ctx.data["instance_id"])["PublicIpAddress"]
    assert new_ip != first_ip
    assert driver.ip() == new_ip and driver.engine_url() == f"tcp://{new_ip}:2376"
    assert driver.addresses()[0] == new_ip
    assert driver.refresh() is False

    driver.kill()
    assert driver.state() is MachineState.STOPPED
    driver.start()
    driver.restart()
    assert driver.state() is MachineState.RUNNING
    driver.remove()
    assert leftovers(ec2_client) == {}


def test_inspect_facts_boot_log_and_client_settings(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    from provision_drivers.aws_client import RETRY_CONFIG, AWSTarget, connect

    driver = make_driver(tmp_path)
    assert driver.boot_log() is None
    driver.create()
    facts = driver.extra()
    assert facts["instance_id"] == driver.ctx.data["instance_id"] and facts["region"] == "us-east-1"
    assert facts["image_id"] == NEWEST_UBUNTU_AMD64 and facts["security_group_id"].startswith("sg-")
    log = driver.boot_log()
    assert isinstance(log, str) and log
    client = connect(AWSTarget("us-east-1")).client
    assert client.meta.config.retries == RETRY_CONFIG and RETRY_CONFIG["mode"] in ("standard", "adaptive")
    assert client.meta.endpoint_url == aws.endpoint
    driver.remove()
    assert leftovers(ec2_client) == {}


def test_state_of_an_instance_terminated_elsewhere(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    assert driver.state() is MachineState.NOT_FOUND  # nothing created yet
    driver.create()
    ec2_client.terminate_instances(InstanceIds=[driver.ctx.data["instance_id"]])
    assert driver.state() is MachineState.NOT_FOUND
    driver.ctx.data["instance_id"] = "i-0123456789abcdef0"
    assert driver.state() is MachineState.NOT_FOUND
    driver.remove()
    assert leftovers(ec2_client) == {}


def test_private_address(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    driver = make_driver(tmp_path, use_private_address=True)
    driver.create()
    vm = instance(ec2_client, driver.ctx.data["instance_id"])
    assert driver.ip() == vm["PrivateIpAddress"] and vm.get("PublicIpAddress")
    assert driver.ssh_endpoint().host == vm["PrivateIpAddress"]
    assert driver.addresses()[0] == vm["PrivateIpAddress"]
    driver.remove()

    only = make_driver(tmp_path, name="only", private_address_only=True)
    only.create()
    vm = instance(ec2_client, only.ctx.data["instance_id"])
    assert not vm.get("PublicIpAddress")
    assert only.engine_url() == f"tcp://{vm['PrivateIpAddress']}:2376"
    only.remove()
    assert leftovers(ec2_client) == {}


# -- user data -----------------------------------------------------------------------------------------
def test_user_cloud_config_is_merged_with_the_tools(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    user_file = tmp_path / "user-data.yaml"
    user_file.write_text("#cloud-config\npackages: [htop]\nruncmd:\n  - echo hello\n")
    driver = make_driver(tmp_path, userdata=str(user_file), ssh_port=2222)
    driver.create()
    parts = user_data_of(ec2_client, driver.ctx.data["instance_id"])
    assert set(parts) == {"provision.cfg", "user-data"}
    ours_type, ours = parts["provision.cfg"]
    assert ours_type == "text/cloud-config"
    assert "hostname: web1" in ours and "Port 2222" in ours
    assert parts["user-data"] == ("text/cloud-config", user_file.read_text())
    # SSH on the custom port is what the group opens (and what sshd is told to listen on).
    assert ("tcp", 2222, "0.0.0.0/0") in ingress(ec2_client, driver.ctx.data["security_group_id"])
    assert driver.ssh_endpoint().port == 2222
    driver.remove()
    assert leftovers(ec2_client) == {}


def test_user_script_is_kept_as_its_own_part(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    import email

    from provision_drivers.aws_userdata import merge_user_data, tool_cloud_config

    script = b"#!/bin/sh\necho hi > /tmp/hi\n"
    merged = merge_user_data(tool_cloud_config("web1", 22), script)
    message = email.message_from_bytes(merged)
    kinds = [p.get_content_type() for p in message.walk() if not p.is_multipart()]
    assert kinds == ["text/cloud-config", "text/x-shellscript"]
    cloud_config = merge_user_data({}, b"#cloud-config\nruncmd: [x]\n")
    user_part = [p for p in email.message_from_bytes(cloud_config).walk() if not p.is_multipart()][1]
    assert user_part["Merge-Type"] == USER_MERGE_TYPE
    with pytest.raises(DriverError, match="not a format cloud-init runs"):
        merge_user_data({}, b"just some words\n")
    # A user's own MIME archive keeps its parts, after ours.
    again = email.message_from_bytes(merge_user_data(tool_cloud_config("web2", 22), merged))
    assert [p.get_content_type() for p in again.walk() if not p.is_multipart()] == [
        "text/cloud-config", "text/cloud-config", "text/x-shellscript"]
    # Too big for EC2 even gzipped: a clear error, not a failed launch.
    import os as _os

    with pytest.raises(DriverError, match="EC2 allows 16384"):
        merge_user_data({}, b"#!/bin/sh\n# " + base64.b64encode(_os.urandom(20000)) + b"\n")


def test_missing_userdata_file_is_a_usage_error(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="userdata"):
        make_driver(tmp_path, userdata=str(tmp_path / "nope")).create()
    assert leftovers(ec2_client) == {}


# -- credentials, region, endpoint ---------------------------------------------------------------------
def test_missing_credentials(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    driver = make_driver(tmp_path)
    with pytest.raises(CredentialsError) as caught:
        driver.create()
    message = str(caught.value)
    assert message.startswith("No AWS credentials found")
    assert "env" in message and "shared-credentials-file" in message and "config-file" in message
    assert "\n" not in message
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    with pytest.raises(CredentialsError, match="nobody"):
        driver.create()


def test_unknown_region(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    driver = make_driver(tmp_path, region="mars-north-1")
    with pytest.raises(DriverError, match='Unknown AWS region "mars-north-1"') as caught:
        driver.create()
    assert "us-east-1" in (caught.value.hint or "")
    driver.remove()
    assert leftovers(ec2_client) == {}


def test_endpoint_option_is_honoured_without_env(aws: Any, ec2_client: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_EC2")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    driver = make_driver(tmp_path, endpoint=aws.endpoint, region="eu-west-1", zone="b")
    driver.create()
    assert driver.ctx.data["endpoint"] == aws.endpoint and driver.ctx.data["region"] == "eu-west-1"
    import boto3

    eu = boto3.client("ec2", region_name="eu-west-1", endpoint_url=aws.endpoint)
    assert instance(eu, driver.ctx.data["instance_id"])["Placement"]["AvailabilityZone"] == "eu-west-1b"
    # Later commands use the recorded region and endpoint, whatever the options say now.
    later = AmazonEC2Driver(DriverContext(machine_name="web1", machine_dir=driver.ctx.machine_dir,
                                          cache_dir=tmp_path, options=option_defaults(), data=driver.ctx.data))
    assert later.state() is MachineState.RUNNING
    later.remove()
    assert leftovers(eu) == {}


def test_security_group_deletion_waits_out_dependency_violation(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    """moto never reports a group in use, so the first deletes are answered with EC2's DependencyViolation
    through botocore's own ``before-call`` hook; the next one reaches moto and really deletes the group."""
    from botocore.awsrequest import AWSResponse

    from provision_drivers.aws_waits import delete_security_group
    from provision_drivers.aws_client import AWSTarget, connect
    from provision.errors import TimeoutExpired

    vpc = ec2_client.describe_vpcs()["Vpcs"][0]["VpcId"]
    ec2 = connect(AWSTarget("us-east-1"))
    refusals: list[str] = []

    def refuse_first(limit: int | None):  # type: ignore[no-untyped-def]
        def handler(**_: Any) -> Any:
            if limit is not None and len(refusals) >= limit:
                return None  # let the real call through
            refusals.append("DependencyViolation")
            return (AWSResponse("http://127.0.0.1/", 400, {}, None),
                    {"Error": {"Code": "DependencyViolation", "Message": "resource has a dependent object"}})
        return handler

    group = ec2_client.create_security_group(GroupName="busy", Description="busy", VpcId=vpc)["GroupId"]
    handler = refuse_first(2)
    ec2.client.meta.events.register("before-call.ec2.DeleteSecurityGroup", handler)
    delete_security_group(ec2, group, timeout=30, delay=0.1)
    assert len(refusals) == 2
    assert leftovers(ec2_client) == {}

    ec2.client.meta.events.unregister("before-call.ec2.DeleteSecurityGroup", handler)
    ec2.client.meta.events.register("before-call.ec2.DeleteSecurityGroup", refuse_first(None))
    group = ec2_client.create_security_group(GroupName="stuck", Description="stuck", VpcId=vpc)["GroupId"]
    with pytest.raises(TimeoutExpired, match=f"Security group {group} was still in use"):
        delete_security_group(ec2, group, timeout=0.5, delay=0.1)


def test_failure_after_resources_exist_rolls_back(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    """RunInstances refuses an unknown instance profile after the key pair and group exist."""
    driver = make_driver(tmp_path, iam_instance_profile="no-such-profile")
    with pytest.raises(DriverError, match="no-such-profile"):
        driver.create()
    assert set(leftovers(ec2_client)) == {"key_pairs", "security_groups"}  # what rollback must undo
    driver.remove()
    assert leftovers(ec2_client) == {}


# -- through the CLI -------------------------------------------------------------------------------------
# Only commands that never reach the instance: a CLI create that got as far as SSH would dial moto's
# made-up address. The child process carries the same loopback guard as the in-process tests.
def cli_env(aws: Any) -> dict[str, str]:
    """Overrides on top of this process's environment (which the ``aws`` fixture already points at moto)."""
    return {"AWS_ENDPOINT_URL_EC2": aws.endpoint}


def test_cli_lists_the_driver_and_its_flags(aws: Any, tmp_path: Path) -> None:
    from fixtures_moto import run_guarded_cli

    listing = run_guarded_cli(tmp_path, "drivers", env=cli_env(aws))
    assert listing.returncode == 0, listing.stderr
    assert "amazonec2 (built-in)" in listing.stdout
    help_text = run_guarded_cli(tmp_path, "create", "-d", "amazonec2", "--help", env=cli_env(aws))
    assert help_text.returncode == 0, help_text.stderr
    for spec in OPTIONS:
        assert f"--{spec.flag}" in help_text.stdout
        assert spec.envvar and spec.envvar in help_text.stdout


@pytest.mark.parametrize("flags,message", [
    (["--amazonec2-instance-type", "t9.enormous"], 'Instance type "t9.enormous" does not exist'),
    (["--amazonec2-iam-instance-profile", "no-such-profile"], "no-such-profile"),
    (["--amazonec2-region", "mars-north-1"], 'Unknown AWS region "mars-north-1"'),
], ids=["instance-type", "after-resources-exist", "region"])
def test_cli_create_that_fails_before_ssh_leaves_nothing(aws: Any, ec2_client: Any, tmp_path: Path,
                                                         flags: list[str], message: str) -> None:
    from fixtures_moto import run_guarded_cli

    result = run_guarded_cli(tmp_path, "create", "-d", "amazonec2", "--amazonec2-endpoint", aws.endpoint,
                             "--engine-install-url", "none", *flags, "web1", env=cli_env(aws))
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr
    assert leftovers(ec2_client) == {}
    listed = run_guarded_cli(tmp_path, "ls", "-q", env=cli_env(aws))
    assert listed.returncode == 0 and listed.stdout.strip() == ""


def test_cli_missing_credentials_is_one_clear_line(aws: Any, ec2_client: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from fixtures_moto import run_guarded_cli

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    # An invalid instance type as well: were credentials found after all, create still stops before SSH.
    result = run_guarded_cli(tmp_path, "create", "-d", "amazonec2", "--engine-install-url", "none",
                             "--amazonec2-instance-type", "t9.enormous", "web1", env=cli_env(aws))
    assert result.returncode == 1
    assert "No AWS credentials found (tried boto3's chain: env," in result.stderr
    assert "Traceback" not in result.stderr
    assert leftovers(ec2_client) == {}


def test_rejected_credentials(aws: Any, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A second moto server that enforces IAM authentication from its first request on: the fake keys
    are unknown to it, as revoked keys would be to AWS."""
    from fixtures_moto import _stop, start_moto_server

    server, process = start_moto_server(tmp_path_factory.mktemp("moto-auth"),
                                        {"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", server.endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        driver = make_driver(tmp_path)
        with pytest.raises(CredentialsError) as caught:
            driver.create()
        assert str(caught.value).startswith("AWS rejected the credentials from env while trying to ")
        assert driver.ctx.data == {}  # refused at the first call: nothing was created or recorded
    finally:
        _stop(process)


def test_engine_reached_over_ssh_opens_no_engine_port(aws: Any, ec2_client: Any, tmp_path: Path) -> None:
    driver = make_driver(tmp_path, name="sshonly")
    driver.ctx.engine_port_exposed = False  # --engine-endpoint ssh
    driver.create()
    assert {port for _, port, _ in ingress(ec2_client, driver.ctx.data["security_group_id"])} == {22}
    driver.remove()
    assert leftovers(ec2_client) == {}
