"""`provision migrate`: Docker Machine stores in its own on-disk format, for each driver kind and each
ConfigVersion, made provision machines and used through the real docker CLI and the real ssh client.

The stores are written here from Docker Machine's documented layout (libmachine host, auth and engine
options; each driver's JSON fields). Their absolute paths name ``/home/olduser/.docker/machine``, which does
not exist: migrate must find every file under the directory given with ``--from``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from clirun import run
from fixtures_do import do, fake_do  # noqa: F401 - fixtures used by name
from provision import paths
from provision.driver import Capabilities
from provision.machines.core import Core
from provision.machines.provisioning import Provisioning
from provision.record import FOREIGN_CA, MIGRATED_FROM
from provision.tls import CertificateAuthority

OLD_ROOT = "/home/olduser/.docker/machine"


# -- a Docker Machine store, as Docker Machine wrote it ----------------------------------------------
def engine_options() -> dict[str, Any]:
    return {"ArbitraryFlags": ["log-level=warn"], "Dns": None, "GraphDir": "", "Env": [], "Ipv6": False,
            "InsecureRegistry": ["registry.local:5000"], "Labels": ["team=web"], "LogLevel": "",
            "StorageDriver": "overlay2", "SelinuxEnabled": False, "TlsVerify": True, "RegistryMirror": [],
            "InstallURL": "https://get.docker.com"}


def swarm_options() -> dict[str, Any]:
    return {"IsSwarm": False, "Address": "", "Discovery": "", "Agent": False, "Master": False,
            "Host": "tcp://0.0.0.0:3376", "Image": "swarm:latest", "Strategy": "spread", "Heartbeat": 0,
            "Overcommit": 0, "ArbitraryFlags": [], "ArbitraryJoinFlags": [], "Env": None, "IsExperimental": False}


def host_config(version: int, name: str, driver_name: str, driver: dict[str, Any]) -> dict[str, Any]:
    """config.json of one machine in ConfigVersion ``version`` (0..3), paths under OLD_ROOT."""
    machine_dir, certs = f"{OLD_ROOT}/machines/{name}", f"{OLD_ROOT}/certs"
    base = {"IPAddress": "", "MachineName": name, "SSHUser": "root", "SSHPort": 22,
            "SSHKeyPath": f"{machine_dir}/id_rsa", "SwarmMaster": False, "SwarmHost": "", "SwarmDiscovery": "",
            # Before ConfigVersion 3 a driver's StorePath was the machine's directory, then the store root.
            "StorePath": OLD_ROOT if version == 3 else machine_dir}
    driver = {**base, **driver}
    if version == 0:  # certificate paths at the top level; no ConfigVersion key at all in the oldest files
        return {"Driver": driver, "DriverName": driver_name,
                "HostOptions": {"Driver": "", "Memory": 0, "Disk": 0, "EngineOptions": engine_options()},
                "StorePath": machine_dir, "CaCertPath": f"{certs}/ca.pem", "PrivateKeyPath": f"{certs}/ca-key.pem",
                "ServerCertPath": f"{machine_dir}/server.pem", "ServerKeyPath": f"{machine_dir}/server-key.pem",
                "ClientCertPath": f"{certs}/cert.pem", "ClientKeyPath": f"{certs}/key.pem",
                "SwarmHost": "", "SwarmMaster": False, "SwarmDiscovery": ""}
    if version == 1:
        auth = {"StorePath": machine_dir, "CaCertPath": f"{certs}/ca.pem", "CaCertRemotePath": "",
                "ServerCertPath": f"{machine_dir}/server.pem", "ServerKeyPath": f"{machine_dir}/server-key.pem",
                "ClientKeyPath": f"{certs}/key.pem", "ServerCertRemotePath": "", "ServerKeyRemotePath": "",
                "PrivateKeyPath": f"{certs}/ca-key.pem", "ClientCertPath": f"{certs}/cert.pem"}
        return {"ConfigVersion": 1, "Driver": driver, "DriverName": driver_name, "StorePath": machine_dir,
                "HostOptions": {"Driver": "", "Memory": 0, "Disk": 0, "EngineOptions": engine_options(),
                                "SwarmOptions": swarm_options(), "AuthOptions": auth}}
    auth = {"CertDir": certs, "CaCertPath": f"{certs}/ca.pem", "CaPrivateKeyPath": f"{certs}/ca-key.pem",
            "CaCertRemotePath": "", "ServerCertPath": f"{machine_dir}/server.pem",
            "ServerKeyPath": f"{machine_dir}/server-key.pem", "ClientKeyPath": f"{certs}/key.pem",
            "ServerCertRemotePath": "", "ServerKeyRemotePath": "", "ClientCertPath": f"{certs}/cert.pem",
            "ServerCertSANs": ["web.example"], "StorePath": machine_dir}
    return {"ConfigVersion": version, "Driver": driver, "DriverName": driver_name, "Name": name,
            "HostOptions": {"Driver": "", "Memory": 0, "Disk": 0, "EngineOptions": engine_options(),
                            "SwarmOptions": swarm_options(), "AuthOptions": auth}}


class DMStore:
    """A Docker Machine store at ``root`` whose CA is the one in ``ca_dir`` (a provision certs dir)."""

    def __init__(self, root: Path, ca_dir: Path) -> None:
        self.root = root
        self.ca_dir = ca_dir
        certs = root / "certs"
        certs.mkdir(parents=True, mode=0o700)
        for name in ("ca.pem", "ca-key.pem", "cert.pem", "key.pem"):
            (certs / name).write_bytes((ca_dir / name).read_bytes())

    def add(self, name: str, driver_name: str, driver: dict[str, Any], *, version: int = 3,
            provisioned: bool = True, ssh_key: Path | None = None) -> Path:
        machine = self.root / "machines" / name
        machine.mkdir(parents=True)
        (machine / "config.json").write_text(json.dumps(host_config(version, name, driver_name, driver), indent=4))
        if provisioned:  # Docker Machine copies the CA and client pair in and issues the server's
            for filename in ("ca.pem", "cert.pem", "key.pem"):
                (machine / filename).write_bytes((self.ca_dir / filename).read_bytes())
            server = CertificateAuthority(self.ca_dir).issue_server(name, ["127.0.0.1"])
            (machine / "server.pem").write_bytes(server.cert_pem)
            (machine / "server-key.pem").write_bytes(server.key_pem)
        if ssh_key is not None:
            (machine / "id_rsa").write_bytes(ssh_key.read_bytes())
            (machine / "id_rsa").chmod(0o600)
            (machine / "id_rsa.pub").write_bytes(Path(f"{ssh_key}.pub").read_bytes())
        return machine

    def digest(self) -> dict[str, str]:
        """Every file's hash and mode: the store must be exactly the same after a migration."""
        return {str(p.relative_to(self.root)): f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.stat().st_mode:o}"
                for p in sorted(self.root.rglob("*")) if p.is_file()}


