"""Bounded waits on EC2 and deletions that must outlast EC2's own delays, for the amazonec2 driver."""

from __future__ import annotations

from typing import Any

from provision import waiting
from provision.errors import DriverError, TimeoutExpired

from .aws_client import DRIVER, EC2, ec2_errors, error_code

# "Already gone": removal treats these as done.
GONE_CODES = frozenset({
    "InvalidInstanceID.NotFound", "InvalidGroup.NotFound", "InvalidKeyPair.NotFound",
    "InvalidSpotInstanceRequestID.NotFound", "InvalidGroupId.NotFound",
})

# A security group stays "in use" until EC2 has fully released the terminated instance's interface.
SG_DELETE_TIMEOUT = 300.0
SG_DELETE_DELAY = 5.0


# States from which an instance can no longer reach the wanted one. "stopped" is not one for "running":
# right after StartInstances, EC2's eventually consistent reads may still say so.
DEAD_ENDS = {
    "running": {"shutting-down", "terminated"},
    "stopped": {"shutting-down", "terminated"},
    "terminated": set(),
}


# EC2 transitions: a quick one is seen within a second, a slow one costs a call every 5 s.
POLL_FIRST, POLL_MAX = 1.0, 5.0


def describe_instance(ec2: EC2, instance_id: str) -> dict[str, Any] | None:
    """The instance as DescribeInstances shows it, or None when EC2 does not know it (any more, or yet)."""
    import botocore.exceptions

    with ec2_errors(f"read the state of instance {instance_id}", ec2.credential_source):
        try:
            reservations = ec2.client.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in GONE_CODES:
                raise
            return None
    return reservations[0]["Instances"][0] if reservations else None


def wait_for_instance(ec2: EC2, instance_id: str, wanted: str, timeout: float) -> None:
    def reached() -> bool:
        vm = describe_instance(ec2, instance_id)
        if vm is None:
            # Gone is what "terminated" wants; right after launch it is EC2's eventual consistency.
            if wanted == "terminated":
                return True
            raise waiting.NotYet("not found")
        state = vm["State"]["Name"]
        if state in DEAD_ENDS[wanted]:
            reason = vm.get("StateReason", {}).get("Message") or vm.get("StateTransitionReason") or "no reason given"
            raise DriverError(f"Instance {instance_id} went to {state} instead of {wanted}: {reason}", driver=DRIVER)
        if state != wanted:
            raise waiting.NotYet(state)
        return True

    waiting.wait_for(f"see instance {instance_id} {wanted}", reached, timeout=timeout, interval=POLL_FIRST,
                     backoff=2.0, max_interval=POLL_MAX)


def wait_for_spot_request(ec2: EC2, request_id: str, timeout: float) -> str:
    """The instance id once the request is fulfilled; raises when EC2 gives up on it."""

    def fulfilled() -> str:
        with ec2_errors(f"read spot request {request_id}", ec2.credential_source):
            requests = ec2.client.describe_spot_instance_requests(
                Filters=[{"Name": "spot-instance-request-id", "Values": [request_id]}])["SpotInstanceRequests"]
        if not requests:
            raise waiting.NotYet("not visible yet")
        request = requests[0]
        status = request.get("Status", {})
        observed = f"{request.get('State')} ({status.get('Code', '')}: {status.get('Message', '')})"
        if request.get("InstanceId"):
            return str(request["InstanceId"])
        if request.get("State") in ("cancelled", "failed", "closed"):
            raise DriverError(f"Spot request {request_id} was not fulfilled: {observed}", driver=DRIVER,
                              hint="try another --amazonec2-instance-type, zone or --amazonec2-spot-price")
        raise waiting.NotYet(observed)

    return waiting.wait_for(f"see spot request {request_id} fulfilled", fulfilled, timeout=timeout,
                            interval=POLL_FIRST, backoff=2.0, max_interval=POLL_MAX)


def delete_security_group(ec2: EC2, group_id: str, timeout: float = SG_DELETE_TIMEOUT,
                          delay: float = SG_DELETE_DELAY) -> None:
    """Delete a group, retrying while EC2 still counts it in use (DependencyViolation), bounded."""
    import botocore.exceptions

    def deleted() -> bool:
        with ec2_errors(f"delete security group {group_id}", ec2.credential_source):
            try:
                ec2.client.delete_security_group(GroupId=group_id)
            except botocore.exceptions.ClientError as exc:
                code = error_code(exc)
                if code == "DependencyViolation":
                    raise waiting.NotYet(str(exc)) from exc
                if code not in GONE_CODES:
                    raise
        return True

    waiting.wait_for(f"delete security group {group_id}", deleted, timeout=timeout, interval=delay,
                     error=lambda expired: TimeoutExpired(
                         f"Security group {group_id} was still in use after {timeout:.0f}s: "
                         "something other than this machine's instance uses it"))
