"""DRS adapters: the only AWS code of the service, and the assembly of `DrsService`.

Every AWS error reaching the domain is an `AwsError` carrying the AWS error code; retries are
botocore's (retry mode from `Settings`, see `drcore.aws`), never sleeps of our own.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
)
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

from drcore import tags as T
from drcore.aws import AccountAccess, AwsClients
from drcore.idempotency import idempotent_parts
from drcore.publisher import EventPublisher
from drcore.registry import PARAMETER_PREFIX, CustomerEntry
from drcore.settings import Settings
from events.schemas import Detail, Source, WaveStarted
from services.drs.subscriptions import SERVICE

from . import readiness as R
from .domain import DrsRecovery
from .drills import Drills
from .lifecycle import Lifecycle
from .ports import (
    AwsError,
    Instance,
    Job,
    JobLedger,
    JobServer,
    LaunchConfig,
    RecoveryInstance,
    SourceServer,
    Template,
    chunks,
    parse_duration,
)
from .protection import Reprotection
from .records import (
    DrsLimits,
    Hold,
    LaunchBatch,
    LaunchContext,
    OperationOptions,
    OperationRecords,
    OpJob,
    RecordedResult,
    ReprotectRecord,
    TeardownRecord,
)

EC2_FILTER_VALUES = 200
DRS_FILTER_IDS = 200
DRS_JOB_IDS = 1000
SQS_BATCH = 10
DYNAMODB_BATCH = 25
BATCH_WRITE_ATTEMPTS = 5
# Attributes of a job's REPORTED item holding each server's published result.
RESULT_PREFIX = "result#"
REGISTRY_TTL_SECONDS = 300
REGISTRY_MISS_REFRESH_SECONDS = 1  # a customer registered a moment ago is found at once
LEDGER_TTL_SECONDS = 30 * 24 * 3600
RECORDS_TTL_SECONDS = 90 * 24 * 3600
HOLD_TTL_SECONDS = 7 * 24 * 3600
# A claimed waiting batch whose worker died is claimable again after this long.
CLAIM_LEASE = timedelta(minutes=2)
# Instances that can still be launched into (terminated ones are gone).
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
MESSAGE_CHARS = 500
# The DRS quotas as documented, when Service Quotas does not answer.
DEFAULT_LIMITS = DrsLimits(servers_per_job=100, concurrent_jobs=20, servers_in_active_jobs=500)
DRS_SERVICE_CODE = "drs"
# Routes that leave a VPC: a bubble with one of them is not isolated.
ROUTE_OUT_KEYS = (
    "NatGatewayId",
    "TransitGatewayId",
    "VpcPeeringConnectionId",
    "EgressOnlyInternetGatewayId",
    "CarrierGatewayId",
    "LocalGatewayId",
    "NetworkInterfaceId",
    "InstanceId",
    "CoreNetworkArn",
)

_R = TypeVar("_R")


def _aws(call: Callable[[], _R]) -> _R:
    """Run one AWS call (with botocore's retries); failures become `AwsError`."""
    try:
        return call()
    except ClientError as error:
        err = error.response.get("Error", {})
        message = str(err.get("Message", ""))[:MESSAGE_CHARS]
        raise AwsError(str(err.get("Code", "Unknown")), message) from error
    except BotoCoreError as error:
        raise AwsError("EndpointError", str(error)[:MESSAGE_CHARS]) from error


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- DRS and EC2 in a workload account ------------------------------------------------------------


def parse_source_server(item: Mapping[str, Any]) -> SourceServer:
    props = item.get("sourceProperties") or {}
    hints = props.get("identificationHints") or {}
    replication = item.get("dataReplicationInfo") or {}
    last = (item.get("lifeCycle") or {}).get("lastLaunch") or {}
    return SourceServer(
        source_server_id=item["sourceServerID"],
        aws_instance_id=hints.get("awsInstanceID"),
        tags=dict(item.get("tags") or {}),
        replication_state=replication.get("dataReplicationState"),
        lag_seconds=parse_duration(replication.get("lagDuration")),
        primary_ip=_primary_ip(props.get("networkInterfaces") or []),
        replication_direction=item.get("replicationDirection"),
        arn=item.get("arn"),
        os=(props.get("os") or {}).get("fullString"),
        architecture=props.get("architecture"),
        reversed_arn=item.get("reversedDirectionSourceServerArn"),
        recovery_instance_id=item.get("recoveryInstanceId"),
        last_launch_result=item.get("lastLaunchResult"),
        last_launch_status=last.get("status"),
        last_launch_job=(last.get("initiated") or {}).get("jobID"),
        origin_region=(item.get("sourceCloudProperties") or {}).get("originRegion"),
    )


def _primary_ip(interfaces: Sequence[Mapping[str, Any]]) -> str | None:
    ordered = sorted(interfaces, key=lambda nic: not nic.get("isPrimary"))
    for nic in ordered:
        for ip in nic.get("ips") or []:
            if "." in ip:  # IPv4: the last-octet rule is about IPv4
                return str(ip)
    return None


def parse_job(item: Mapping[str, Any]) -> Job:
    return Job(
        job_id=item["jobID"],
        status=item.get("status", ""),
        created_at=_parse_time(item.get("creationDateTime")),
        tags=dict(item.get("tags") or {}),
        type=item.get("type", "LAUNCH"),
        servers=tuple(
            JobServer(
                source_server_id=s["sourceServerID"],
                launch_status=s.get("launchStatus"),
                recovery_instance_id=s.get("recoveryInstanceID"),
            )
            for s in item.get("participatingServers") or []
            if s.get("sourceServerID")
        ),
    )


def parse_instance(item: Mapping[str, Any]) -> Instance:
    platform = "windows" if str(item.get("Platform", "")).lower() == "windows" else None
    return Instance(
        instance_id=item["InstanceId"],
        tags=T.tag_list_to_dict(item.get("Tags")),
        private_ip=item.get("PrivateIpAddress"),
        state=(item.get("State") or {}).get("Name"),
        # EC2 names the platform of Windows instances only: anything else is Linux.
        platform=platform or R.platform_of(item.get("PlatformDetails")) or "linux",
        architecture=item.get("Architecture"),
        boot_mode=item.get("CurrentInstanceBootMode") or item.get("BootMode"),
        vpc_id=item.get("VpcId"),
        subnet_id=item.get("SubnetId"),
        launched_at=_parse_time(item.get("LaunchTime")),
    )


def parse_recovery_instance(item: Mapping[str, Any]) -> RecoveryInstance:
    return RecoveryInstance(
        recovery_instance_id=item["recoveryInstanceID"],
        source_server_id=item.get("sourceServerID"),
        ec2_instance_id=item.get("ec2InstanceID"),
        job_id=item.get("jobID"),
        is_drill=item.get("isDrill"),
        ec2_state=item.get("ec2InstanceState"),
        tags=dict(item.get("tags") or {}),
        snapshot_at=_parse_time(item.get("pointInTimeSnapshotDateTime")),
    )


class BotoWorkload:
    """DRS and EC2 clients of one workload account in one region."""

    def __init__(self, drs: Any, ec2: Any) -> None:
        self._drs = drs
        self._ec2 = ec2

    # -- DRS reads

    def source_servers(self) -> list[SourceServer]:
        return [parse_source_server(i) for i in self._pages(self._drs, "describe_source_servers")]

    def source_servers_by_id(self, ids: Sequence[str]) -> list[SourceServer]:
        found: list[SourceServer] = []
        for chunk in chunks(list(ids), DRS_FILTER_IDS):
            items = self._pages(
                self._drs, "describe_source_servers", filters={"sourceServerIDs": list(chunk)}
            )
            found += [parse_source_server(i) for i in items]
        return found

    def jobs_since(self, since: datetime) -> list[Job]:
        items = self._pages(self._drs, "describe_jobs", filters={"fromDate": _iso(since)})
        return [parse_job(i) for i in items]

    def job(self, job_id: str) -> Job | None:
        items = self._pages(self._drs, "describe_jobs", filters={"jobIDs": [job_id]})
        return next((parse_job(i) for i in items if i.get("jobID") == job_id), None)

    def jobs(self, ids: Sequence[str]) -> list[Job]:
        wanted = sorted({i for i in ids if i})
        found: list[Job] = []
        for chunk in chunks(wanted, DRS_JOB_IDS):  # an empty filter would list every job
            items = self._pages(self._drs, "describe_jobs", filters={"jobIDs": list(chunk)})
            found += [parse_job(i) for i in items if i.get("jobID") in chunk]
        return found

    def recovery_instances(
        self, ids: Sequence[str], source_server_ids: Sequence[str]
    ) -> list[RecoveryInstance]:
        items: list[dict[str, Any]] = []
        for chunk in chunks(list(ids), DRS_FILTER_IDS):
            items += self._pages(
                self._drs,
                "describe_recovery_instances",
                filters={"recoveryInstanceIDs": list(chunk)},
            )
        # The job sometimes lacks recoveryInstanceID: look those up by source server.
        for chunk in chunks(list(source_server_ids), DRS_FILTER_IDS):
            items += self._pages(
                self._drs, "describe_recovery_instances", filters={"sourceServerIDs": list(chunk)}
            )
        return [parse_recovery_instance(i) for i in items]

    def all_recovery_instances(self) -> list[RecoveryInstance]:
        items = self._pages(self._drs, "describe_recovery_instances", filters={})
        return [parse_recovery_instance(i) for i in items]

    def launch_errors(self, job_id: str) -> dict[str, str]:
        errors: dict[str, str] = {}
        for item in self._pages(self._drs, "describe_job_log_items", jobID=job_id):
            data = item.get("eventData") or {}
            server, raw = data.get("sourceServerID"), data.get("rawError")
            if server and raw:
                errors[server] = str(raw)  # the last error logged for a server wins
        return errors

    def launch_configuration(self, source_server_id: str) -> LaunchConfig:
        config = _aws(lambda: self._drs.get_launch_configuration(sourceServerID=source_server_id))
        return LaunchConfig(
            source_server_id=source_server_id,
            template_id=config.get("ec2LaunchTemplateID"),
            launch_into=(config.get("launchIntoInstanceProperties") or {}).get(
                "launchIntoEC2InstanceID"
            ),
            copy_private_ip=bool(config.get("copyPrivateIp")),
            copy_tags=bool(config.get("copyTags")),
        )

    # -- DRS writes

    def launch_into(self, source_server_id: str, instance_id: str) -> None:
        self.set_launch(source_server_id, launch_into=instance_id, copy_private_ip=False)

    def set_launch(
        self, source_server_id: str, *, launch_into: str | None, copy_private_ip: bool
    ) -> None:
        """Launch-into target (None: none) and copyPrivateIp; copyTags always off."""
        target = {"launchIntoEC2InstanceID": launch_into} if launch_into else {}
        _aws(
            lambda: self._drs.update_launch_configuration(
                sourceServerID=source_server_id,
                launchIntoInstanceProperties=target,
                copyPrivateIp=copy_private_ip,
                copyTags=False,
            )
        )

    def start_recovery(
        self, source_server_ids: Sequence[str], tags: Mapping[str, str], drill: bool = False
    ) -> Job:
        response = _aws(
            lambda: self._drs.start_recovery(
                sourceServers=[{"sourceServerID": sid} for sid in source_server_ids],
                isDrill=drill,
                tags=dict(tags),
            )
        )
        return parse_job(response["job"])

    def terminate_recovery_instances(self, ids: Sequence[str]) -> Job:
        response = _aws(
            lambda: self._drs.terminate_recovery_instances(recoveryInstanceIDs=list(ids))
        )
        return parse_job(response["job"])

    def reverse_replication(self, recovery_instance_id: str) -> str:
        response = _aws(
            lambda: self._drs.reverse_replication(recoveryInstanceID=recovery_instance_id)
        )
        return str(response.get("reversedDirectionSourceServerArn") or "")

    # -- EC2

    def twins(self, customer: str, environment: str, names: Sequence[str]) -> list[Instance]:
        found: list[Instance] = []
        for chunk in chunks(list(names), EC2_FILTER_VALUES):
            found += self._instances(
                [
                    {"Name": f"tag:{T.CUSTOMER}", "Values": [customer]},
                    {"Name": f"tag:{T.ENVIRONMENT}", "Values": [environment]},
                    {"Name": f"tag:{T.NAME}", "Values": list(chunk)},
                    {"Name": "instance-state-name", "Values": LIVE_STATES},
                ]
            )
        return found

    def instances(self, ids: Sequence[str]) -> list[Instance]:
        found: list[Instance] = []
        for chunk in chunks([i for i in ids if i], EC2_FILTER_VALUES):
            found += self._instances([{"Name": "instance-id", "Values": list(chunk)}])
        return found

    def tagged_instances(self, key: str, value: str) -> list[Instance]:
        return self._instances(
            [
                {"Name": f"tag:{key}", "Values": [value]},
                {"Name": "instance-state-name", "Values": LIVE_STATES},
            ]
        )

    def tag_instances(self, ids: Sequence[str], tags: Mapping[str, str]) -> None:
        self._tag(ids, tags)

    def stop_instances(self, ids: Sequence[str]) -> None:
        for chunk in chunks(list(ids), EC2_FILTER_VALUES):
            _aws(functools.partial(self._ec2.stop_instances, InstanceIds=list(chunk)))

    def terminate_instances(self, ids: Sequence[str]) -> None:
        for chunk in chunks(list(ids), EC2_FILTER_VALUES):
            _aws(functools.partial(self._ec2.terminate_instances, InstanceIds=list(chunk)))

    def bubble_network(self, name: str) -> R.Bubble:
        """The bubble VPC `name`, its subnets and the drill security group; `problem` says why
        it cannot be used (missing, ambiguous, or a route out of it)."""
        vpcs = self._pages(
            self._ec2, "describe_vpcs", Filters=[{"Name": f"tag:{T.NAME}", "Values": [name]}]
        )
        if len(vpcs) != 1:
            why = "no VPC" if not vpcs else f"{len(vpcs)} VPCs"
            return R.Bubble(None, problem=R.NO_BUBBLE_NETWORK, reason=f"{why} named {name}")
        vpc_id = str(vpcs[0]["VpcId"])
        by_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
        subnets = sorted(
            (
                R.Subnet(s["SubnetId"], s["CidrBlock"])
                for s in self._pages(self._ec2, "describe_subnets", Filters=by_vpc)
            ),
            key=lambda s: s.subnet_id,
        )
        if not subnets:
            return R.Bubble(vpc_id, problem=R.NO_BUBBLE_NETWORK, reason=f"{name} has no subnet")
        for table in self._pages(self._ec2, "describe_route_tables", Filters=by_vpc):
            for route in table.get("Routes", []):
                gateway = str(route.get("GatewayId") or "")
                out = any(route.get(k) for k in ROUTE_OUT_KEYS)
                if gateway.startswith(("igw-", "vgw-")) or out:
                    target = gateway or next(str(route[k]) for k in ROUTE_OUT_KEYS if route.get(k))
                    return R.Bubble(
                        vpc_id,
                        problem=R.BUBBLE_NOT_ISOLATED,
                        reason=f"{name} routes {route.get('DestinationCidrBlock', '?')} to "
                        f"{target}: a drill never runs in a network that reaches out",
                    )
        groups = self._pages(self._ec2, "describe_security_groups", Filters=by_vpc)
        drill = [
            g["GroupId"]
            for g in groups
            if T.tag_list_to_dict(g.get("Tags")).get(T.BUBBLE_ROLE) == T.BUBBLE_ROLE_DRILL
        ]
        default = [g["GroupId"] for g in groups if g.get("GroupName") == "default"]
        return R.Bubble(vpc_id, tuple(subnets), tuple(sorted(drill) or default))

    def templates(self, ids: Sequence[str]) -> list[Template]:
        wanted = sorted({i for i in ids if i})
        if not wanted:
            return []
        found: list[Template] = []
        for chunk in chunks(wanted, EC2_FILTER_VALUES):
            items = self._pages(
                self._ec2, "describe_launch_templates", LaunchTemplateIds=list(chunk)
            )
            tags = self._resource_tags(chunk)
            found += [
                Template(
                    template_id=i["LaunchTemplateId"],
                    default_version=int(i.get("DefaultVersionNumber") or 1),
                    tags=tags.get(i["LaunchTemplateId"], {}),
                )
                for i in items
            ]
        return found

    def tagged_templates(self, key: str) -> list[Template]:
        items = self._pages(
            self._ec2,
            "describe_tags",
            Filters=[
                {"Name": "resource-type", "Values": ["launch-template"]},
                {"Name": "key", "Values": [key]},
            ],
            key="Tags",
        )
        return self.templates([i["ResourceId"] for i in items])

    def bubble_template_version(
        self, template_id: str, data: Mapping[str, Any], description: str
    ) -> int:
        response = _aws(
            lambda: self._ec2.create_launch_template_version(
                LaunchTemplateId=template_id,
                SourceVersion="$Default",
                VersionDescription=description[:255],
                LaunchTemplateData=dict(data),
            )
        )
        return int(response["LaunchTemplateVersion"]["VersionNumber"])

    def set_default_template_version(self, template_id: str, version: int) -> None:
        _aws(
            lambda: self._ec2.modify_launch_template(
                LaunchTemplateId=template_id, DefaultVersion=str(version)
            )
        )

    def tag_templates(self, ids: Sequence[str], tags: Mapping[str, str]) -> None:
        self._tag(ids, tags)

    def untag_templates(self, ids: Sequence[str], keys: Sequence[str]) -> None:
        for chunk in chunks(list(ids), EC2_FILTER_VALUES):
            _aws(
                functools.partial(
                    self._ec2.delete_tags, Resources=list(chunk), Tags=[{"Key": k} for k in keys]
                )
            )

    # -- helpers

    def _tag(self, ids: Sequence[str], tags: Mapping[str, str]) -> None:
        for chunk in chunks(list(ids), EC2_FILTER_VALUES):
            _aws(
                functools.partial(
                    self._ec2.create_tags,
                    Resources=list(chunk),
                    Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
                )
            )

    def _resource_tags(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for item in self._pages(
            self._ec2,
            "describe_tags",
            Filters=[{"Name": "resource-id", "Values": list(ids)}],
            key="Tags",
        ):
            out.setdefault(item["ResourceId"], {})[item["Key"]] = item.get("Value", "")
        return out

    def _instances(self, filters: list[dict[str, Any]]) -> list[Instance]:
        found: list[Instance] = []
        for reservation in self._pages(self._ec2, "describe_instances", Filters=filters):
            found += [parse_instance(i) for i in reservation.get("Instances", [])]
        return found

    _KEYS = {
        "describe_instances": "Reservations",
        "describe_vpcs": "Vpcs",
        "describe_subnets": "Subnets",
        "describe_route_tables": "RouteTables",
        "describe_security_groups": "SecurityGroups",
        "describe_launch_templates": "LaunchTemplates",
    }

    @classmethod
    def _pages(
        cls, client: Any, operation: str, key: str | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        key = key or cls._KEYS.get(operation, "items")

        def collect() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for page in client.get_paginator(operation).paginate(**kwargs):
                out += page.get(key, [])
            return out

        return _aws(collect)


class BotoWorkloads:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def get(self, entry: CustomerEntry, region: str) -> BotoWorkload:
        access = AccountAccess(entry.account, entry.role_name, entry.external_id)
        return BotoWorkload(
            self._clients.workload_client("drs", region, access),
            self._clients.workload_client("ec2", region, access),
        )


class ServiceQuotaLimits:
    """The DRS quotas of an account + region from Service Quotas (applied values, else AWS
    defaults), cached; the documented defaults when Service Quotas does not answer."""

    def __init__(
        self,
        clients: AwsClients,
        ttl_seconds: float,
        log: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = clients
        self._ttl = ttl_seconds
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[DrsLimits, float]] = {}

    def limits(self, entry: CustomerEntry, region: str) -> DrsLimits:
        key = (entry.account, region)
        with self._lock:
            cached = self._cache.get(key)
            if cached and self._clock() - cached[1] < self._ttl:
                return cached[0]
        limits = self._read(entry, region)
        with self._lock:
            self._cache[key] = (limits, self._clock())
        return limits

    def _read(self, entry: CustomerEntry, region: str) -> DrsLimits:
        access = AccountAccess(entry.account, entry.role_name, entry.external_id)
        client = self._clients.workload_client("service-quotas", region, access)
        try:
            quotas = _service_quotas(client, "list_aws_default_service_quotas")
            quotas += _service_quotas(client, "list_service_quotas")  # applied values win
        except AwsError as error:
            self._log.warning(
                "DRS quotas not readable: documented defaults",
                extra={"account": entry.account, "region": region, "error": str(error)},
            )
            return DEFAULT_LIMITS
        return limits_from_quotas(quotas)


def _service_quotas(client: Any, operation: str) -> list[dict[str, Any]]:
    def collect() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in client.get_paginator(operation).paginate(ServiceCode=DRS_SERVICE_CODE):
            out += page.get("Quotas", [])
        return out

    return _aws(collect)


def quota_kind(name: str) -> str | None:
    """Which DRS quota a Service Quotas entry is, by its name (codes are AWS's L-... ids)."""
    lowered = name.lower()
    if "job" not in lowered:
        return None
    if "concurrent" in lowered:
        return "concurrent_jobs"
    if "single" in lowered:
        return "servers_per_job"
    if "all" in lowered and "source server" in lowered:
        return "servers_in_active_jobs"
    return None


def limits_from_quotas(quotas: Sequence[Mapping[str, Any]]) -> DrsLimits:
    values: dict[str, int] = DEFAULT_LIMITS.model_dump(exclude={"source"})
    found = False
    for quota in quotas:  # later entries (applied values) override earlier ones (defaults)
        kind = quota_kind(str(quota.get("QuotaName", "")))
        value = quota.get("Value")
        if kind and isinstance(value, int | float) and value >= 1:
            values[kind] = int(value)
            found = True
    return DrsLimits(**values, source="service-quotas" if found else "defaults")


# --- orchestration account: registry, ledger, records, budget, queue, bus -------------------------


class CachedRegistry:
    """The SSM customer registry, read whole and kept for a few minutes."""

    def __init__(self, ssm: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._ssm = ssm
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: list[CustomerEntry] = []
        self._loaded_at: float | None = None

    def customer(self, name: str) -> CustomerEntry | None:
        return self._find(lambda e: e.name == name)

    def by_account(self, account: str) -> CustomerEntry | None:
        return self._find(lambda e: e.account == account)

    def all(self) -> list[CustomerEntry]:
        with self._lock:
            now = self._clock()
            if self._loaded_at is None or now - self._loaded_at > REGISTRY_MISS_REFRESH_SECONDS:
                self._load(now)
            return list(self._entries)

    def _find(self, match: Callable[[CustomerEntry], bool]) -> CustomerEntry | None:
        with self._lock:
            now = self._clock()
            if self._loaded_at is None or now - self._loaded_at > REGISTRY_TTL_SECONDS:
                self._load(now)
            found = next((e for e in self._entries if match(e)), None)
            stale = (
                self._loaded_at is not None
                and now - self._loaded_at > REGISTRY_MISS_REFRESH_SECONDS
            )
            if found is None and stale:
                self._load(now)  # a customer registered a moment ago
                found = next((e for e in self._entries if match(e)), None)
            return found

    def _load(self, now: float) -> None:
        entries: list[CustomerEntry] = []
        paginator = self._ssm.get_paginator("get_parameters_by_path")
        for page in paginator.paginate(Path=PARAMETER_PREFIX.rstrip("/"), Recursive=False):
            for parameter in page.get("Parameters", []):
                try:
                    entries.append(CustomerEntry.model_validate_json(parameter["Value"]))
                except ValidationError:
                    continue  # an invalid entry is reported by discovery, not guessed here
        self._entries = sorted(entries, key=lambda e: e.name)
        self._loaded_at = now


def _conditional(call: Callable[[], Any]) -> bool:
    """True when a conditional write happened, False when its condition did not hold."""
    try:
        call()
        return True
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
            return False
        raise


class DynamoLedger:
    """Per-job items in the operations table: pk DRSJOB#<job>, sk LAUNCH | REPORTED | RESTORED."""

    def __init__(self, dynamodb: Any, table: str, clock: Callable[[], float] = time.time) -> None:
        self._db = dynamodb
        self._table = table
        self._clock = clock

    @staticmethod
    def pk(job_id: str) -> str:
        return f"DRSJOB#{job_id}"

    def load(self, job_id: str) -> JobLedger:
        response = self._db.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": self.pk(job_id)}},
            ConsistentRead=True,
        )
        reported: frozenset[str] = frozenset()
        launches: dict[str, LaunchContext] = {}
        results: dict[str, RecordedResult] = {}
        restored = False
        for item in response.get("Items", []):
            if item["sk"]["S"] == "REPORTED":
                reported = frozenset(item.get("servers", {}).get("SS", []))
                results = {
                    name.removeprefix(RESULT_PREFIX): RecordedResult.model_validate_json(v["S"])
                    for name, v in item.items()
                    if name.startswith(RESULT_PREFIX)
                }
            elif item["sk"]["S"] == "LAUNCH":
                raw = json.loads(item["launches"]["S"])
                launches = {k: LaunchContext.model_validate(v) for k, v in raw.items()}
            elif item["sk"]["S"] == "RESTORED":
                restored = True
        return JobLedger(reported=reported, launches=launches, restored=restored, results=results)

    def record_launch(self, job_id: str, launches: Mapping[str, LaunchContext]) -> None:
        body = json.dumps(
            {k: v.model_dump(mode="json", exclude_none=True) for k, v in launches.items()},
            separators=(",", ":"),
        )
        self._db.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": self.pk(job_id)},
                "sk": {"S": "LAUNCH"},
                "launches": {"S": body},
                "expires_at": {"N": str(int(self._clock()) + LEDGER_TTL_SECONDS)},
            },
        )

    def mark_reported(
        self,
        job_id: str,
        source_server_ids: Sequence[str],
        results: Mapping[str, RecordedResult] | None = None,
    ) -> None:
        """One UpdateItem: the servers join the reported set, each result is kept beside it as
        `result#<source server>` (a job's results stay far below the 400 KB item limit)."""
        if not source_server_ids:
            return
        names: dict[str, str] = {}
        values: dict[str, Any] = {
            ":s": {"SS": sorted(set(source_server_ids))},
            ":t": {"N": str(int(self._clock()) + LEDGER_TTL_SECONDS)},
        }
        sets = ["expires_at = :t"]
        for index, (sid, result) in enumerate(sorted((results or {}).items())):
            names[f"#r{index}"] = f"{RESULT_PREFIX}{sid}"
            values[f":r{index}"] = {"S": result.model_dump_json()}
            sets.append(f"#r{index} = :r{index}")
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": self.pk(job_id)}, "sk": {"S": "REPORTED"}},
            "UpdateExpression": f"ADD servers :s SET {', '.join(sets)}",
            "ExpressionAttributeValues": values,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        self._db.update_item(**kwargs)

    def claim_relaunch(self, job_id: str, source_server_ids: Sequence[str]) -> list[str]:
        claimed = []
        for sid in source_server_ids:
            item = {
                "pk": {"S": self.pk(job_id)},
                "sk": {"S": f"RELAUNCH#{sid}"},
                "expires_at": {"N": str(int(self._clock()) + LEDGER_TTL_SECONDS)},
            }
            if _conditional(
                functools.partial(
                    self._db.put_item,
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk)",
                )
            ):
                claimed.append(sid)
        return claimed

    def mark_restored(self, job_id: str) -> bool:
        item = {
            "pk": {"S": self.pk(job_id)},
            "sk": {"S": "RESTORED"},
            "expires_at": {"N": str(int(self._clock()) + LEDGER_TTL_SECONDS)},
        }
        return _conditional(
            lambda: self._db.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        )