def rsa_key(path: Path) -> Path:
    """A key pair the way Docker Machine made them: RSA in the traditional PEM format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)
    return path


@pytest.fixture
def dm_ca(tmp_path: Path) -> Path:
    ca = CertificateAuthority(tmp_path / "dm-ca")
    ca.ensure()
    return tmp_path / "dm-ca"


@pytest.fixture
def dm(tmp_path: Path, dm_ca: Path) -> DMStore:
    return DMStore(tmp_path / "dm", dm_ca)


def store_root() -> Path:
    return Path(os.environ["PROVISION_STORAGE_PATH"])


def record_of(name: str) -> dict[str, Any]:
    return json.loads((store_root() / "machines" / name / "machine.json").read_text())


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)


# -- generic, every ConfigVersion, through docker and ssh ---------------------------------------------
@pytest.mark.dockerd
@pytest.mark.sshd
@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_generic_machine_of_each_config_version_works_at_once(version: int, tmp_path: Path, dockerd: Any,
                                                              sshd: Any) -> None:
    dm = DMStore(tmp_path / "dm", dockerd.certs_dir)  # the test engine trusts Docker Machine's CA
    key = rsa_key(tmp_path / "keys" / "id_rsa")
    sshd.authorize(Path(f"{key}.pub").read_text())
    dm.add("web", "generic", {"IPAddress": "127.0.0.1", "SSHPort": sshd.port, "SSHUser": "root",
                              "EnginePort": dockerd.port, "SSHKey": "/home/olduser/.ssh/id_rsa"},
           version=version, ssh_key=key)
    before = dm.digest()

    result = run("migrate", "--from", str(dm.root), check=True)
    assert 'Migrated "web" as "web" (generic driver, docker context web)' in result.stdout
    assert "pinned at the first SSH contact" in result.stdout
    assert dm.digest() == before

    version_out = docker("--context", "web", "version", "--format", "{{.Server.Version}}")
    assert version_out.returncode == 0, version_out.stderr
    assert version_out.stdout.strip() == dockerd.version
    env = run("env", "web", check=True).stdout
    assert f'export DOCKER_HOST="tcp://127.0.0.1:{dockerd.port}"' in env
    assert f'export DOCKER_CERT_PATH="{store_root() / "machines" / "web"}"' in env
    listing = run("ls", "--format", "{{.Name}} {{.State}} {{.DockerVersion}}", check=True).stdout
    assert listing == f"web Running v{dockerd.version}\n"

    record = record_of("web")
    assert record["host_key"] is None and record["lifecycle"] == "ready"
    assert record["engine"]["labels"] == ["team=web"] and record["engine"]["storage_driver"] == "overlay2"
    assert record["facts"][MIGRATED_FROM]["config_version"] == version
    assert record["facts"][FOREIGN_CA] == "Docker Machine"
    assert OLD_ROOT not in json.dumps(record) and str(dm.root) not in json.dumps(record["driver_data"])
    machine_dir = store_root() / "machines" / "web"
    assert (machine_dir / paths.SSH_KEY).stat().st_mode & 0o777 == 0o600
    assert (machine_dir / paths.CA_CERT).read_bytes() == (dockerd.certs_dir / "ca.pem").read_bytes()
    assert record["server_cert"]["sans"] == ["127.0.0.1"]  # Docker Machine's server certificate, for inspect
    assert json.loads(run("inspect", "web", check=True).stdout)["server_certificate"]["sans"] == ["127.0.0.1"]

    # First contact pins the host key; later ones check it.
    ssh = run("ssh", "web", "echo", "hello", check=True)
    assert ssh.stdout == "hello\n"
    assert record_of("web")["host_key"].split()[:2] == sshd.host_key.split()[:2]
    assert sshd.host_key.split()[1] in (machine_dir / paths.KNOWN_HOSTS).read_text()
    assert run("ssh", "web", "true").returncode == 0
    (tmp_path / "payload").write_text("copied")
    run("scp", str(tmp_path / "payload"), f"web:{tmp_path}/payload-remote", check=True)
    assert (tmp_path / "payload-remote").read_text() == "copied"
    sshd.restart(new_host_key=True)
    refused = run("ssh", "web", "true")
    assert refused.returncode != 0

    # rm forgets the machine; the Docker Machine store stays as it was.
    run("rm", "-y", "web", check=True)
    assert dm.digest() == before


@pytest.mark.dockerd
def test_none_machine_uses_the_store_certs(tmp_path: Path, dockerd: Any) -> None:
    dm = DMStore(tmp_path / "dm", dockerd.certs_dir)
    # Docker Machine never provisions a `none` machine: its directory holds the config only.
    dm.add("ext", "none", {"URL": dockerd.url, "IPAddress": ""}, provisioned=False)
    before = dm.digest()
    result = run("migrate", "--from", str(dm.root), "ext", check=True)
    assert '"ext" as "ext" (none driver, docker context ext)' in result.stdout and "SSH" not in result.stdout
    version = docker("--context", "ext", "version", "--format", "{{.Server.Version}}")
    assert version.stdout.strip() == dockerd.version, version.stderr
    inspect = json.loads(run("inspect", "ext", check=True).stdout)
    assert inspect["DriverName"] == "none" and inspect["url"] == dockerd.url
    assert dm.digest() == before


# -- drivers provision does not have ---------------------------------------------------------------------
@pytest.mark.sshd
def test_virtualbox_machine_keeps_engine_url_and_ssh(tmp_path: Path, dm: DMStore, sshd: Any) -> None:
    key = rsa_key(tmp_path / "keys" / "id_rsa")
    sshd.authorize(Path(f"{key}.pub").read_text())
    dm.add("vbox", "virtualbox", {"IPAddress": "192.168.99.100", "SSHPort": sshd.port, "SSHUser": "root",
                                  "CPU": 1, "Memory": 1024, "DiskSize": 20000, "HostOnlyCIDR": "192.168.99.1/24",
                                  "Boot2DockerURL": "", "ShareFolder": "/srv/code:code"}, version=2, ssh_key=key)
    dm.add("plain", "virtualbox", {"IPAddress": "192.168.99.101", "SSHPort": sshd.port, "SSHUser": "root",
                                   "NoShare": True}, version=2, ssh_key=key)
    before = dm.digest()
    result = run("migrate", "--from", str(dm.root), check=True)
    assert "the virtualbox driver is not available here: start, stop, kill and removing the machine" in result.stdout
    assert "its VirtualBox shared folder (/srv/code:code) stays with the VirtualBox VM" in result.stdout
    assert "--local-share-folder" in result.stdout
    assert "its shared folders were off (--virtualbox-no-share)" in result.stdout
    run("rm", "-y", "plain", check=True)
    record = record_of("vbox")
    assert record["driver"] == "generic" and record["url"] == "tcp://192.168.99.100:2376"
    assert record["driver_data"]["ssh_host"] == "127.0.0.1"  # VirtualBox forwards SSH on the loopback
    assert run("url", "vbox", check=True).stdout == "tcp://192.168.99.100:2376\n"
    assert run("ssh", "vbox", "echo", "ok", check=True).stdout == "ok\n"
    assert record_of("vbox")["host_key"] is not None
    run("rm", "-y", "vbox", check=True)
    assert dm.digest() == before


def test_unknown_driver_without_ssh_key_keeps_its_engine_url(dm: DMStore) -> None:
    # (digitalocean is mapped to its own driver now; exoscale stands for the drivers provision has no twin of)
    dm.add("vm1", "exoscale", {"IPAddress": "203.0.113.7", "APIKey": "", "APISecretKey": "",
                               "AvailabilityZone": "ch-gva-2"})
    result = run("migrate", "--from", str(dm.root), check=True)
    assert "(none driver," in result.stdout and "its engine URL is kept" in result.stdout
    assert record_of("vm1")["url"] == "tcp://203.0.113.7:2376"
    assert "APISecretKey" not in json.dumps(record_of("vm1"))


# -- clouds -------------------------------------------------------------------------------------------
AWS_FIELDS = {"Id": "", "AccessKey": "", "SecretKey": "", "SessionToken": "", "Region": "us-east-1",
              "AMI": "ami-5f709f34", "SSHKeyID": 0, "InstanceType": "t2.micro", "SSHUser": "ubuntu",
              "SecurityGroupId": "", "SecurityGroupName": "", "SecurityGroupNames": ["docker-machine"],
              "SecurityGroupReadOnly": False, "OpenPorts": None, "Tags": "", "ReservationId": "",
              "DeviceName": "/dev/sda1", "RootSize": 16, "VolumeType": "gp2", "IamInstanceProfile": "",
              "VpcId": "vpc-1", "SubnetId": "subnet-1", "Zone": "a", "RequestSpotInstance": False,
              "SpotPrice": "0.50", "BlockDurationMinutes": 0, "PrivateIPOnly": False, "UsePrivateIP": False,
              "UseEbsOptimizedInstance": False, "Monitoring": False, "SSHPrivateKeyPath": "", "RetryCount": 5,
              "Endpoint": "", "DisableSSL": False, "UserDataFile": ""}


def test_amazonec2_record_keeps_instance_region_and_key_pair(tmp_path: Path, dm: DMStore) -> None:
    key = rsa_key(tmp_path / "keys" / "id_rsa")
    dm.add("aws1", "amazonec2", {**AWS_FIELDS, "IPAddress": "54.1.2.3", "PrivateIPAddress": "10.0.0.5",
                                 "Region": "eu-west-1", "InstanceId": "i-0abc", "KeyName": "team-key",
                                 "ExistingKey": True, "SecurityGroupIds": ["sg-0dm"],
                                 "SecretKey": "never-copied"}, version=3, ssh_key=key)
    run("migrate", "--from", str(dm.root), check=True)
    record = record_of("aws1")
    data = record["driver_data"]
    assert record["driver"] == "amazonec2" and record["url"] == "tcp://54.1.2.3:2376"
    assert (data["region"], data["instance_id"], data["key_pair_name"]) == ("eu-west-1", "i-0abc", "team-key")
    assert data["key_pair_owned"] is False and data["keep_shared"] is True
    assert "security_group_id" not in data and data["docker_machine_security_groups"] == ["docker-machine", "sg-0dm"]
    assert "never-copied" not in json.dumps(record)


@pytest.mark.aws
def test_amazonec2_rm_terminates_the_instance_and_keeps_what_docker_machine_shared(
        tmp_path: Path, dm: DMStore, aws: Any, ec2_client: Any) -> None:
    group = ec2_client.create_security_group(GroupName="docker-machine", Description="Docker Machine")["GroupId"]
    ec2_client.create_key_pair(KeyName="team-key")
    ec2_client.create_key_pair(KeyName="aws2")  # the pair Docker Machine made for aws2 alone
    image = ec2_client.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ids = {}
    for name, key_name in (("aws1", "team-key"), ("aws2", "aws2")):
        ids[name] = ec2_client.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t2.micro",
                                             KeyName=key_name, SecurityGroupIds=[group])["Instances"][0]["InstanceId"]
        dm.add(name, "amazonec2", {**AWS_FIELDS, "IPAddress": "54.1.2.3", "InstanceId": ids[name],
                                   "KeyName": key_name, "ExistingKey": key_name == "team-key",
                                   "SecurityGroupIds": [group]}, ssh_key=rsa_key(tmp_path / name / "id_rsa"))
    run("migrate", "--from", str(dm.root), check=True)
    for name in ("aws1", "aws2"):
        run("rm", "-y", name, check=True)
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2_client.describe_instances()["Reservations"]
              for i in r["Instances"]}
    assert states[ids["aws1"]] == "terminated" and states[ids["aws2"]] == "terminated"
    assert group in {g["GroupId"] for g in ec2_client.describe_security_groups()["SecurityGroups"]}
    assert [k["KeyName"] for k in ec2_client.describe_key_pairs()["KeyPairs"]] == ["team-key"]


GOOGLE_FIELDS = {"Zone": "us-central1-a", "MachineType": "n1-standard-1", "MachineImage": "ubuntu-1604",
                 "DiskType": "pd-standard", "Address": "", "Network": "default", "Subnetwork": "",
                 "Preemptible": False, "UseInternalIP": False, "UseInternalIPOnly": False, "ServiceAccount": "",
                 "Scopes": "https://www.googleapis.com/auth/devstorage.read_only", "DiskSize": 10,
                 "Project": "test-project", "Tags": "", "UseExisting": False, "OpenPorts": None,
                 "SSHUser": "docker-user"}


def test_google_record_keeps_project_zone_and_instance(tmp_path: Path, dm: DMStore) -> None:
    dm.add("gce1", "google", {**GOOGLE_FIELDS, "IPAddress": "35.1.2.3"}, version=1,
           ssh_key=rsa_key(tmp_path / "keys" / "id_rsa"))
    run("migrate", "--from", str(dm.root), check=True)
    record = record_of("gce1")
    data = record["driver_data"]
    assert record["driver"] == "google" and record["url"] == "tcp://35.1.2.3:2376"
    assert (data["project"], data["zone"], data["instance"]) == ("test-project", "us-central1-a", "gce1")
    assert data["firewall"] == "docker-machines" and data["keep_shared"] is True
    assert data["boot_disk"] == "gce1-disk" and data["ssh_user"] == "docker-user"
    assert (store_root() / "machines" / "gce1" / "id_ed25519.pub").read_text().startswith("ssh-rsa ")


@pytest.mark.gce
def test_google_rm_deletes_the_instance_and_keeps_docker_machines_firewall(tmp_path: Path, dm: DMStore,
                                                                          gce: Any) -> None:
    from test_google import make_driver

    made = make_driver(gce, tmp_path / "made-by-dm", "gce1")
    made.create()  # an instance (and, standing in for Docker Machine's shared rule, a firewall) exist
    with gce.fake.lock:
        rules = gce.fake.projects["test-project"].firewalls
        rules["docker-machines"] = {**rules.pop("provision-gce1"), "name": "docker-machines"}
    dm.add("gce1", "google", {**GOOGLE_FIELDS, "IPAddress": made.ctx.data["external_ip"]},
           ssh_key=rsa_key(tmp_path / "keys" / "id_rsa"))
    run("migrate", "--from", str(dm.root), check=True)
    # Docker Machine had no endpoint setting; the fake stands in for Google's.
    path = store_root() / "machines" / "gce1" / "machine.json"
    record = json.loads(path.read_text())
    record["driver_data"]["endpoint"] = gce.endpoint
    path.write_text(json.dumps(record))
    run("rm", "-y", "gce1", check=True)
    resources = gce.fake.resources()
    assert resources["instances"] == [] and "docker-machines" in resources["firewalls"]


# -- certificates ---------------------------------------------------------------------------------------
def test_regenerate_certs_moves_a_migrated_machine_to_provisions_ca(tmp_path: Path, dm: DMStore,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from provision import machines as machines_module
    from provision import provisioner
    from provision.machines import Machines

    dm.add("web", "generic", {"IPAddress": "127.0.0.1"}, ssh_key=rsa_key(tmp_path / "keys" / "id_rsa"))
    run("migrate", "--from", str(dm.root), check=True)
    refused = run("regenerate-certs", "-f", "web")
    assert refused.returncode == 1 and "still trusts Docker Machine's CA" in refused.stderr
    assert "regenerate-certs --client-certs web" in refused.stderr
    assert "still trusts Docker Machine's CA" in run("provision", "web").stderr

    # The SSH and engine ends are stand-ins here: what matters is what lands in the machine directory.
    uploaded: list[bytes] = []

    class Session:
        host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxJb0I6nSdFzBGUyDoDrcBU2sNkdMvnKLvw4YWkp6c2"

        def __enter__(self) -> Session:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(Core, "session", lambda self, record, driver, **kw: Session())
    monkeypatch.setattr(Core, "require_running", lambda self, record, driver: None)
    monkeypatch.setattr(Provisioning, "wait_for_engine", lambda self, info, timeout=0: None)
    monkeypatch.setattr(provisioner, "install_certs", lambda session, certs, progress: uploaded.append(certs.ca_pem))
    service = machines_module.Machines.open()
    service.regenerate_client_cert()
    service.regenerate_certs("web", adopt_ca=True)
    own_ca = (store_root() / "certs" / "ca.pem").read_bytes()
    machine_dir = store_root() / "machines" / "web"
    assert uploaded == [own_ca] and own_ca != (dm.ca_dir / "ca.pem").read_bytes()
    assert (machine_dir / "ca.pem").read_bytes() == own_ca
    assert (machine_dir / "cert.pem").read_bytes() == (store_root() / "certs" / "cert.pem").read_bytes()
    record = record_of("web")
    assert FOREIGN_CA not in record["facts"] and record["host_key"] == Session.host_key


# -- bad input --------------------------------------------------------------------------------------------
def test_bad_machines_get_one_line_each_and_the_others_go_on(tmp_path: Path, dm: DMStore) -> None:
    key = rsa_key(tmp_path / "keys" / "id_rsa")
    dm.add("good", "generic", {"IPAddress": "192.0.2.10"}, ssh_key=key)
    (dm.root / "machines" / "noconfig").mkdir()
    dm.add("corrupt", "generic", {"IPAddress": "192.0.2.11"}, ssh_key=key)
    (dm.root / "machines" / "corrupt" / "config.json").write_text('{"ConfigVersion": 3, "Driver": {')
    dm.add("future", "generic", {"IPAddress": "192.0.2.12"}, ssh_key=key)
    future = json.loads((dm.root / "machines" / "future" / "config.json").read_text())
    (dm.root / "machines" / "future" / "config.json").write_text(json.dumps({**future, "ConfigVersion": 9}))
    dm.add("nocerts", "generic", {"IPAddress": "192.0.2.13"}, ssh_key=key, provisioned=False)
    dm.add("nokey", "generic", {"IPAddress": "192.0.2.14"})
    dm.add("wrongkey", "generic", {"IPAddress": "192.0.2.15"}, ssh_key=key)
    other = CertificateAuthority(tmp_path / "other-ca")
    other.ensure()
    (dm.root / "machines" / "wrongkey" / "key.pem").write_bytes((tmp_path / "other-ca" / "key.pem").read_bytes())
    # Certificates live only in certs/, which a missing store-level file leaves without a CA.
    os.rename(dm.root / "certs" / "ca.pem", tmp_path / "moved-ca.pem")
    before = dm.digest()

    result = run("migrate", "--from", str(dm.root))
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    by_name = {line.split('"')[1]: line for line in errors if line.startswith("Error migrating")}
    assert set(by_name) == {"noconfig", "corrupt", "future", "nocerts", "nokey", "wrongkey"}
    assert "config.json is missing" in by_name["noconfig"]
    assert "is not valid JSON" in by_name["corrupt"]
    assert "ConfigVersion 9" in by_name["future"]
    assert "the CA certificate is missing" in by_name["nocerts"]
    assert "SSH key is missing" in by_name["nokey"]
    assert "client key does not match" in by_name["wrongkey"]
    assert errors[-1] == "6 of 7 machines not migrated: corrupt, future, nocerts, noconfig, nokey, wrongkey"
    assert 'Migrated "good"' in result.stdout
    assert sorted(p.name for p in (store_root() / "machines").iterdir()) == ["good"]  # nothing half-written
    assert dm.digest() == before


def test_a_name_taken_here_is_skipped_or_renamed(tmp_path: Path, dm: DMStore) -> None:
    key = rsa_key(tmp_path / "keys" / "id_rsa")
    dm.add("dev", "generic", {"IPAddress": "192.0.2.20"}, ssh_key=key)
    dm.add("ci", "generic", {"IPAddress": "192.0.2.21"}, ssh_key=key)
    run("migrate", "--from", str(dm.root), "dev", check=True)
    record = record_of("dev")
    again = run("migrate", "--from", str(dm.root))
    assert again.returncode == 1
    assert 'Docker machine "dev" already exists here; skipped (--rename dev=NEW' in again.stderr
    assert 'Migrated "ci"' in again.stdout and record_of("dev") == record
    renamed = run("migrate", "--from", str(dm.root), "--rename", "dev=dev-dm", "dev", check=True)
    assert 'Migrated "dev" as "dev-dm"' in renamed.stdout
    assert record_of("dev-dm")["facts"][MIGRATED_FROM]["name"] == "dev"
    assert docker("context", "inspect", "dev-dm").returncode == 0


def test_a_context_taken_by_someone_else_leaves_nothing(tmp_path: Path, dm: DMStore) -> None:
    dm.add("dev", "generic", {"IPAddress": "192.0.2.20"}, ssh_key=rsa_key(tmp_path / "keys" / "id_rsa"))
    assert docker("context", "create", "dev", "--docker", "host=tcp://192.0.2.99:2376").returncode == 0
    result = run("migrate", "--from", str(dm.root))
    assert result.returncode == 1 and 'docker context "dev" already exists' in result.stderr
    assert not (store_root() / "machines" / "dev").exists()


def test_unreadable_or_missing_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = run("migrate", "--from", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert missing.stderr == f"Docker Machine store {tmp_path / 'nowhere'} does not exist " \
                             "(give --from DIR or set MACHINE_STORAGE_PATH)\n"
    (tmp_path / "notadir").write_text("")
    assert run("migrate", "--from", str(tmp_path / "notadir")).returncode == 1
    # The default is $MACHINE_STORAGE_PATH, else ~/.docker/machine.
    default = run("migrate", env={"MACHINE_STORAGE_PATH": ""})
    assert f"{Path(os.environ['HOME']) / '.docker' / 'machine'} does not exist" in default.stderr
    store_root().mkdir(parents=True, exist_ok=True)
    same = run("migrate", env={"MACHINE_STORAGE_PATH": os.environ["PROVISION_STORAGE_PATH"]})
    assert same.returncode == 2 and "is provision's own store too" in same.stderr


def test_paths_are_resolved_under_the_store_given() -> None:
    from provision.migrate import resolve

    source = Path("/new/place")
    assert resolve(source, "web", f"{OLD_ROOT}/machines/web/id_rsa")[0] == source / "machines/web/id_rsa"
    assert resolve(source, "web", f"{OLD_ROOT}/certs/ca.pem")[0] == source / "certs/ca.pem"
    assert resolve(source, "web", "/etc/custom/ca.pem") == []  # outside the store: never read
    assert resolve(source, "web", f"{OLD_ROOT}/machines/web/../../../../../etc/shadow") == []
    assert resolve(source, "web", "/new/place/machines/web/id_rsa") == [source / "machines/web/id_rsa"] * 2
    assert resolve(source, "web", "") == []


def test_a_start_keeps_docker_machines_ca_while_its_certificate_covers_the_address(
        tmp_path: Path, dm: DMStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from provision import provisioner
    from provision.machines import Machines

    dm.add("web", "generic", {"IPAddress": "127.0.0.1"}, ssh_key=rsa_key(tmp_path / "keys" / "id_rsa"))
    run("migrate", "--from", str(dm.root), check=True)
    service = Machines.open()
    record = service.store.load("web")
    uploads: list[bytes] = []
    monkeypatch.setattr(provisioner, "install_certs", lambda session, certs, progress: uploads.append(certs.ca_pem))
    monkeypatch.setattr(Provisioning, "wait_for_engine", lambda self, info, timeout=0: None)

    class Cloud:  # a cloud driver whose refresh found addresses Docker Machine never recorded
        boot_timeout = 1.0
        capabilities = Capabilities()  # no port agent

        def __init__(self, ip: str) -> None:
            self.address = ip
            self.ctx = type("Ctx", (), {"data": dict(record.driver_data)})()

        def refresh(self) -> bool:
            return True

        def ip(self) -> str:
            return self.address

        def engine_url(self) -> str:
            return f"tcp://{self.address}:2376"

    kept = service.power.after_boot(record, Cloud("127.0.0.1"))  # type: ignore[arg-type]
    assert uploads == [] and kept.facts[FOREIGN_CA] == "Docker Machine"
    assert (store_root() / "machines" / "web" / "ca.pem").read_bytes() == (dm.ca_dir / "ca.pem").read_bytes()

    class Session:
        host_key = record.host_key

        def __enter__(self) -> Session:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(Core, "session", lambda self, record, driver, **kw: Session())
    monkeypatch.setattr(Core, "pin_host_key", lambda self, record, session, endpoint: record)
    monkeypatch.setattr(Provisioning, "new_server_cert",
                        lambda self, record, driver: self.core.ca.issue_server(record.name, [driver.ip()]))
    Cloud.ssh_endpoint = lambda self: None  # type: ignore[attr-defined]
    service.ca.ensure()
    moved = service.power.after_boot(kept, Cloud("198.51.100.7"))  # type: ignore[arg-type]
    own_ca = (store_root() / "certs" / "ca.pem").read_bytes()
    assert uploads == [own_ca] and FOREIGN_CA not in moved.facts
    assert (store_root() / "machines" / "web" / "ca.pem").read_bytes() == own_ca


@pytest.mark.sshd
def test_upgrade_pins_the_host_key_at_first_contact(tmp_path: Path, dm: DMStore, sshd: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from provision import provisioner
    from provision.machines import Machines

    key = rsa_key(tmp_path / "keys" / "id_rsa")
    sshd.authorize(Path(f"{key}.pub").read_text())
    dm.add("web", "generic", {"IPAddress": "127.0.0.1", "SSHPort": sshd.port}, ssh_key=key)
    run("migrate", "--from", str(dm.root), check=True)
    seen: list[str] = []

    def upgrade_engine(session: Any, config: Any, progress: Any) -> Any:  # this host's Docker stays as it is
        seen.append(session.run(["echo", "reached"]).out.strip())
        return provisioner.EngineFacts("debian", "12", "Debian 12", "20.10", "overlay2")

    monkeypatch.setattr(provisioner, "upgrade_engine", upgrade_engine)
    monkeypatch.setattr(Provisioning, "wait_for_engine", lambda self, info, timeout=0: None)
    Machines.open().upgrade("web")
    assert seen == ["reached"]
    assert record_of("web")["host_key"].split()[:2] == sshd.host_key.split()[:2]


# -- hostile stores: migrate reads nothing outside --from, and one bad machine is one line ------------------
def _config_of(dm: DMStore, name: str) -> dict[str, Any]:
    return json.loads((dm.root / "machines" / name / "config.json").read_text())


def _set_config(dm: DMStore, name: str, config: Any) -> None:
    (dm.root / "machines" / name / "config.json").write_text(json.dumps(config))


def _refused_alone(dm: DMStore, name: str, tmp_path: Path) -> str:
    """Migrate a store whose one machine is hostile: exit 1, its one line and the count, nothing changed."""
    from snapshots import messages, snapshot

    docker_dir = Path(os.environ["DOCKER_CONFIG"])
    before = snapshot(dm.root, store_root() / "machines", docker_dir, tmp_path / "outside")
    result = run("migrate", "--from", str(dm.root), timeout=30)
    assert result.returncode == 1, result.stdout
    lines = messages(result)
    assert len(lines) == 2 and lines[1] == f"1 of 1 machines not migrated: {name}", lines
    assert lines[0].startswith(f'Error migrating "{name}": ')
    assert snapshot(dm.root, store_root() / "machines", docker_dir, tmp_path / "outside") == before
    return lines[0]


def test_recorded_paths_outside_the_store_are_never_read(tmp_path: Path, dm: DMStore) -> None:
    """The CA, client pair and key of ConfigVersion 0 named outside the store (as /etc/shadow was): not read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    for filename in ("ca.pem", "cert.pem", "key.pem"):
        (outside / filename).write_bytes((dm.ca_dir / filename).read_bytes())
    dm.add("leak", "generic", {"IPAddress": "192.0.2.30"}, version=0, provisioned=False,
           ssh_key=rsa_key(tmp_path / "keys" / "id_rsa"))
    config = _config_of(dm, "leak")
    config.update(CaCertPath=str(outside / "ca.pem"), ClientCertPath=str(outside / "cert.pem"),
                  ClientKeyPath=f"{OLD_ROOT}/machines/leak/../../../../../..{outside}/key.pem")
    _set_config(dm, "leak", config)
    os.rename(dm.root / "certs" / "ca.pem", tmp_path / "store-ca.pem")
    line = _refused_alone(dm, "leak", tmp_path)
    assert "the CA certificate is missing" in line
    assert f"{outside / 'ca.pem'} is outside {dm.root}, so it is never read" in line


