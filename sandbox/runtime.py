"""The local runtime: the same bus, archive, rules, queues and tables as the CDK app, built from
the same declarations, and each service's handler run on its queue the way Lambda runs it.

What Lambda does and this runtime reproduces: SQS batches of up to `batch_size` records (waiting
up to `batching_window_seconds` to fill one), a Lambda-like context, partial batch responses
(only the records named in `batchItemFailures` stay on the queue), redelivery after the
visibility timeout, and the dead-letter queue after `max_receive_count` deliveries (SQS's own
redrive policy does that part). What it does not: cold starts, memory limits, timeouts.
"""

from __future__ import annotations

import importlib
import json
import random
import threading
import time
import traceback
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from drcore.audit import ARCHIVE_NAME, AUDIT_QUEUE_NAME, AUDIT_RULE_NAME, audit_rule_pattern
from drcore.registry import CustomerEntry
from drcore.settings import Settings
from drcore.subscriptions import ServiceSpec
from drcore.tables import TABLES, create_table, table_name
from events.schemas import Source

ARCHIVE_RETENTION_DAYS = 0  # 0 = indefinitely (the CDK app sets years)
FORWARD_RULE_NAME = "dr-forward-native-events"
NATIVE_SOURCES = (Source.AWS_DRS, Source.AWS_SSM)
# Lambda's own SQS polling is not an AWS call the orchestration makes: the endpoint counts the
# runtime's calls apart (by this user-agent marker).
CALLER_RUNTIME = "dr-runtime"
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    max_pool_connections=32,
    user_agent_extra=CALLER_RUNTIME,
)


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    timeout_seconds: int = 300
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    invoked_function_arn: str = ""
    _deadline: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Deployed:
    """What `build_orchestration` created: queue URLs and ARNs by service name."""

    bus_arn: str
    archive_arn: str
    queue_urls: dict[str, str]
    dlq_urls: dict[str, str]
    queue_arns: dict[str, str]


def _client(service: str, endpoint_url: str, region: str, **credentials: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint_url, region_name=region, config=CLIENT_CONFIG, **credentials
    )


def build_orchestration(
    endpoint_url: str, settings: Settings, services: Iterable[ServiceSpec]
) -> Deployed:
    """Create (or find) the bus, archive, tables, queues with DLQs and rules. Idempotent."""
    region = settings.orchestration_region
    events = _client("events", endpoint_url, region)
    sqs = _client("sqs", endpoint_url, region)
    dynamodb = _client("dynamodb", endpoint_url, region)

    existing_tables = set(dynamodb.list_tables()["TableNames"])
    for spec in TABLES:
        name = table_name(spec, settings)
        if name not in existing_tables:
            create_table(dynamodb, spec, name)

    buses = {b["Name"]: b["Arn"] for b in events.list_event_buses()["EventBuses"]}
    bus_arn = (
        buses.get(settings.bus_name)
        or events.create_event_bus(Name=settings.bus_name)["EventBusArn"]
    )
    archives = {a["ArchiveName"]: a for a in events.list_archives()["Archives"]}
    if ARCHIVE_NAME in archives:
        archive_arn = events.describe_archive(ArchiveName=ARCHIVE_NAME)["ArchiveArn"]
    else:
        archive_arn = events.create_archive(
            ArchiveName=ARCHIVE_NAME,
            EventSourceArn=bus_arn,
            RetentionDays=ARCHIVE_RETENTION_DAYS,
            Description="Every orchestration event, for audit and replay",
        )["ArchiveArn"]

    _build_audit_destination(events, sqs, settings)
    # Approval requests (the coordinator publishes to it; operators subscribe).
    _client("sns", endpoint_url, region).create_topic(Name=settings.approval_topic_name)
    queue_urls: dict[str, str] = {}
    dlq_urls: dict[str, str] = {}
    queue_arns: dict[str, str] = {}
    for service in services:
        dlq_url = sqs.create_queue(
            QueueName=service.dlq_name(), Attributes={"MessageRetentionPeriod": "1209600"}
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        queue_url = sqs.create_queue(
            QueueName=service.queue_name(),
            Attributes={
                "VisibilityTimeout": str(service.visibility_timeout),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": service.max_receive_count}
                ),
            },
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        for subscription in service.subscriptions:
            rule = service.rule_name(subscription)
            events.put_rule(
                Name=rule,
                EventBusName=settings.bus_name,
                EventPattern=json.dumps(subscription.pattern()),
                State="ENABLED",
            )
            events.put_targets(
                Rule=rule,
                EventBusName=settings.bus_name,
                Targets=[{"Id": service.queue_name(), "Arn": queue_arn}],
            )
        queue_urls[service.name] = queue_url
        dlq_urls[service.name] = dlq_url
        queue_arns[service.name] = queue_arn
    return Deployed(bus_arn, archive_arn, queue_urls, dlq_urls, queue_arns)


def _build_audit_destination(events: Any, sqs: Any, settings: Settings) -> None:
    """The queue that audits replay into, behind a rule that only replayed events match."""
    url = sqs.create_queue(QueueName=AUDIT_QUEUE_NAME)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name=AUDIT_RULE_NAME,
        EventBusName=settings.bus_name,
        EventPattern=json.dumps(audit_rule_pattern()),
        State="ENABLED",
    )
    events.put_targets(
        Rule=AUDIT_RULE_NAME, EventBusName=settings.bus_name, Targets=[{"Id": "audit", "Arn": arn}]
    )