class DynamoOperations:
    """The service's records of an operation: pk DRSOP#<operation id> (see `records.py`)."""

    def __init__(self, dynamodb: Any, table: str, clock: Callable[[], float] = time.time) -> None:
        self._db = dynamodb
        self._table = table
        self._clock = clock

    @staticmethod
    def pk(operation_id: str) -> str:
        return f"DRSOP#{operation_id}"

    def load(self, operation_id: str) -> OperationRecords:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": self.pk(operation_id)}},
            "ConsistentRead": True,
        }
        while True:
            response = self._db.query(**kwargs)
            items += response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        fields: dict[str, Any] = {"jobs": []}
        for item in items:
            sk, body = item["sk"]["S"], item.get("body", {}).get("S", "{}")
            if sk == "OPTIONS":
                fields["options"] = OperationOptions.model_validate_json(body)
            elif sk.startswith("JOB#"):
                fields["jobs"].append(OpJob.model_validate_json(body))
            elif sk == "ENDED":
                data = json.loads(body)
                fields["ended"], fields["ended_at"] = data.get("state"), data.get("at")
            elif sk == "TEARDOWN":
                fields["teardown"] = TeardownRecord.model_validate_json(body)
            elif sk == "REPROTECT":
                fields["reprotect"] = ReprotectRecord.model_validate_json(body)
            elif sk.startswith("RESULT#"):
                fields.setdefault("results", []).append(RecordedResult.model_validate_json(body))
        fields["jobs"].sort(key=lambda j: j.created_at)
        return OperationRecords.model_validate(fields)

    def _put(self, operation_id: str, sk: str, body: str, new: bool) -> bool:
        item = {
            "pk": {"S": self.pk(operation_id)},
            "sk": {"S": sk},
            "body": {"S": body},
            "expires_at": {"N": str(int(self._clock()) + RECORDS_TTL_SECONDS)},
        }
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": item}
        if new:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
        return _conditional(lambda: self._db.put_item(**kwargs))

    def save_options(self, options: OperationOptions) -> None:
        self._put(options.operation_id, "OPTIONS", options.model_dump_json(), new=True)

    def record_job(self, operation_id: str, job: OpJob) -> None:
        self._put(operation_id, f"JOB#{job.job_id}", job.model_dump_json(), new=False)

    def mark_ended(self, operation_id: str, state: str, at: datetime) -> bool:
        body = json.dumps({"state": state, "at": at.isoformat()})
        return self._put(operation_id, "ENDED", body, new=True)

    def record_results(self, operation_id: str, results: Sequence[RecordedResult]) -> None:
        """BatchWriteItem, 25 a call; unprocessed items are written again."""
        expires = {"N": str(int(self._clock()) + RECORDS_TTL_SECONDS)}
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": {"S": self.pk(operation_id)},
                        "sk": {"S": f"RESULT#{r.wave:04d}#{r.attempt}#{r.resource_id}"},
                        "body": {"S": r.model_dump_json()},
                        "expires_at": expires,
                    }
                }
            }
            for r in {(r.wave, r.attempt, r.resource_id): r for r in results}.values()
        ]
        for chunk in chunks(requests, DYNAMODB_BATCH):
            pending: dict[str, Any] = {self._table: list(chunk)}
            for _ in range(BATCH_WRITE_ATTEMPTS):
                response = self._db.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
            else:
                raise RuntimeError(f"results of {operation_id} not kept: DynamoDB kept refusing")

    def put_teardown(self, record: TeardownRecord, *, new: bool = False) -> bool:
        return self._put(record.operation_id, "TEARDOWN", record.model_dump_json(), new)

    def put_reprotect(self, record: ReprotectRecord, *, new: bool = False) -> bool:
        return self._put(record.operation_id, "REPROTECT", record.model_dump_json(), new)


