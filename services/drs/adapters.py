"""DRS adapters: the only AWS code of the service, and the assembly of `DrsService`.

Every AWS error reaching the domain is an `AwsError` carrying the AWS error code; retries are
botocore's (retry mode from `Settings`, see `drcore.aws`), never sleeps of our own.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from drcore import tags as T
from drcore.aws import AccountAccess, AwsClients
from drcore.publisher import EventPublisher
from drcore.registry import PARAMETER_PREFIX, CustomerEntry
from drcore.settings import Settings
from events.schemas import Detail, Source, WaveStarted
from services.drs.subscriptions import SERVICE

from .domain import (
    AwsError,
    DrsRecovery,
    Instance,
    Job,
    JobCheck,
    JobLedger,
    JobServer,
    LaunchContext,
    RecoveryInstance,
    SourceServer,
    chunks,
    parse_duration,
)

EC2_FILTER_VALUES = 200
DRS_FILTER_IDS = 200
SQS_BATCH = 10
REGISTRY_TTL_SECONDS = 300
REGISTRY_MISS_REFRESH_SECONDS = 1  # a customer registered a moment ago is found at once
LEDGER_TTL_SECONDS = 30 * 24 * 3600
# Instances that can still be launched into (terminated ones are gone).
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
MESSAGE_CHARS = 500

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
    return SourceServer(
        source_server_id=item["sourceServerID"],
        aws_instance_id=hints.get("awsInstanceID"),
        tags=dict(item.get("tags") or {}),
        replication_state=replication.get("dataReplicationState"),
        lag_seconds=parse_duration(replication.get("lagDuration")),
        primary_ip=_primary_ip(props.get("networkInterfaces") or []),
        replication_direction=item.get("replicationDirection"),
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
    return Instance(
        instance_id=item["InstanceId"],
        tags=T.tag_list_to_dict(item.get("Tags")),
        private_ip=item.get("PrivateIpAddress"),
        state=(item.get("State") or {}).get("Name"),
    )


class BotoWorkload:
    """DRS and EC2 clients of one workload account in one DR region."""

    def __init__(self, drs: Any, ec2: Any) -> None:
        self._drs = drs
        self._ec2 = ec2

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

    def launch_into(self, source_server_id: str, instance_id: str) -> None:
        _aws(
            lambda: self._drs.update_launch_configuration(
                sourceServerID=source_server_id,
                launchIntoInstanceProperties={"launchIntoEC2InstanceID": instance_id},
                copyPrivateIp=False,
                copyTags=False,
            )
        )

    def start_recovery(self, source_server_ids: Sequence[str], tags: Mapping[str, str]) -> Job:
        response = _aws(
            lambda: self._drs.start_recovery(
                sourceServers=[{"sourceServerID": sid} for sid in source_server_ids],
                isDrill=False,
                tags=dict(tags),
            )
        )
        return parse_job(response["job"])

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
        return [
            RecoveryInstance(
                recovery_instance_id=i["recoveryInstanceID"],
                source_server_id=i.get("sourceServerID"),
                ec2_instance_id=i.get("ec2InstanceID"),
                job_id=i.get("jobID"),
                is_drill=i.get("isDrill"),
            )
            for i in items
        ]

    def launch_errors(self, job_id: str) -> dict[str, str]:
        errors: dict[str, str] = {}
        for item in self._pages(self._drs, "describe_job_log_items", jobID=job_id):
            data = item.get("eventData") or {}
            server, raw = data.get("sourceServerID"), data.get("rawError")
            if server and raw:
                errors[server] = str(raw)  # the last error logged for a server wins
        return errors

    def _instances(self, filters: list[dict[str, Any]]) -> list[Instance]:
        found: list[Instance] = []
        for reservation in self._pages(self._ec2, "describe_instances", Filters=filters):
            found += [parse_instance(i) for i in reservation.get("Instances", [])]
        return found

    @staticmethod
    def _pages(client: Any, operation: str, **kwargs: Any) -> list[dict[str, Any]]:
        key = "Reservations" if operation == "describe_instances" else "items"

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


# --- orchestration account: registry, ledger, queue, bus ------------------------------------------


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


class DynamoLedger:
    """Per-job items in the operations table: pk DRSJOB#<job>, sk LAUNCH | REPORTED."""

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
        for item in response.get("Items", []):
            if item["sk"]["S"] == "REPORTED":
                reported = frozenset(item.get("servers", {}).get("SS", []))
            elif item["sk"]["S"] == "LAUNCH":
                raw = json.loads(item["launches"]["S"])
                launches = {k: LaunchContext.model_validate(v) for k, v in raw.items()}
        return JobLedger(reported=reported, launches=launches)

    def record_launch(self, job_id: str, launches: Mapping[str, LaunchContext]) -> None:
        body = json.dumps(
            {k: v.model_dump(exclude_none=True) for k, v in launches.items()},
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

    def mark_reported(self, job_id: str, source_server_ids: Sequence[str]) -> None:
        if not source_server_ids:
            return
        self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": self.pk(job_id)}, "sk": {"S": "REPORTED"}},
            UpdateExpression="ADD servers :s SET expires_at = :t",
            ExpressionAttributeValues={
                ":s": {"SS": sorted(set(source_server_ids))},
                ":t": {"N": str(int(self._clock()) + LEDGER_TTL_SECONDS)},
            },
        )


