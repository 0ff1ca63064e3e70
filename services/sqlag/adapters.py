"""sqlag adapters: the only AWS code of the service (EC2, SSM Run Command and Route 53 in workload
accounts through AssumeRole; the registry, the coordinator's operation record and the bus in the
orchestration account).

Every AWS error reaching the domain is an `AwsError` with AWS's code; retries are botocore's
retry modes (`drcore.aws`). A command is read every `sqlag_poll_seconds` until it ends (as
botocore's `CommandExecuted` waiter reads it); a DNS change waits with the
`ResourceRecordSetsChanged` waiter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, WaiterError
from pydantic import ValidationError

from drcore import tags as T
from drcore.aws import AccountAccess, AwsClients
from drcore.publisher import EventPublisher
from drcore.registry import PARAMETER_PREFIX, CustomerEntry
from drcore.state import META, op_pk
from events.schemas import Detail, Source

from .ports import TERMINAL_STATUSES, ARecord, AwsError, Instance, Invocation

DOCUMENT = "AWS-RunPowerShellScript"
# How long SSM may take to deliver a command to the instance's agent (SendCommand TimeoutSeconds).
DELIVERY_TIMEOUT_SECONDS = 120
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
REGISTRY_TTL_SECONDS = 300
MESSAGE_CHARS = 500

_R = TypeVar("_R")


def _aws(call: Callable[[], _R]) -> _R:
    try:
        return call()
    except (ClientError, BotoCoreError) as error:
        raise _aws_error(error) from error


def _aws_error(error: ClientError | BotoCoreError) -> AwsError:
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return AwsError(
            str(err.get("Code", "Unknown")), str(err.get("Message", ""))[:MESSAGE_CHARS]
        )
    return AwsError("EndpointError", str(error)[:MESSAGE_CHARS])


def _instance(item: Mapping[str, Any], region: str) -> Instance:
    return Instance(
        instance_id=item["InstanceId"],
        region=region,
        state=str((item.get("State") or {}).get("Name", "unknown")),
        private_ip=item.get("PrivateIpAddress"),
        vpc_id=item.get("VpcId"),
        tags={t["Key"]: t["Value"] for t in item.get("Tags") or []},
    )


def _invocation(item: Mapping[str, Any]) -> Invocation:
    code = item.get("ResponseCode")
    return Invocation(
        command_id=str(item.get("CommandId", "")),
        instance_id=str(item.get("InstanceId", "")),
        status=str(item.get("Status", "")),
        comment=str(item.get("Comment", "")),
        response_code=int(code) if isinstance(code, int) else None,
        stdout=str(item.get("StandardOutputContent", "")),
        stderr=str(item.get("StandardErrorContent", "")),
        status_details=str(item.get("StatusDetails", "")),
    )


class BotoWorkload:
    """EC2 and SSM Run Command of one workload account in one region."""

    def __init__(
        self,
        ec2: Any,
        ssm: Any,
        region: str,
        poll_seconds: float,
        command_timeout: int,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ec2 = ec2
        self._ssm = ssm
        self.region = region
        self._poll = poll_seconds
        self._timeout = command_timeout
        self._sleep = sleep
        self._clock = clock

    def instance(self, instance_id: str) -> Instance | None:
        try:
            reservations = _aws(
                lambda: self._ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
            )
        except AwsError as error:
            if error.code.startswith("InvalidInstanceID"):
                return None
            raise
        found = [_instance(i, self.region) for r in reservations for i in r["Instances"]]
        return found[0] if found else None

    def instances_tagged(
        self, customer: str, environment: str, tags: Mapping[str, str]
    ) -> list[Instance]:
        filters = [
            {"Name": f"tag:{T.CUSTOMER}", "Values": [customer]},
            {"Name": f"tag:{T.ENVIRONMENT}", "Values": [environment]},
            {"Name": "instance-state-name", "Values": LIVE_STATES},
        ] + [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(tags.items())]

        def collect() -> list[Instance]:
            out = []
            pages = self._ec2.get_paginator("describe_instances").paginate(Filters=filters)
            for page in pages:
                out += [
                    _instance(i, self.region) for r in page["Reservations"] for i in r["Instances"]
                ]
            return out

        return _aws(collect)

    def vpc_name(self, vpc_id: str) -> str | None:
        vpcs = _aws(lambda: self._ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"])
        tags = {t["Key"]: t["Value"] for v in vpcs for t in v.get("Tags") or []}
        return tags.get(T.NAME)

    def send_command(
        self, instance_id: str, commands: Sequence[str], comment: str, timeout_seconds: int
    ) -> str:
        response = _aws(
            lambda: self._ssm.send_command(
                InstanceIds=[instance_id],
                DocumentName=DOCUMENT,
                Comment=comment,
                TimeoutSeconds=DELIVERY_TIMEOUT_SECONDS,
                Parameters={
                    "commands": list(commands),
                    "executionTimeout": [str(timeout_seconds)],
                },
            )
        )
        return str(response["Command"]["CommandId"])

    def wait_command(self, command_id: str, instance_id: str) -> Invocation:
        """Read the invocation every `poll` seconds until it ends (what botocore's
        `CommandExecuted` waiter does, without its extra read for the output): an invocation
        SSM has not registered yet reads as InvocationDoesNotExist, like the waiter retries."""
        deadline = self._clock() + self._timeout + DELIVERY_TIMEOUT_SECONDS
        last: Invocation | None = None
        while True:
            self._sleep(self._poll)
            try:
                item = _aws(
                    lambda: self._ssm.get_command_invocation(
                        CommandId=command_id, InstanceId=instance_id
                    )
                )
                last = _invocation(item)
                if last.status in TERMINAL_STATUSES:
                    return last
            except AwsError as error:
                if error.code != "InvocationDoesNotExist":
                    raise
            if self._clock() > deadline:
                if last is None:
                    raise AwsError("InvocationDoesNotExist", f"command {command_id} never ran")
                return last  # still running: the domain reports it as not succeeded

    def find_command(self, instance_id: str, comment: str, since: datetime) -> Invocation | None:
        after = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        def collect() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            pages = self._ssm.get_paginator("list_command_invocations").paginate(
                InstanceId=instance_id,
                Filters=[{"key": "InvokedAfter", "value": after}],
            )
            for page in pages:
                out += page.get("CommandInvocations", [])
            return out

        mine = [i for i in _aws(collect) if i.get("Comment") == comment]
        if not mine:
            return None
        mine.sort(key=lambda i: i.get("RequestedDateTime") or datetime.min.replace(tzinfo=UTC))
        return _invocation(mine[-1])


class BotoDns:
    """Route 53 of one workload account: A records of the listener names."""

    def __init__(self, route53: Any, poll_seconds: float) -> None:
        self._route53 = route53
        self._poll = poll_seconds

    @staticmethod
    def _norm(name: str) -> str:
        return name.rstrip(".").lower()

    def a_record(self, zone_id: str, name: str) -> ARecord | None:
        response = _aws(
            lambda: self._route53.list_resource_record_sets(
                HostedZoneId=zone_id, StartRecordName=name, StartRecordType="A", MaxItems="1"
            )
        )
        for record in response.get("ResourceRecordSets", []):
            if self._norm(record["Name"]) == self._norm(name) and record["Type"] == "A":
                values = tuple(r["Value"] for r in record.get("ResourceRecords", []))
                return ARecord(values=values, ttl=int(record.get("TTL", 60)))
        return None

    def upsert_a(
        self, zone_id: str, name: str, values: Sequence[str], ttl: int, comment: str
    ) -> str:
        response = _aws(
            lambda: self._route53.change_resource_record_sets(
                HostedZoneId=zone_id,
                ChangeBatch={
                    "Comment": comment,
                    "Changes": [
                        {
                            "Action": "UPSERT",
                            "ResourceRecordSet": {
                                "Name": name,
                                "Type": "A",
                                "TTL": ttl,
                                "ResourceRecords": [{"Value": v} for v in values],
                            },
                        }
                    ],
                },
            )
        )
        return str(response["ChangeInfo"]["Id"])

    def wait_in_sync(self, change_id: str) -> None:
        waiter = self._route53.get_waiter("resource_record_sets_changed")
        try:
            waiter.wait(
                Id=change_id, WaiterConfig={"Delay": max(self._poll, 1.0), "MaxAttempts": 120}
            )
        except WaiterError as error:
            raise AwsError("ChangeNotInSync", str(error)[:MESSAGE_CHARS]) from error
        except (ClientError, BotoCoreError) as error:
            raise _aws_error(error) from error


class BotoWorkloads:
    """Workload clients through AssumeRole; `primary=True`: clients that give up quickly (the
    primary region may be the one in outage)."""

    def __init__(
        self, clients: AwsClients, primary_clients: AwsClients, poll_seconds: float, timeout: int
    ) -> None:
        self._clients = clients
        self._primary = primary_clients
        self._poll = poll_seconds
        self._timeout = timeout

    @staticmethod
    def _access(entry: CustomerEntry) -> AccountAccess:
        return AccountAccess(entry.account, entry.role_name, entry.external_id)

    def get(self, entry: CustomerEntry, region: str, *, primary: bool = False) -> BotoWorkload:
        clients = self._primary if primary else self._clients
        access = self._access(entry)
        return BotoWorkload(
            clients.workload_client("ec2", region, access),
            clients.workload_client("ssm", region, access),
            region,
            self._poll,
            self._timeout,
        )

    def dns(self, entry: CustomerEntry) -> BotoDns:
        # Route 53 is a global service (its control plane answers in us-east-1).
        route53 = self._clients.workload_client("route53", "us-east-1", self._access(entry))
        return BotoDns(route53, self._poll)


class CachedRegistry:
    """The SSM customer registry, read whole and kept a few minutes (re-read on a miss)."""

    def __init__(self, ssm: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._ssm = ssm
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, CustomerEntry] = {}
        self._loaded_at: float | None = None

    def customer(self, name: str) -> CustomerEntry | None:
        with self._lock:
            now = self._clock()
            stale = self._loaded_at is None or now - self._loaded_at > REGISTRY_TTL_SECONDS
            if stale or (name not in self._entries and now - (self._loaded_at or 0) > 1):
                self._load(now)
            return self._entries.get(name)

    def _load(self, now: float) -> None:
        entries: dict[str, CustomerEntry] = {}
        pages = self._ssm.get_paginator("get_parameters_by_path").paginate(
            Path=PARAMETER_PREFIX.rstrip("/"), Recursive=False
        )
        for page in pages:
            for parameter in page.get("Parameters", []):
                try:
                    entry = CustomerEntry.model_validate_json(parameter["Value"])
                except ValidationError:
                    continue  # discovery reports invalid entries
                entries[entry.name] = entry
        self._entries = entries
        self._loaded_at = now


class CoordinatorOptions:
    """What the operator asked, from the coordinator's operation record (`OP#<id>/META`):
    `allow_data_loss` is `drctl failover --allow-data-loss`, inherited by the per-customer
    operations of a regional request."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def allow_data_loss(self, operation_id: str) -> bool:
        item = _aws(
            lambda: self._db.get_item(
                TableName=self._table,
                Key={"pk": {"S": op_pk(operation_id)}, "sk": {"S": META}},
                ProjectionExpression="allow_data_loss",
                ConsistentRead=True,
            ).get("Item", {})
        )
        return bool(item.get("allow_data_loss", {}).get("BOOL", False))


class EventResults:
    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    def publish(self, details: Sequence[Detail]) -> None:
        if details:
            self._publisher.publish(Source.SQLAG, details)