class DynamoBudget:
    """The DRS quota budget of an account + region: pk DRSQUOTA#<account>#<region>.

    BUDGET counts what the orchestration holds (jobs, servers in them); each HOLD#<id> is one
    job's share, added and removed in the same transaction as the counters, so a duplicate
    reservation or release never counts twice. WAIT#<batch> items are the FIFO queue.
    """

    def __init__(self, dynamodb: Any, table: str, clock: Callable[[], float] = time.time) -> None:
        self._db = dynamodb
        self._table = table
        self._clock = clock

    @staticmethod
    def pk(account: str, region: str) -> str:
        return f"DRSQUOTA#{account}#{region}"

    def _key(self, account: str, region: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": self.pk(account, region)}, "sk": {"S": sk}}

    def _query(self, account: str, region: str, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {
                ":pk": {"S": self.pk(account, region)},
                ":p": {"S": prefix},
            },
            "ConsistentRead": True,
        }
        while True:
            response = self._db.query(**kwargs)
            items += response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- the queue

    def enqueue(self, batch: LaunchBatch) -> bool:
        item = {
            **self._key(batch.account, batch.region, f"WAIT#{batch.batch_id}"),
            "body": {"S": batch.model_dump_json()},
            "expires_at": {"N": str(int(self._clock()) + HOLD_TTL_SECONDS)},
        }
        return _conditional(
            lambda: self._db.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(sk)"
            )
        )

    def waiting(self, account: str, region: str) -> list[LaunchBatch]:
        batches = [
            LaunchBatch.model_validate_json(i["body"]["S"])
            for i in self._query(account, region, "WAIT#")
        ]
        return sorted(batches, key=lambda b: (b.enqueued_at, b.batch_id))

    def claim(self, batch: LaunchBatch, now: datetime) -> bool:
        return _conditional(
            lambda: self._db.update_item(
                TableName=self._table,
                Key=self._key(batch.account, batch.region, f"WAIT#{batch.batch_id}"),
                UpdateExpression="SET claimed_at = :now",
                ConditionExpression="attribute_exists(sk) AND "
                "(attribute_not_exists(claimed_at) OR claimed_at < :stale)",
                ExpressionAttributeValues={
                    ":now": {"N": str(now.timestamp())},
                    ":stale": {"N": str((now - CLAIM_LEASE).timestamp())},
                },
            )
        )

    def unclaim(self, batch: LaunchBatch) -> None:
        _conditional(
            lambda: self._db.update_item(
                TableName=self._table,
                Key=self._key(batch.account, batch.region, f"WAIT#{batch.batch_id}"),
                UpdateExpression="REMOVE claimed_at",
                ConditionExpression="attribute_exists(sk)",
            )
        )

    def done(self, batch: LaunchBatch) -> None:
        self._db.delete_item(
            TableName=self._table,
            Key=self._key(batch.account, batch.region, f"WAIT#{batch.batch_id}"),
        )

    # -- holds

    def reserve(self, account: str, region: str, hold: Hold, limits: DrsLimits) -> bool:
        room = limits.servers_in_active_jobs - hold.servers
        if room < 0:
            return False
        hold_item = {
            **self._key(account, region, f"HOLD#{hold.hold_id}"),
            "servers": {"N": str(hold.servers)},
            "created_at": {"S": hold.created_at.isoformat()},
            "expires_at": {"N": str(int(self._clock()) + HOLD_TTL_SECONDS)},
        }
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": self._key(account, region, "BUDGET"),
                            "UpdateExpression": "SET jobs = if_not_exists(jobs, :zero) + :one, "
                            "servers = if_not_exists(servers, :zero) + :n",
                            "ConditionExpression": "(attribute_not_exists(jobs) OR jobs < :max) "
                            "AND (attribute_not_exists(servers) OR servers <= :room)",
                            "ExpressionAttributeValues": {
                                ":zero": {"N": "0"},
                                ":one": {"N": "1"},
                                ":n": {"N": str(hold.servers)},
                                ":max": {"N": str(limits.concurrent_jobs)},
                                ":room": {"N": str(room)},
                            },
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": hold_item,
                            "ConditionExpression": "attribute_not_exists(sk)",
                        }
                    },
                ]
            )
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
        # Either the budget is full, or this hold exists already (a redelivery): ask the hold.
        existing = self._db.get_item(
            TableName=self._table,
            Key=self._key(account, region, f"HOLD#{hold.hold_id}"),
            ConsistentRead=True,
        )
        return "Item" in existing

    def attach(self, account: str, region: str, hold_id: str, job_id: str) -> None:
        _conditional(
            lambda: self._db.update_item(
                TableName=self._table,
                Key=self._key(account, region, f"HOLD#{hold_id}"),
                UpdateExpression="SET job_id = :j",
                ConditionExpression="attribute_exists(sk)",
                ExpressionAttributeValues={":j": {"S": job_id}},
            )
        )

    def release(self, account: str, region: str, hold_id: str, servers: int | None = None) -> bool:
        key = self._key(account, region, f"HOLD#{hold_id}")
        if servers is None:
            found = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True)
            if "Item" not in found:
                return False
            servers = int(found["Item"]["servers"]["N"])
        count = str(servers)
        return _conditional(
            lambda: self._db.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": key,
                            "ConditionExpression": "attribute_exists(sk) AND servers = :n",
                            "ExpressionAttributeValues": {":n": {"N": count}},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": self._key(account, region, "BUDGET"),
                            "UpdateExpression": "SET jobs = jobs - :one, servers = servers - :n",
                            "ExpressionAttributeValues": {
                                ":one": {"N": "1"},
                                ":n": {"N": count},
                            },
                        }
                    },
                ]
            )
        )

    def holds(self, account: str, region: str) -> list[Hold]:
        return [
            Hold(
                hold_id=i["sk"]["S"].removeprefix("HOLD#"),
                servers=int(i["servers"]["N"]),
                created_at=datetime.fromisoformat(i["created_at"]["S"]),
                job_id=i.get("job_id", {}).get("S"),
            )
            for i in self._query(account, region, "HOLD#")
        ]

    def usage(self, account: str, region: str) -> tuple[int, int]:
        """(jobs, servers in them) the orchestration holds now."""
        item = self._db.get_item(
            TableName=self._table, Key=self._key(account, region, "BUDGET"), ConsistentRead=True
        ).get("Item", {})
        return int(item.get("jobs", {}).get("N", 0)), int(item.get("servers", {}).get("N", 0))