class SqsChecks:
    """Delayed job checks on the service's own queue (SendMessageBatch, 10 per call)."""

    def __init__(self, sqs: Any, queue_name: str) -> None:
        self._sqs = sqs
        self._queue_name = queue_name
        self._url: str | None = None

    def schedule(self, checks: Sequence[tuple[JobCheck, int]]) -> None:
        for batch in chunks(list(checks), SQS_BATCH):
            entries = [
                {
                    "Id": str(index),
                    "MessageBody": check.model_dump_json(),
                    "DelaySeconds": min(max(delay, 0), 900),
                }
                for index, (check, delay) in enumerate(batch)
            ]
            response = self._sqs.send_message_batch(QueueUrl=self._queue_url(), Entries=entries)
            if response.get("Failed"):
                failed = ", ".join(
                    f"{f.get('Code')}: {f.get('Message', '')}" for f in response["Failed"]
                )
                raise RuntimeError(f"job checks not scheduled: {failed}")

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


def idempotent_parts(
    recover: Callable[[WaveStarted], dict[str, Any]],
    persistence: DynamoDBPersistenceLayer,
    settings: Settings,
) -> tuple[Callable[[WaveStarted], dict[str, Any]], IdempotencyConfig]:
    """`recover` made idempotent on operation, wave, strategy, part and attempt."""
    config = IdempotencyConfig(
        event_key_jmespath="[operation_id, to_string(wave), strategy, to_string(part), "
        "to_string(attempt)]",
        expires_after_seconds=settings.idempotency_ttl_seconds,
        raise_on_no_idempotency_key=True,
    )

    @idempotent_function(
        data_keyword_argument="part",
        persistence_store=persistence,
        config=config,
        key_prefix="drs-part",
    )
    def recover_part(part: WaveStarted) -> dict[str, Any]:
        return recover(part)

    return (lambda part: recover_part(part=part)), config


@dataclass
class DrsService:
    """What the handler calls: the domain, with parts made idempotent."""

    domain: DrsRecovery
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
        domain = DrsRecovery(
            registry=CachedRegistry(clients.client("ssm")),
            workloads=BotoWorkloads(clients),
            results=EventResults(EventPublisher(clients.client("events"), settings.bus_name)),
            checks=SqsChecks(clients.client("sqs"), SERVICE.queue_name()),
            ledger=DynamoLedger(clients.client("dynamodb"), settings.operations_table),
            log=log,
            batch_size=settings.drs_batch_size,
            poll_backoff=settings.drs_poll_backoff,
        )
        persistence = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=clients.client("dynamodb")
        )
        recover, config = idempotent_parts(domain.recover_part, persistence, settings)
        return cls(domain=domain, recover_part=recover, idempotency=config)
