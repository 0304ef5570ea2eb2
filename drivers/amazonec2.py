"""Amazon EC2: one instance per machine, with its own key pair and security group.

Every resource is named or tagged with a random per-machine ``uid`` that is recorded *before* the call
that creates it, so ``remove()`` finds what a crash or Ctrl-C left behind even when the id never came
back: instances and spot requests by the ``provision-uid`` tag, the key pair and security group by
their recorded names. ``remove()`` deletes only what this machine created, never a key pair or
security group the user named.

The security groups the user names are attached as they are; the ingress this tool needs (SSH, the
engine port, --amazonec2-open-port, from --amazonec2-allowed-cidr) goes only into the machine's own
group. Docker Machine instead opened 2376 to the world on every listed group and never deleted its
own group.

A machine in a cluster also carries the cluster's shared group (``aws_cluster``), which admits the
swarm ports from its members only. ``remove()`` never deletes it: ``leave_cluster(last=True)`` does,
when the core says no other member remains.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from pathlib import Path
from typing import Any

from provision.errors import DriverError, ProvisionError, TimeoutExpired, UsageError

from .aws_client import DRIVER, EC2, AWSTarget, connect, ec2_errors, error_code
from .aws_cluster import ensure_group, find_group, other_members, set_member
from .aws_images import instance_architectures, resolve_image
from .aws_userdata import merge_user_data, tool_cloud_config
from .aws_waits import GONE_CODES, delete_security_group, wait_for_instance, wait_for_spot_request
from provision.driver import KEEP_SHARED, Capabilities, Driver, MachineState, OptionSpec, SSHEndpoint

TAG_MACHINE = "provision-machine"
TAG_UID = "provision-uid"

# Bounds on every wait. EC2 usually needs well under a minute for each.
RUNNING_TIMEOUT = 600.0
STOPPED_TIMEOUT = 600.0
TERMINATED_TIMEOUT = 600.0
SPOT_TIMEOUT = 600.0
EC2_STATES = {
    "pending": MachineState.STARTING,
    "running": MachineState.RUNNING,
    "stopping": MachineState.STOPPING,
    "stopped": MachineState.STOPPED,
    "shutting-down": MachineState.STOPPING,
    "terminated": MachineState.NOT_FOUND,  # gone for good: nothing can start it again
}

_P = "amazonec2-"
OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(_P + "region", "AWS region", default="us-east-1", envvar="AWS_DEFAULT_REGION"),
    OptionSpec(_P + "zone", "Availability zone letter within the region", default="a", envvar="AWS_ZONE"),
    OptionSpec(_P + "ami", "AMI id, or ubuntu-24.04 / debian-12 for the current public image "
               "(default: ubuntu-24.04, looked up at create time)", envvar="AWS_AMI"),
    OptionSpec(_P + "instance-type", "Instance type", default="t3.medium", envvar="AWS_INSTANCE_TYPE"),
    OptionSpec(_P + "root-size", "Root disk size in GB", type=int, default=16, envvar="AWS_ROOT_SIZE"),
    OptionSpec(_P + "volume-type", "Root volume type", default="gp3", envvar="AWS_VOLUME_TYPE",
               choices=("gp3", "gp2", "io1", "io2", "standard")),
    OptionSpec(_P + "vpc-id", "VPC id (default: the subnet's, else the default VPC)", envvar="AWS_VPC_ID"),
    OptionSpec(_P + "subnet-id", "Subnet id (default: the default subnet of the zone)", envvar="AWS_SUBNET_ID"),
    OptionSpec(_P + "security-group", "Extra security group (name or id) to attach; never modified or "
               "deleted", envvar="AWS_SECURITY_GROUP", multiple=True),
    OptionSpec(_P + "open-port", "Extra port to open in the machine's security group (PORT or PORT/udp)",
               envvar="AWS_OPEN_PORT", multiple=True),
    OptionSpec(_P + "allowed-cidr", "Source CIDR allowed to reach SSH, the engine and open ports",
               default=("0.0.0.0/0",), envvar="AWS_ALLOWED_CIDR", multiple=True),
    OptionSpec(_P + "tags", "Extra tags: key1,value1,key2,value2 (Docker Machine's form) or k=v,k2=v2",
               envvar="AWS_TAGS"),
    OptionSpec(_P + "iam-instance-profile", "IAM instance profile name or ARN", envvar="AWS_INSTANCE_PROFILE"),
    OptionSpec(_P + "ssh-user", "SSH user (default: the image's: ubuntu, admin for debian-12)",
               envvar="AWS_SSH_USER"),
    OptionSpec(_P + "ssh-port", "SSH port", type=int, default=22, envvar="AWS_SSH_PORT"),
    OptionSpec(_P + "ssh-keypath", "Private key to use instead of a generated one (its .pub is imported "
               "unless --amazonec2-keypair-name is given)", envvar="AWS_SSH_KEYPATH"),
    OptionSpec(_P + "keypair-name", "Existing EC2 key pair to use (needs --amazonec2-ssh-keypath); never "
               "deleted", envvar="AWS_KEYPAIR_NAME"),
    OptionSpec(_P + "request-spot-instance", "Use a spot instance", type=bool, default=False,
               envvar="AWS_SPOT_INSTANCE"),
    OptionSpec(_P + "spot-price", "Maximum spot price per hour (default: the on-demand price)",
               envvar="AWS_SPOT_PRICE"),
    OptionSpec(_P + "private-address-only", "No public IP; use the private address", type=bool,
               default=False, envvar="AWS_PRIVATE_ADDRESS_ONLY"),
    OptionSpec(_P + "use-private-address", "Reach the machine at its private address", type=bool,
               default=False, envvar="AWS_USE_PRIVATE_ADDRESS"),
    OptionSpec(_P + "userdata", "File with cloud-init user data, merged with the tool's", envvar="AWS_USERDATA"),
    OptionSpec(_P + "endpoint", "EC2 endpoint URL (default: the region's; boto3 also honours "
               "AWS_ENDPOINT_URL_EC2)", envvar="AWS_ENDPOINT"),
)


def map_state(ec2_state: str) -> MachineState:
    return EC2_STATES.get(ec2_state, MachineState.UNKNOWN)


def parse_tags(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    items = [item.strip() for item in text.split(",")]
    if all("=" in item for item in items):
        return dict(item.split("=", 1) for item in items)  # type: ignore[misc]
    if len(items) % 2:
        raise UsageError(f'--amazonec2-tags "{text}": expected key1,value1,key2,value2 or k=v,k2=v2')
    return dict(zip(items[::2], items[1::2]))


def parse_port(text: str) -> tuple[int, str]:
    port, _, proto = str(text).partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp") or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f'--amazonec2-open-port "{text}": expected PORT or PORT/tcp or PORT/udp')
    return int(port), proto


def ip_ranges(cidrs: list[str]) -> dict[str, list[dict[str, str]]]:
    v4: list[dict[str, str]] = []
    v6: list[dict[str, str]] = []
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise UsageError(f'--amazonec2-allowed-cidr "{cidr}" is not a CIDR block') from exc
        if network.version == 4:
            v4.append({"CidrIp": str(network)})
        else:
            v6.append({"CidrIpv6": str(network)})
    return {"IpRanges": v4, "Ipv6Ranges": v6}


class AmazonEC2Driver(Driver):
    name = "amazonec2"
    description = "Amazon Web Services EC2 instance"
    options = OPTIONS
    capabilities = Capabilities(provisions_engine=True, ssh=True, start=True, stop=True, restart=True, kill=True,
                                keys_at_boot=True, cluster=True)
    requires = ("boto3",)

    # -- options and connection -------------------------------------------------------------------
    def _opt(self, key: str) -> Any:
        return self.ctx.option("amazonec2_" + key)

    def _list_opt(self, key: str) -> list[str]:
        value = self._opt(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value]

    def _target(self) -> AWSTarget:
        # After create, the record decides: a changed AWS_DEFAULT_REGION must not lose the machine.
        region = self.ctx.data.get("region") or self._opt("region")
        endpoint = self.ctx.data.get("endpoint") or self._opt("endpoint")
        return AWSTarget(region=region, endpoint=endpoint or None)

    def _ec2(self) -> EC2:
        return connect(self._target())

    def _save(self, **values: Any) -> None:
        self.ctx.data.update(values)
        self.ctx.checkpoint()

    # -- create ------------------------------------------------------------------------------------
    def create(self) -> None:
        d = self.ctx.data
        ec2 = self._ec2()
        client, src = ec2.client, ec2.credential_source
        region = self._target().region
        self.ctx.progress(f"Checking instance type, image and network in {region}")
        plan = self._plan(ec2)
        self._save(region=region, endpoint=self._target().endpoint, uid=secrets.token_hex(8), **plan["record"])

        self._create_key_pair(ec2, plan)
        self._create_security_group(ec2, plan)
        if self.ctx.cluster:
            plan["cluster_groups"] = [self._ensure_cluster_group(ec2, self.ctx.cluster)]
        if plan["spot"]:
            self._launch_spot(ec2, plan)
        else:
            self._launch(ec2, plan)

        self.ctx.progress(f"Waiting for instance {d['instance_id']} to run")
        wait_for_instance(ec2, d["instance_id"], "running", RUNNING_TIMEOUT)
        self._record_addresses(self._describe(client, src))
        self.ctx.checkpoint()
        if not self._client_address():
            raise DriverError(f"Instance {d['instance_id']} has no {'private' if d['use_private'] else 'public'} "
                              "address", driver=DRIVER,
                              hint="its subnet assigns no public IPs: use --amazonec2-use-private-address "
                                   "or another subnet")

    def _plan(self, ec2: EC2) -> dict[str, Any]:
        """Validate every option and resolve names to ids before anything is created."""
        client, src = ec2.client, ec2.credential_source
        instance_type = self._opt("instance_type")
        architectures = instance_architectures(client, instance_type, src)
        image = resolve_image(client, src, self._opt("ami"), architectures)
        ssh_port = int(self._opt("ssh_port"))
        keypair_name = self._opt("keypair_name")
        keypath = self._opt("ssh_keypath")
        if keypair_name and not keypath:
            raise UsageError("--amazonec2-keypair-name needs --amazonec2-ssh-keypath (that pair's private key)")
        if keypath and not Path(keypath).expanduser().is_file():
            raise UsageError(f"--amazonec2-ssh-keypath {keypath}: no such file")
        if keypair_name:
            with ec2_errors(f'find key pair "{keypair_name}"', src):
                client.describe_key_pairs(KeyNames=[keypair_name])
        public_key_path = Path(keypath).expanduser().with_name(Path(keypath).name + ".pub") if keypath \
            else self.ctx.ssh_key_path.with_suffix(".pub")
        if not keypair_name and not public_key_path.is_file():
            raise DriverError(f"Public key {public_key_path} not found", driver=DRIVER)

        subnet_id, vpc_id, zone = self._network(client, src)
        extra_groups = self._user_groups(client, src, vpc_id)
        engine_port = self.exposed_engine_port()
        ports = [(ssh_port, "tcp")] + ([(engine_port, "tcp")] if engine_port else [])
        ports += [p for p in (parse_port(x) for x in self._list_opt("open_port")) if p not in ports]
        ranges = ip_ranges(self._list_opt("allowed_cidr"))
        tags = parse_tags(self._opt("tags"))
        userdata_path = self._opt("userdata")
        user_data = None
        if userdata_path:
            path = Path(userdata_path).expanduser()
            try:
                user_data = path.read_bytes()
            except OSError as exc:
                raise UsageError(f"--amazonec2-userdata {userdata_path}: {exc.strerror}") from exc
        merged = merge_user_data(tool_cloud_config(self.ctx.machine_name, ssh_port), user_data, str(userdata_path))
        private_only = bool(self._opt("private_address_only"))
        return {
            "instance_type": instance_type,
            "image": image,
            "public_key_path": public_key_path,
            "keypair_name": keypair_name,
            "ports": ports,
            "ranges": ranges,
            "extra_groups": extra_groups,
            "tags": tags,
            "user_data": merged,
            "private_only": private_only,
            "spot": bool(self._opt("request_spot_instance")),
            "record": {
                "instance_type": instance_type,
                "image_id": image.image_id,
                "image_name": image.name,
                "vpc_id": vpc_id,
                "subnet_id": subnet_id,
                "zone": zone,
                "ssh_user": self._opt("ssh_user") or image.ssh_user,
                "ssh_port": ssh_port,
                "ssh_key_path": str(Path(keypath).expanduser()) if keypath else None,
                "use_private": private_only or bool(self._opt("use_private_address")),
                "spot": bool(self._opt("request_spot_instance")),
            },
        }

    def _network(self, client: Any, src: str) -> tuple[str, str, str]:
        region = self._target().region
        zone_letter = self._opt("zone").strip()
        zone = zone_letter if zone_letter.startswith(region) else region + zone_letter
        subnet_id, vpc_id = self._opt("subnet_id"), self._opt("vpc_id")
        with ec2_errors("look up the subnet", src):
            if subnet_id:
                subnets = client.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
            else:
                if not vpc_id:
                    vpcs = client.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
                    if not vpcs:
                        raise DriverError(f"Region {region} has no default VPC", driver=DRIVER,
                                          hint="give --amazonec2-vpc-id and --amazonec2-subnet-id")
                    vpc_id = vpcs[0]["VpcId"]
                filters = [{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "availability-zone", "Values": [zone]}]
                subnets = client.describe_subnets(Filters=filters)["Subnets"]
                # Prefer the zone's default subnet, as Docker Machine did.
                subnets.sort(key=lambda s: not s.get("DefaultForAz", False))
        if not subnets:
            raise DriverError(f"No subnet in VPC {vpc_id} in zone {zone}", driver=DRIVER,
                              hint="give --amazonec2-subnet-id or another --amazonec2-zone")
        subnet = subnets[0]
        if vpc_id and subnet["VpcId"] != vpc_id:
            raise UsageError(f"Subnet {subnet['SubnetId']} is in VPC {subnet['VpcId']}, not {vpc_id}")
        return subnet["SubnetId"], subnet["VpcId"], subnet["AvailabilityZone"]

    def _user_groups(self, client: Any, src: str, vpc_id: str) -> list[str]:
        names = self._list_opt("security_group")
        if not names:
            return []
        ids = [n for n in names if n.startswith("sg-")]
        by_name = [n for n in names if not n.startswith("sg-")]
        found: list[str] = []
        with ec2_errors("look up the named security groups", src):
            if ids:
                found += [g["GroupId"] for g in client.describe_security_groups(GroupIds=ids)["SecurityGroups"]]
            if by_name:
                groups = client.describe_security_groups(Filters=[
                    {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": by_name}])["SecurityGroups"]
                missing = set(by_name) - {g["GroupName"] for g in groups}
                if missing:
                    raise DriverError(f"Security group(s) {', '.join(sorted(missing))} not found in VPC {vpc_id}",
                                      driver=DRIVER)
                found += [g["GroupId"] for g in groups]
        return found

    def _tags(self, plan: dict[str, Any]) -> list[dict[str, str]]:
        tags = {**plan["tags"], "Name": self.ctx.machine_name, TAG_MACHINE: self.ctx.machine_name,
                TAG_UID: self.ctx.data["uid"]}
        return [{"Key": k, "Value": v} for k, v in tags.items()]

    def _create_key_pair(self, ec2: EC2, plan: dict[str, Any]) -> None:
        client, src = ec2.client, ec2.credential_source
        if plan["keypair_name"]:
            self._save(key_pair_name=plan["keypair_name"], key_pair_owned=False)
            return
        name = f"provision-{self.ctx.machine_name}-{self.ctx.data['uid']}"
        # Recorded before the call: if the call is interrupted after AWS made the pair, remove() still
        # deletes it by name.
        self._save(key_pair_name=name, key_pair_owned=True)
        self.ctx.progress(f"Importing key pair {name}")
        with ec2_errors(f"import key pair {name}", src):
            reply = client.import_key_pair(
                KeyName=name, PublicKeyMaterial=plan["public_key_path"].read_bytes(),
                TagSpecifications=[{"ResourceType": "key-pair", "Tags": self._tags(plan)}])
        self._save(key_pair_id=reply.get("KeyPairId"))

    def _create_security_group(self, ec2: EC2, plan: dict[str, Any]) -> None:
        client, src = ec2.client, ec2.credential_source
        d = self.ctx.data
        name = f"provision-{self.ctx.machine_name}-{d['uid']}"
        self._save(security_group_name=name)
        self.ctx.progress(f"Creating security group {name}")
        with ec2_errors(f"create security group {name}", src):
            group_id = client.create_security_group(
                GroupName=name, VpcId=d["vpc_id"],
                Description=f"provision machine {self.ctx.machine_name}: SSH, Docker engine, open ports",
                TagSpecifications=[{"ResourceType": "security-group", "Tags": self._tags(plan)}])["GroupId"]
        self._save(security_group_id=group_id)
        permissions = [{"IpProtocol": proto, "FromPort": port, "ToPort": port, **plan["ranges"]}
                       for port, proto in plan["ports"]]
        with ec2_errors(f"open ports in security group {group_id}", src):
            client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=permissions)

    def _launch_spec(self, plan: dict[str, Any]) -> dict[str, Any]:
        d = self.ctx.data
        spec: dict[str, Any] = {
            "ImageId": plan["image"].image_id,
            "InstanceType": plan["instance_type"],
            "KeyName": d["key_pair_name"],
            "Placement": {"AvailabilityZone": d["zone"]},
            "BlockDeviceMappings": [{
                "DeviceName": plan["image"].root_device_name,
                "Ebs": {"VolumeSize": int(self._opt("root_size")),
                        "VolumeType": self._opt("volume_type"), "DeleteOnTermination": True},
            }],
        }
        profile = self._opt("iam_instance_profile")
        if profile:
            spec["IamInstanceProfile"] = {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}
        return spec

    def _groups(self, plan: dict[str, Any]) -> list[str]:
        return [self.ctx.data["security_group_id"], *plan["extra_groups"], *plan.get("cluster_groups", [])]

    def _launch(self, ec2: EC2, plan: dict[str, Any]) -> None:
        client, src = ec2.client, ec2.credential_source
        d = self.ctx.data
        self.ctx.progress(f"Launching a {plan['instance_type']} instance from {plan['image'].image_id}")
        spec = self._launch_spec(plan)
        with ec2_errors("launch the instance", src):
            reply = client.run_instances(
                **spec, MinCount=1, MaxCount=1, UserData=plan["user_data"],
                # Idempotent: a retried call (throttling, timeout) cannot start a second instance.
                ClientToken=f"provision-{d['uid']}",
                NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": d["subnet_id"], "Groups": self._groups(plan),
                                    "AssociatePublicIpAddress": not plan["private_only"],
                                    "DeleteOnTermination": True}],
                TagSpecifications=[{"ResourceType": "instance", "Tags": self._tags(plan)},
                                   {"ResourceType": "volume", "Tags": self._tags(plan)}],
            )
        self._save(instance_id=reply["Instances"][0]["InstanceId"])

    def _launch_spot(self, ec2: EC2, plan: dict[str, Any]) -> None:
        client, src = ec2.client, ec2.credential_source
        d = self.ctx.data
        self.ctx.progress(f"Requesting a {plan['instance_type']} spot instance from {plan['image'].image_id}")
        spec = self._launch_spec(plan)
        # RequestSpotInstances, unlike RunInstances, takes user data already base64-encoded.
        spec["UserData"] = base64.b64encode(plan["user_data"]).decode("ascii")
        spec["NetworkInterfaces"] = [{"DeviceIndex": 0, "SubnetId": d["subnet_id"], "Groups": self._groups(plan),
                                      "AssociatePublicIpAddress": not plan["private_only"],
                                      "DeleteOnTermination": True}]
        args: dict[str, Any] = {
            "InstanceCount": 1, "Type": "one-time", "LaunchSpecification": spec,
            "ClientToken": f"provision-{d['uid']}",
            "TagSpecifications": [{"ResourceType": "spot-instances-request", "Tags": self._tags(plan)}],
        }
        if self._opt("spot_price"):
            args["SpotPrice"] = str(self._opt("spot_price"))
        with ec2_errors("request a spot instance", src):
            request_id = client.request_spot_instances(**args)["SpotInstanceRequests"][0]["SpotInstanceRequestId"]
        self._save(spot_request_id=request_id)

        self.ctx.progress(f"Waiting for spot request {request_id} to be fulfilled")
        instance_id = wait_for_spot_request(ec2, request_id, SPOT_TIMEOUT)
        self._save(instance_id=instance_id)
        with ec2_errors(f"tag spot instance {instance_id}", src):
            # Spot requests tag only themselves; the instance is tagged here.
            client.create_tags(Resources=[instance_id], Tags=self._tags(plan))
            instance = self._describe(client, src)
            primary = [n for n in instance.get("NetworkInterfaces", [])
                       if n.get("Attachment", {}).get("DeviceIndex") == 0]
            have = {g["GroupId"] for g in (primary[0]["Groups"] if primary else instance.get("SecurityGroups", []))}
            if have != set(self._groups(plan)):
                # Some EC2-compatible endpoints (moto among them) ignore the launch specification's
                # network interface and start the instance in the default group.
                client.modify_instance_attribute(InstanceId=instance_id, Groups=self._groups(plan))

    # -- clusters ----------------------------------------------------------------------------------
    def cluster_address(self) -> str:
        address = self.ctx.data.get("private_ip")
        if not address:
            raise DriverError(f'Machine "{self.ctx.machine_name}" has no private address recorded', driver=DRIVER)
        return str(address)

    def _ensure_cluster_group(self, ec2: EC2, cluster: str) -> str:
        d = self.ctx.data
        # Recorded before the group may exist: leave_cluster finds it by the cluster's name if the id never
        # came back.
        groups = dict(d.get("cluster_groups") or {})
        groups.setdefault(cluster, None)
        self._save(cluster_groups=groups)
        self.ctx.progress(f"Opening the swarm ports between the members of cluster {cluster}")
        group_id = ensure_group(ec2, cluster, d["vpc_id"], parse_tags(self._opt("tags")))
        self._save(cluster_groups={**d["cluster_groups"], cluster: group_id})
        return group_id

    def join_cluster(self, cluster: str) -> None:
        instance_id = self._instance_id()
        ec2 = self._ec2()
        set_member(ec2, instance_id, self._ensure_cluster_group(ec2, cluster), member=True)

    def leave_cluster(self, cluster: str, *, last: bool) -> None:
        d = self.ctx.data
        if not d.get("vpc_id"):
            return  # create() failed before it knew its network: it never joined anything
        ec2 = self._ec2()
        group_id = (d.get("cluster_groups") or {}).get(cluster)
        if not group_id:
            group = find_group(ec2, cluster, d["vpc_id"], refuse=False)
            group_id = group["GroupId"] if group else None
        if group_id:
            if d.get("instance_id"):
                set_member(ec2, d["instance_id"], group_id, member=False)
            if last:
                others = other_members(ec2, group_id, d.get("instance_id"))
                if others:
                    # The core counts the members it knows; EC2 knows of more (another store's machines).
                    self.ctx.progress(f"Keeping security group {group_id}: still used by {', '.join(others)}")
                else:
                    self.ctx.progress(f"Deleting security group {group_id}")
                    delete_security_group(ec2, group_id)
        self._save(cluster_groups={k: v for k, v in (d.get("cluster_groups") or {}).items() if k != cluster})

    # -- addresses ---------------------------------------------------------------------------------
    def _describe(self, client: Any, src: str) -> dict[str, Any]:
        instance_id = self.ctx.data["instance_id"]
        with ec2_errors(f"describe instance {instance_id}", src):
            reservations = client.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return reservations[0]["Instances"][0]

    def _record_addresses(self, instance: dict[str, Any]) -> None:
        self.ctx.data.update({
            "public_ip": instance.get("PublicIpAddress") or None,
            "private_ip": instance.get("PrivateIpAddress") or None,
            "public_dns": instance.get("PublicDnsName") or None,
            "private_dns": instance.get("PrivateDnsName") or None,
        })

    def _client_address(self) -> str | None:
        d = self.ctx.data
        return d.get("private_ip") if d.get("use_private") else d.get("public_ip")

    def ip(self) -> str:
        address = self._client_address()
        if not address:
            raise DriverError(f'Machine "{self.ctx.machine_name}" has no address recorded '
                              "(not created, or stopped: start it)", driver=DRIVER)
        return address

    def engine_url(self) -> str:
        return f"tcp://{self.ip()}:{self.engine_port()}"

    def ssh_endpoint(self) -> SSHEndpoint:
        d = self.ctx.data
        key = Path(d["ssh_key_path"]) if d.get("ssh_key_path") else self.ctx.ssh_key_path
        return SSHEndpoint(host=self.ip(), port=int(d.get("ssh_port") or 22), user=d.get("ssh_user") or "ubuntu",
                           key_path=key)

    def addresses(self) -> list[str]:
        d = self.ctx.data
        found: list[str] = []
        for value in (self._client_address(), d.get("public_ip"), d.get("private_ip"), d.get("public_dns"),
                      d.get("private_dns")):
            if value and value not in found:
                found.append(value)
        return found

    def refresh(self) -> bool:
        """Re-read the addresses (a stop/start gives a new public IP). True if any address changed: the
        server certificate covers all of them, so any change means a new certificate."""
        if not self.ctx.data.get("instance_id"):
            return False
        ec2 = self._ec2()
        before = self.addresses()
        self._record_addresses(self._describe(ec2.client, ec2.credential_source))
        self.ctx.checkpoint()
        return self.addresses() != before

    def extra(self) -> dict[str, Any]:
        d = self.ctx.data
        keys = ("region", "zone", "instance_id", "instance_type", "image_id", "image_name", "spot_request_id",
                "security_group_id", "key_pair_name", "vpc_id", "subnet_id", "public_dns", "private_dns",
                "cluster_groups")
        return {k: d[k] for k in keys if d.get(k)}

    def boot_log(self) -> str | None:
        """The instance's serial console output, as EC2 last captured it."""
        instance_id = self.ctx.data.get("instance_id")
        if not instance_id:
            return None
        ec2 = self._ec2()
        with ec2_errors(f"read the console output of instance {instance_id}", ec2.credential_source):
            output = ec2.client.get_console_output(InstanceId=instance_id).get("Output")
        return output or None

    # -- lifecycle ---------------------------------------------------------------------------------
    def _instance_id(self) -> str:
        instance_id = self.ctx.data.get("instance_id")
        if not instance_id:
            raise DriverError(f'Machine "{self.ctx.machine_name}" has no instance', driver=DRIVER)
        return instance_id

    def state(self) -> MachineState:
        instance_id = self.ctx.data.get("instance_id")
        if not instance_id:
            return MachineState.NOT_FOUND
        import botocore.exceptions

        ec2 = self._ec2()
        with ec2_errors(f"read the state of instance {instance_id}", ec2.credential_source):
            try:
                reservations = ec2.client.describe_instances(InstanceIds=[instance_id])["Reservations"]
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in GONE_CODES:
                    return MachineState.NOT_FOUND
                raise
        if not reservations:
            return MachineState.NOT_FOUND
        return map_state(reservations[0]["Instances"][0]["State"]["Name"])

    def start(self) -> None:
        ec2, instance_id = self._ec2(), self._instance_id()
        with ec2_errors(f"start instance {instance_id}", ec2.credential_source):
            ec2.client.start_instances(InstanceIds=[instance_id])
        wait_for_instance(ec2, instance_id, "running", RUNNING_TIMEOUT)

    def stop(self) -> None:
        self._stop(force=False)

    def kill(self) -> None:
        self._stop(force=True)

    def _stop(self, *, force: bool) -> None:
        ec2, instance_id = self._ec2(), self._instance_id()
        with ec2_errors(f"stop instance {instance_id}", ec2.credential_source):
            ec2.client.stop_instances(InstanceIds=[instance_id], Force=force)
        wait_for_instance(ec2, instance_id, "stopped", STOPPED_TIMEOUT)
        # EC2 releases the public address of a stopped instance (it may go to someone else): forget it,
        # so `ip` and `env` cannot point there; start() and refresh() read the new one.
        self._save(public_ip=None, public_dns=None)

    def restart(self) -> None:
        ec2, instance_id = self._ec2(), self._instance_id()
        with ec2_errors(f"reboot instance {instance_id}", ec2.credential_source):
            ec2.client.reboot_instances(InstanceIds=[instance_id])

    # -- remove ------------------------------------------------------------------------------------
    def remove(self) -> None:
        d = self.ctx.data
        if not d.get("uid") and not d.get(KEEP_SHARED):
            return  # create() failed before the first resource: nothing in the account is ours
        ec2 = self._ec2()
        failures: list[str] = []
        steps = [self._remove_spot_requests, self._remove_instances, self._remove_key_pair]
        if not d.get(KEEP_SHARED):  # Docker Machine's groups are shared by its other machines
            steps.append(self._remove_security_group)
        # Each step runs even when an earlier one failed, so one stuck resource does not strand others.
        for step in steps:
            try:
                step(ec2)
            except ProvisionError as exc:
                failures.append(str(exc))
        if failures:
            raise DriverError("Could not remove everything: " + "; ".join(failures), driver=DRIVER,
                              hint="run `provision rm` again; what remains is tagged "
                                   f"{TAG_UID}={d['uid']}" if d.get("uid") else "run `provision rm` again")

    def _remove_spot_requests(self, ec2: EC2) -> None:
        import botocore.exceptions

        d = self.ctx.data
        if not d.get("spot") and not d.get("spot_request_id"):
            return
        with ec2_errors("find the spot request", ec2.credential_source):
            requests = ec2.client.describe_spot_instance_requests(
                Filters=[{"Name": f"tag:{TAG_UID}", "Values": [d["uid"]]}])["SpotInstanceRequests"]
        live = [r for r in requests if r.get("State") in ("open", "active", "disabled")]
        ids = sorted({r["SpotInstanceRequestId"] for r in live})
        known = d.get("spot_request_id")
        if known and known not in {r["SpotInstanceRequestId"] for r in requests}:
            ids.append(known)  # tags not visible yet: trust the record
        for request in live:
            if request.get("InstanceId") and not d.get("instance_id"):
                self._save(instance_id=request["InstanceId"])  # fulfilled while we were interrupted
        for request_id in ids:
            self.ctx.progress(f"Cancelling spot request {request_id}")
            with ec2_errors(f"cancel spot request {request_id}", ec2.credential_source):
                try:
                    ec2.client.cancel_spot_instance_requests(SpotInstanceRequestIds=[request_id])
                except botocore.exceptions.ClientError as exc:
                    if error_code(exc) not in GONE_CODES:
                        raise

    def _remove_instances(self, ec2: EC2) -> None:
        import botocore.exceptions

        d = self.ctx.data
        reservations: list[dict[str, Any]] = []
        if d.get("uid"):  # a machine migrated from Docker Machine has its instance id only
            with ec2_errors("find the machine's instances", ec2.credential_source):
                reservations = ec2.client.describe_instances(Filters=[
                    {"Name": f"tag:{TAG_UID}", "Values": [d["uid"]]},
                    {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped",
                                                              "shutting-down"]}])["Reservations"]
        ids = {i["InstanceId"] for r in reservations for i in r["Instances"]}
        if d.get("instance_id") and d["instance_id"] not in ids:
            # Untagged (tags not yet visible) or already gone: ask about the recorded id itself.
            with ec2_errors(f"describe instance {d['instance_id']}", ec2.credential_source):
                try:
                    found = ec2.client.describe_instances(InstanceIds=[d["instance_id"]])["Reservations"]
                except botocore.exceptions.ClientError as exc:
                    if error_code(exc) not in GONE_CODES:
                        raise
                    found = []
            ids |= {i["InstanceId"] for r in found for i in r["Instances"] if i["State"]["Name"] != "terminated"}
        for instance_id in sorted(ids):
            self.ctx.progress(f"Terminating instance {instance_id}")
            with ec2_errors(f"terminate instance {instance_id}", ec2.credential_source):
                try:
                    ec2.client.terminate_instances(InstanceIds=[instance_id])
                except botocore.exceptions.ClientError as exc:
                    if error_code(exc) in GONE_CODES:
                        continue
                    raise
            # The security group cannot go until the instance has released its network interface.
            wait_for_instance(ec2, instance_id, "terminated", TERMINATED_TIMEOUT)

    def _remove_key_pair(self, ec2: EC2) -> None:
        d = self.ctx.data
        if not d.get("key_pair_owned") or not d.get("key_pair_name"):
            return  # never delete a key pair the user named
        self.ctx.progress(f"Deleting key pair {d['key_pair_name']}")
        with ec2_errors(f"delete key pair {d['key_pair_name']}", ec2.credential_source):
            ec2.client.delete_key_pair(KeyName=d["key_pair_name"])  # idempotent in EC2

    def _remove_security_group(self, ec2: EC2) -> None:
        d = self.ctx.data
        group_id = d.get("security_group_id")
        if not group_id and d.get("security_group_name") and d.get("vpc_id"):
            with ec2_errors("find the machine's security group", ec2.credential_source):
                groups = ec2.client.describe_security_groups(Filters=[
                    {"Name": "vpc-id", "Values": [d["vpc_id"]]},
                    {"Name": "group-name", "Values": [d["security_group_name"]]}])["SecurityGroups"]
            group_id = groups[0]["GroupId"] if groups else None
        if not group_id:
            return
        self.ctx.progress(f"Deleting security group {group_id}")
        delete_security_group(ec2, group_id)