class SqsChecks:
    """Delayed messages on the service's own queue (SendMessageBatch, 10 per call)."""

    def __init__(self, sqs: Any, queue_name: str) -> None:
        self._sqs = sqs
        self._queue_name = queue_name
        self._url: str | None = None

    def schedule(self, messages: Sequence[tuple[BaseModel, int]]) -> None:
        for batch in chunks(list(messages), SQS_BATCH):
            entries = [
                {
                    "Id": str(index),
                    "MessageBody": message.model_dump_json(),
                    "DelaySeconds": min(max(delay, 0), 900),
                }
                for index, (message, delay) in enumerate(batch)
            ]
            response = self._sqs.send_message_batch(QueueUrl=self._queue_url(), Entries=entries)
            if response.get("Failed"):
                failed = ", ".join(
                    f"{f.get('Code')}: {f.get('Message', '')}" for f in response["Failed"]
                )
                raise RuntimeError(f"messages not scheduled: {failed}")

    def _queue_url(self) -> str:
        if self._url is None:
            self._url = str(self._sqs.get_queue_url(QueueName=self._queue_name)["QueueUrl"])
        return self._url


class EventResults:
    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    def publish(self, details: Sequence[Detail]) -> None:
        if details:
            self._publisher.publish(Source.DRS, details)