def test_an_ssh_key_path_outside_the_store_is_not_used(tmp_path: Path, dm: DMStore) -> None:
    elsewhere = rsa_key(tmp_path / "outside" / "id_rsa")  # any private key on the computer
    own = rsa_key(tmp_path / "keys" / "id_rsa")
    dm.add("nokey", "generic", {"IPAddress": "192.0.2.31", "SSHKeyPath": str(elsewhere)})
    line = _refused_alone(dm, "nokey", tmp_path)
    assert "its SSH key is missing" in line and f"SSHKeyPath {elsewhere} is outside {dm.root}" in line

    dm.add("haskey", "generic", {"IPAddress": "192.0.2.32", "SSHKeyPath": str(elsewhere)}, ssh_key=own)
    result = run("migrate", "--from", str(dm.root), "haskey", check=True)
    assert f"haskey: its SSHKeyPath {elsewhere} is outside {dm.root}, so it was not read; " \
           f"{dm.root / 'machines' / 'haskey' / 'id_rsa'} is its key here" in result.stdout
    copied = (store_root() / "machines" / "haskey" / paths.SSH_KEY).read_bytes()
    assert copied == own.read_bytes() != elsewhere.read_bytes()


@pytest.mark.parametrize("link", ["key-file", "cert-file", "machine-dir", "certs-dir"])
def test_symlinks_are_not_followed(tmp_path: Path, dm: DMStore, link: str) -> None:
    outside = tmp_path / "outside"
    key = rsa_key(outside / "id_rsa")
    dm.add("web", "generic", {"IPAddress": "192.0.2.33"}, ssh_key=key, provisioned=link != "certs-dir")
    machine = dm.root / "machines" / "web"
    if link == "key-file":
        (machine / "id_rsa").unlink()
        (machine / "id_rsa").symlink_to(key)
        expected = "id_rsa is a symbolic link"
    elif link == "cert-file":
        (outside / "cert.pem").write_bytes((machine / "cert.pem").read_bytes())
        (machine / "cert.pem").unlink()
        (machine / "cert.pem").symlink_to(outside / "cert.pem")
        expected = "cert.pem is a symbolic link"
    elif link == "machine-dir":
        os.rename(machine, outside / "web")
        machine.symlink_to(outside / "web")
        expected = f"{machine} is a symbolic link; migrate reads nothing through a link"
    else:
        os.rename(dm.root / "certs", outside / "certs")
        (dm.root / "certs").symlink_to(outside / "certs")
        expected = "certs is a symbolic link, not a directory"
    assert expected in _refused_alone(dm, "web", tmp_path)