def connect_workload_account(
    endpoint_url: str, settings: Settings, customer: CustomerEntry, bus_arn: str
) -> None:
    """Forward AWS-native events (DRS, SSM) from the customer's default bus in its DR region to
    the orchestration bus, as the workload-account stack does in AWS."""
    sts = _client("sts", endpoint_url, settings.orchestration_region)
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{customer.account}:role/{customer.role_name}",
        RoleSessionName="dr-sandbox-setup",
        ExternalId=customer.external_id,
    )["Credentials"]
    for dr_region in set(customer.regions.values()):
        events = _client(
            "events",
            endpoint_url,
            dr_region,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        events.put_rule(
            Name=FORWARD_RULE_NAME,
            EventPattern=json.dumps({"source": [s.value for s in NATIVE_SOURCES]}),
            State="ENABLED",
        )
        events.put_targets(
            Rule=FORWARD_RULE_NAME, Targets=[{"Id": "orchestration-bus", "Arn": bus_arn}]
        )


# --- running handlers ----------------------------------------------------------------------


@dataclass
class RuntimeFaults:
    """Delivery faults the runtime injects, as EventBridge, SQS and Lambda may cause them.

    - duplicate_rate: a delivered record is delivered again (at-least-once delivery);
    - delay_rate: a record is held back 1-3 s and arrives after later ones (no ordering);
    - crash_rate: the worker dies after its handler ran on half the batch, before reporting:
      nothing is deleted and the whole batch is delivered again (after `crash_redelivery_seconds`
      instead of the full visibility timeout, so scenarios stay short);
    - drop: `drop(service, body)` True loses that record for that service (a delivery that never
      happens: deleted unseen); e.g. one `ResourceRecovered` never reaching the coordinator.
    """

    duplicate_rate: float = 0.0
    delay_rate: float = 0.0
    crash_rate: float = 0.0
    crash_redelivery_seconds: int = 2
    seed: int = 7
    drop: Callable[[str, dict[str, Any]], bool] | None = None


@dataclass
class ServiceStats:
    invocations: int = 0
    records: int = 0
    failed_records: int = 0
    handler_errors: int = 0
    cpu_seconds: float = 0.0
    # Records carrying `replay-name`: rules exclude replays, so this stays 0 unless one leaks.
    replayed_records: int = 0
    crashes: int = 0
    dropped_records: int = 0
    # Handler CPU seconds per record, one sample per invocation (for percentiles).
    cpu_per_record: list[float] = field(default_factory=list)


def load_handler(path: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    module_name, _, function = path.partition(":")
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = getattr(
        importlib.import_module(module_name), function
    )
    return handler


class Runtime:
    """Polls each service's queue and invokes its handler with SQS batch events."""

    def __init__(
        self,
        endpoint_url: str,
        settings: Settings,
        services: Iterable[ServiceSpec],
        deployed: Deployed,
        workers_per_service: int = 2,
        poll_wait_seconds: int = 1,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._settings = settings
        self._services = list(services)
        self._deployed = deployed
        self._workers = workers_per_service
        self._wait = poll_wait_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.stats: dict[str, ServiceStats] = defaultdict(ServiceStats)
        self.errors: list[str] = []
        self.faults = RuntimeFaults()
        self._random = random.Random(self.faults.seed)

    def inject(self, faults: RuntimeFaults) -> None:
        """Set the delivery faults from now on (RuntimeFaults() turns them off)."""
        with self._lock:
            self.faults = faults
            self._random = random.Random(faults.seed)

    def _chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._random.random() < rate

    def start(self) -> None:
        if any(service.schedules for service in self._services):
            thread = threading.Thread(
                target=self._run_schedules, name="runtime-schedules", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        for service in self._services:
            handler = load_handler(service.handler)
            for index in range(self._workers):
                thread = threading.Thread(
                    target=self._run,
                    args=(service, handler),
                    name=f"runtime-{service.name}-{index}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def send_scheduled(self, service_name: str, schedule_name: str) -> None:
        """Send one scheduled message now (what the schedule does at each tick)."""
        service = next(s for s in self._services if s.name == service_name)
        schedule = next(s for s in service.schedules if s.name == schedule_name)
        sqs = _client("sqs", self._endpoint_url, self._settings.orchestration_region)
        sqs.send_message(
            QueueUrl=self._deployed.queue_urls[service.name],
            MessageBody=json.dumps(schedule.message),
        )

    def _run_schedules(self) -> None:
        due = {
            (service.name, schedule.name): time.monotonic() + schedule.rate_seconds
            for service in self._services
            for schedule in service.schedules
        }
        rates = {
            (service.name, schedule.name): schedule.rate_seconds
            for service in self._services
            for schedule in service.schedules
        }
        while not self._stop.wait(0.5):
            now = time.monotonic()
            for key, at in due.items():
                if now >= at:
                    due[key] = now + rates[key]
                    try:
                        self.send_scheduled(*key)
                    except Exception:
                        with self._lock:
                            self.errors.append(traceback.format_exc())

    def _run(self, service: ServiceSpec, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        sqs = _client("sqs", self._endpoint_url, self._settings.orchestration_region)
        queue_url = self._deployed.queue_urls[service.name]
        queue_arn = self._deployed.queue_arns[service.name]
        while not self._stop.is_set():
            try:
                messages = self._receive(sqs, queue_url, service)
                if messages:
                    self._invoke(sqs, queue_url, queue_arn, service, handler, messages)
            except Exception:  # the runtime keeps going, as Lambda's poller does
                with self._lock:
                    self.errors.append(traceback.format_exc())
                self._stop.wait(0.5)

    def _receive(self, sqs: Any, queue_url: str, service: ServiceSpec) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + service.batching_window_seconds
        while len(messages) < service.batch_size and not self._stop.is_set():
            response = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(10, service.batch_size - len(messages)),
                WaitTimeSeconds=0 if messages else self._wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            messages.extend(received)
            if not messages or time.monotonic() >= deadline:
                break
            if not received:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return messages

    def _invoke(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        service: ServiceSpec,
        handler: Callable[[dict[str, Any], Any], Any],
        messages: list[dict[str, Any]],
    ) -> None:
        faults = self.faults
        held = [m for m in messages if self._chance(faults.delay_rate)]
        for message in held:  # late delivery: back on the queue behind later messages
            sqs.send_message(
                QueueUrl=queue_url,
                MessageBody=message["Body"],
                DelaySeconds=self._random.randint(1, 3),
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        messages = [m for m in messages if m not in held]
        lost = [m for m in messages if faults.drop is not None and _lost(faults, service, m)]
        for message in lost:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            with self._lock:
                self.stats[service.name].dropped_records += 1
        messages = [m for m in messages if m not in lost]
        if not messages:
            return
        if self._chance(faults.crash_rate):
            self._crash(sqs, queue_url, queue_arn, service, handler, messages)
            return
        for message in messages:
            if self._chance(faults.duplicate_rate):
                sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
        event = {"Records": [_sqs_record(m, queue_arn, self._settings) for m in messages]}
        context = LambdaContext(function_name=f"dr-{service.name}")
        started = time.thread_time()
        failed_ids: set[str] = set()
        try:
            response = handler(event, context) or {}
            failed_ids = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:
            # A crashed invocation leaves the whole batch on the queue, as Lambda does.
            failed_ids = {m["MessageId"] for m in messages}
            with self._lock:
                self.stats[service.name].handler_errors += 1
                self.errors.append(traceback.format_exc())
        finally:
            with self._lock:
                stats = self.stats[service.name]
                stats.invocations += 1
                stats.records += len(messages)
                stats.failed_records += len(failed_ids)
                stats.replayed_records += sum('"replay-name"' in m["Body"] for m in messages)
                cpu = time.thread_time() - started
                stats.cpu_seconds += cpu
                stats.cpu_per_record.append(cpu / len(messages))
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )

    def _crash(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        service: ServiceSpec,
        handler: Callable[[dict[str, Any], Any], Any],
        messages: list[dict[str, Any]],
    ) -> None:
        """The worker dies mid-batch: the first half was handled (its side effects are real),
        nothing is reported, and every message of the batch comes back."""
        half = messages[: max(1, len(messages) // 2)]
        event = {"Records": [_sqs_record(m, queue_arn, self._settings) for m in half]}
        try:
            handler(event, LambdaContext(function_name=f"dr-{service.name}"))
        except Exception:
            with self._lock:
                self.errors.append(traceback.format_exc())
        with self._lock:
            self.stats[service.name].crashes += 1
        for message in messages:
            sqs.change_message_visibility(
                QueueUrl=queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=min(
                    self.faults.crash_redelivery_seconds, service.visibility_timeout
                ),
            )


def _lost(faults: RuntimeFaults, service: ServiceSpec, message: dict[str, Any]) -> bool:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        return False
    return bool(faults.drop and isinstance(body, dict) and faults.drop(service.name, body))


def _sqs_record(message: dict[str, Any], queue_arn: str, settings: Settings) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": settings.orchestration_region,
    }