# --- assembly -------------------------------------------------------------------------------------


@dataclass
class DrsService:
    """What the handler calls: the domain, with parts made idempotent."""

    domain: DrsRecovery
    drills: Drills
    protection: Reprotection
    lifecycle: Lifecycle
    recover_part: Callable[[WaveStarted], dict[str, Any]]
    idempotency: IdempotencyConfig

    def reconcile_job(
        self, job_id: str, account: str, region: str, attempt: int | None = None
    ) -> None:
        self.domain.reconcile_job(job_id, account, region, attempt)

    def begin_batch(self, context: Any) -> None:
        self.domain.begin_batch()
        if hasattr(context, "get_remaining_time_in_millis"):
            # An in-progress part that crashed becomes retryable when the invocation times out.
            self.idempotency.register_lambda_context(context)

    @classmethod
    def build(cls, log: Any, settings: Settings | None = None) -> DrsService:
        settings = settings or Settings()
        clients = AwsClients(settings)
        dynamodb = clients.client("dynamodb")
        common: dict[str, Any] = {
            "registry": CachedRegistry(clients.client("ssm")),
            "workloads": BotoWorkloads(clients),
            "results": EventResults(EventPublisher(clients.client("events"), settings.bus_name)),
            "checks": SqsChecks(clients.client("sqs"), SERVICE.queue_name()),
            "log": log,
        }
        ledger = DynamoLedger(dynamodb, settings.operations_table)
        operations = DynamoOperations(dynamodb, settings.operations_table)
        budget = DynamoBudget(dynamodb, settings.operations_table)
        quotas = ServiceQuotaLimits(clients, settings.drs_quota_cache_seconds, log)
        domain = DrsRecovery(
            **common,
            ledger=ledger,
            budget=budget,
            operations=operations,
            quotas=quotas,
            batch_size=settings.drs_batch_size,
            poll_backoff=settings.drs_poll_backoff,
            progress_backoff=settings.drs_progress_backoff,
            launch_retries=settings.drs_launch_retries,
            relaunch_backoff=settings.drs_relaunch_backoff,
            primary_workloads=BotoWorkloads(
                clients.with_settings(
                    settings.model_copy(
                        update={"max_attempts": settings.primary_region_retries + 1}
                    )
                )
            ),
        )
        drills = Drills(
            **common,
            budget=budget,
            operations=operations,
            quotas=quotas,
            backoff=settings.drs_progress_backoff,
            max_age=timedelta(seconds=settings.drs_drill_max_age_seconds),
        )
        protection = Reprotection(
            **common, ledger=ledger, operations=operations, backoff=settings.drs_progress_backoff
        )
        lifecycle = Lifecycle(
            recovery=domain, drills=drills, protection=protection, operations=operations, log=log
        )
        persistence = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=dynamodb
        )
        recover, config = idempotent_parts(
            domain.recover_part, persistence, settings, key_prefix="drs-part"
        )
        return cls(
            domain=domain,
            drills=drills,
            protection=protection,
            lifecycle=lifecycle,
            recover_part=recover,
            idempotency=config,
        )