def test_a_deeply_nested_config_and_a_name_with_a_newline_are_one_line_each(tmp_path: Path, dm: DMStore) -> None:
    from snapshots import messages

    dm.add("deep", "generic", {"IPAddress": "192.0.2.36"})
    (dm.root / "machines" / "deep" / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    dm.add("two\nlines", "generic", {"IPAddress": "192.0.2.37"})
    before = dm.digest()
    result = run("migrate", "--from", str(dm.root))
    assert result.returncode == 1
    lines = messages(result)
    assert len(lines) == 3 and "nested too deeply" in lines[0] and lines[0].startswith('Error migrating "deep"')
    assert lines[1] == 'Error migrating "two\\nlines": its directory\'s name is not a machine name'
    assert dm.digest() == before and not (store_root() / "machines").exists() or \
        not any((store_root() / "machines").iterdir())


def test_a_store_given_through_a_symlink_is_read(tmp_path: Path, dm: DMStore) -> None:
    """--from itself may be a link (a dotfile manager's ~/.docker): only what lies below it must not be."""
    dm.add("web", "generic", {"IPAddress": "192.0.2.38"}, ssh_key=rsa_key(tmp_path / "keys" / "id_rsa"))
    (tmp_path / "linked-store").symlink_to(dm.root)
    result = run("migrate", "--from", str(tmp_path / "linked-store"), check=True)
    assert 'Migrated "web" as "web"' in result.stdout and record_of("web")["url"] == "tcp://192.0.2.38:2376"


@pytest.mark.timeout(60)
def test_a_fifo_config_does_not_hang(tmp_path: Path, dm: DMStore) -> None:
    dm.add("pipe", "generic", {"IPAddress": "192.0.2.34"})
    (dm.root / "machines" / "pipe" / "config.json").unlink()
    os.mkfifo(dm.root / "machines" / "pipe" / "config.json")
    assert "config.json: a FIFO, not a regular file" in _refused_alone(dm, "pipe", tmp_path)


def test_a_huge_config_is_not_read_whole(tmp_path: Path, dm: DMStore) -> None:
    dm.add("huge", "generic", {"IPAddress": "192.0.2.35"})
    with open(dm.root / "machines" / "huge" / "config.json", "r+b") as handle:
        handle.truncate(64 << 20)  # sparse: 64 MiB of nothing after the JSON
    assert "config.json: larger than 1048576 bytes" in _refused_alone(dm, "huge", tmp_path)


@pytest.mark.parametrize("field,value,expected", [
    ("HostOptions.AuthOptions", "oops", "HostOptions.AuthOptions is a string, not an object"),
    ("HostOptions", [], "HostOptions is a list, not an object"),
    ("HostOptions.EngineOptions.Labels", "team=web", "HostOptions.EngineOptions.Labels is a string, not a list"),
    ("HostOptions.EngineOptions.ArbitraryFlags", ["log-level=warn\nExecStartPre=/bin/sh"],
     "ArbitraryFlags holds a control character"),
    ("HostOptions.AuthOptions.CaCertPath", 7, "HostOptions.AuthOptions.CaCertPath is a number, not a string"),
    ("Driver.SSHPort", "22", "Driver.SSHPort is a string, not a port number"),
    ("Driver.SSHPort", 70000, "Driver.SSHPort is a number, not a port number"),
    ("Driver.IPAddress", "192.0.2.1:99/x", 'Driver.IPAddress "192.0.2.1:99/x" is not a host name or IP address'),
    ("Driver.IPAddress", "-oProxyCommand=touch", "is not a host name or IP address"),
    ("Driver.SSHUser", "-oProxyCommand=touch", 'Driver.SSHUser "-oProxyCommand=touch" is not a user name'),
    ("Driver.SSHKeyPath", {"path": "/etc/shadow"}, "Driver.SSHKeyPath is an object, not a string"),
    ("ConfigVersion", True, "has an invalid ConfigVersion True"),
    ("DriverName", ["generic"], "DriverName is a list, not a string"),
])
def test_a_malformed_machine_is_one_line_and_the_others_migrate(tmp_path: Path, dm: DMStore, field: str,
                                                                value: Any, expected: str) -> None:
    from snapshots import messages

    key = rsa_key(tmp_path / "keys" / "id_rsa")
    for name, ip in (("alpha", "192.0.2.40"), ("bad", "192.0.2.41"), ("omega", "192.0.2.42")):
        dm.add(name, "generic", {"IPAddress": ip}, ssh_key=key)
    config = _config_of(dm, "bad")
    *parents, last = field.split(".")
    holder = config
    for part in parents:
        holder = holder[part]
    holder[last] = value
    _set_config(dm, "bad", config)
    before = dm.digest()
    result = run("migrate", "--from", str(dm.root))
    assert result.returncode == 1
    lines = messages(result)
    assert len(lines) == 2 and lines[0].startswith('Error migrating "bad": ') and expected in lines[0], lines
    assert lines[1] == "1 of 3 machines not migrated: bad"
    assert 'Migrated "alpha"' in result.stdout and 'Migrated "omega"' in result.stdout
    assert sorted(p.name for p in (store_root() / "machines").iterdir()) == ["alpha", "omega"]
    assert docker("context", "inspect", "bad").returncode != 0
    assert dm.digest() == before


@pytest.mark.parametrize("url", ["tcp://192.0.2.9:2376/path", "ssh://root@192.0.2.9", "tcp://192.0.2.9",
                                 "tcp://user@192.0.2.9:2376", "tcp://bad_host!:2376", 2376])
def test_a_none_machines_url_is_checked(tmp_path: Path, dm: DMStore, url: Any) -> None:
    dm.add("ext", "none", {"URL": url, "IPAddress": ""})
    line = _refused_alone(dm, "ext", tmp_path)
    assert "Driver.URL" in line and ("is not tcp://HOST:PORT" in line or "not a string" in line)


# -- digitalocean ---------------------------------------------------------------------------------------
DO_FIELDS = {"AccessToken": "dop_v1_never_copied", "Image": "ubuntu-16-04-x64", "Region": "nyc3",
             "Size": "s-1vcpu-1gb", "IPv6": False, "Backups": False, "PrivateNetworking": True,
             "UserDataFile": "", "Monitoring": False, "Tags": "", "SSHUser": "root", "SSHPort": 22}


def test_digitalocean_record_keeps_droplet_region_and_key(tmp_path: Path, dm: DMStore) -> None:
    dm.add("do1", "digitalocean", {**DO_FIELDS, "IPAddress": "104.1.2.3", "PrivateIPAddress": "10.132.0.5",
                                   "DropletID": 312345678, "DropletName": "do1", "SSHKeyID": 4321,
                                   "SSHKeyFingerprint": ""}, version=3, ssh_key=rsa_key(tmp_path / "keys" / "id_rsa"))
    dm.add("do2", "digitalocean", {**DO_FIELDS, "IPAddress": "104.1.2.4", "DropletID": 312345679,
                                   "SSHKeyFingerprint": ":".join(["ab"] * 16)}, ssh_key=rsa_key(tmp_path / "k2" / "id_rsa"))
    dm.add("do3", "digitalocean", {**DO_FIELDS, "IPAddress": "104.1.2.5", "DropletID": "312345680"},
           ssh_key=rsa_key(tmp_path / "k3" / "id_rsa"))
    result = run("migrate", "--from", str(dm.root))
    record = record_of("do1")
    data = record["driver_data"]
    assert record["driver"] == "digitalocean" and record["url"] == "tcp://104.1.2.3:2376"
    assert (data["droplet_id"], data["region"], data["key_id"], data["key_owned"]) == (312345678, "nyc3", 4321, True)
    assert data["private_ip"] == "10.132.0.5" and data["ssh_user"] == "root" and data["keep_shared"] is True
    assert "dop_v1_never_copied" not in json.dumps(record)
    assert record_of("do2")["driver_data"]["key_owned"] is False
    assert result.returncode == 1 and "DropletID" in result.stderr  # a string id: one line, the others migrated
    assert not (store_root() / "machines" / "do3").exists()


@pytest.mark.do
def test_digitalocean_rm_deletes_the_droplet_and_its_own_key_only(tmp_path: Path, dm: DMStore, do: Any) -> None:
    from fixtures_do import TOKEN

    fake = do.fake
    keys = {name: rsa_key(tmp_path / name / "id_rsa") for name in ("do1", "team")}
    owned = fake.add_key("do1", Path(f"{keys['do1']}.pub").read_text())  # Docker Machine's key for do1 alone
    team = fake.add_key("team", Path(f"{keys['team']}.pub").read_text())  # the user's, named by fingerprint
    for name, key in (("do1", owned), ("do2", team)):
        body = {"name": name, "region": "nyc3", "size": "s-1vcpu-1gb", "image": "ubuntu-22-04-x64",
                "ssh_keys": [key["id"]]}
        _, reply, _ = fake.dispatch("POST", "/v2/droplets", {}, body, f"Bearer {TOKEN}")
        droplet = reply["droplet"]["id"]
        for _ in range(fake.action_polls):
            fake.dispatch("GET", f"/v2/actions/{reply['links']['actions'][0]['id']}", {}, None, f"Bearer {TOKEN}")
        dm.add(name, "digitalocean", {**DO_FIELDS, "IPAddress": "203.0.113.200", "DropletID": droplet,
                                      "SSHKeyID": key["id"],
                                      "SSHKeyFingerprint": team["fingerprint"] if name == "do2" else ""},
               ssh_key=keys["do1" if name == "do1" else "team"])
    run("migrate", "--from", str(dm.root), check=True)
    for name in ("do1", "do2"):
        # Docker Machine had no endpoint setting; the fake stands in for DigitalOcean's.
        path = store_root() / "machines" / name / "machine.json"
        record = json.loads(path.read_text())
        record["driver_data"]["endpoint"] = do.endpoint
        path.write_text(json.dumps(record))
        run("rm", "-y", name, check=True)
    assert fake.resources() == {"droplets": [], "ssh_keys": ["team"], "firewalls": [], "tags": []}
