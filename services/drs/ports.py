"""What the drs domain reads and calls: value types and the ports `adapters.py` implements.

No AWS here. `Workload` is DRS and EC2 of one workload account in one region (the DR region,
or the primary region for failback); the other ports are the orchestration account's state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from drcore.registry import CustomerEntry
from events.schemas import Detail

from .readiness import Bubble, Machine, Server
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

# The domain's names for what the rules call Server / Machine.
SourceServer = Server
Instance = Machine

LAUNCHED = "LAUNCHED"
FAILED = "FAILED"
FINAL_LAUNCH_STATUSES = frozenset({LAUNCHED, FAILED})
JOB_COMPLETED = "COMPLETED"
RETRYABLE_CODES = frozenset(
    {
        "ConflictException",
        "ServiceQuotaExceededException",
        "ThrottlingException",
        "InternalServerException",
        "RequestLimitExceeded",
        "EndpointError",
        "503",
    }
)
# StartRecovery / TerminateRecoveryInstances errors after which a batch keeps waiting.
WAIT_CODES = frozenset(
    {
        "ServiceQuotaExceededException",
        "ThrottlingException",
        "InternalServerException",
        "EndpointError",
        "503",
    }
)


@dataclass(frozen=True)
class JobServer:
    source_server_id: str
    launch_status: str | None = None
    recovery_instance_id: str | None = None


@dataclass(frozen=True)
class Job:
    job_id: str
    status: str
    created_at: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    servers: tuple[JobServer, ...] = ()
    type: str = "LAUNCH"

    @property
    def completed(self) -> bool:
        return self.status == JOB_COMPLETED


@dataclass(frozen=True)
class RecoveryInstance:
    recovery_instance_id: str
    source_server_id: str | None
    ec2_instance_id: str | None
    job_id: str | None = None
    is_drill: bool | None = None
    ec2_state: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    snapshot_at: datetime | None = None


@dataclass(frozen=True)
class LaunchConfig:
    source_server_id: str
    template_id: str | None
    launch_into: str | None
    copy_private_ip: bool = False
    copy_tags: bool = False


@dataclass(frozen=True)
class Template:
    """An EC2 launch template: its default version and its tags."""

    template_id: str
    default_version: int
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobLedger:
    reported: frozenset[str] = frozenset()
    launches: Mapping[str, LaunchContext] = field(default_factory=dict)
    restored: bool = False
    # The result published for each reported server (a relaunched server has none here: its
    # result belongs to the job that launched it again).
    results: Mapping[str, RecordedResult] = field(default_factory=dict)


class AwsError(Exception):
    """An AWS call failed after botocore's retries (raised by adapters)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES


class RetryLater(RuntimeError):
    """Not processable yet (e.g. the operation's options are not recorded yet): the queue
    redelivers the record after its visibility timeout."""


# --- ports ----------------------------------------------------------------------------------------


class Workload(Protocol):
    """DRS and EC2 in one workload account and region."""

    # DRS reads
    def source_servers(self) -> list[SourceServer]: ...
    def source_servers_by_id(self, ids: Sequence[str]) -> list[SourceServer]: ...
    def jobs_since(self, since: datetime) -> list[Job]: ...
    def job(self, job_id: str) -> Job | None: ...
    def jobs(self, ids: Sequence[str]) -> list[Job]: ...
    def recovery_instances(
        self, ids: Sequence[str], source_server_ids: Sequence[str]
    ) -> list[RecoveryInstance]: ...
    def all_recovery_instances(self) -> list[RecoveryInstance]: ...
    def launch_errors(self, job_id: str) -> dict[str, str]: ...
    def launch_configuration(self, source_server_id: str) -> LaunchConfig: ...
    # DRS writes
    def launch_into(self, source_server_id: str, instance_id: str) -> None: ...
    def set_launch(
        self, source_server_id: str, *, launch_into: str | None, copy_private_ip: bool
    ) -> None: ...
    def start_recovery(
        self, source_server_ids: Sequence[str], tags: Mapping[str, str], drill: bool = False
    ) -> Job: ...
    def terminate_recovery_instances(self, ids: Sequence[str]) -> Job: ...
    def reverse_replication(self, recovery_instance_id: str) -> str: ...
    # EC2
    def twins(self, customer: str, environment: str, names: Sequence[str]) -> list[Instance]: ...
    def instances(self, ids: Sequence[str]) -> list[Instance]: ...
    def tagged_instances(self, key: str, value: str) -> list[Instance]: ...
    def tag_instances(self, ids: Sequence[str], tags: Mapping[str, str]) -> None: ...
    def stop_instances(self, ids: Sequence[str]) -> None: ...
    def terminate_instances(self, ids: Sequence[str]) -> None: ...
    def bubble_network(self, name: str) -> Bubble: ...
    def templates(self, ids: Sequence[str]) -> list[Template]: ...
    def tagged_templates(self, key: str) -> list[Template]: ...
    def bubble_template_version(
        self, template_id: str, data: Mapping[str, Any], description: str
    ) -> int: ...
    def set_default_template_version(self, template_id: str, version: int) -> None: ...
    def tag_templates(self, ids: Sequence[str], tags: Mapping[str, str]) -> None: ...
    def untag_templates(self, ids: Sequence[str], keys: Sequence[str]) -> None: ...


class Workloads(Protocol):
    def get(self, entry: CustomerEntry, region: str) -> Workload: ...


class Registry(Protocol):
    def customer(self, name: str) -> CustomerEntry | None: ...
    def by_account(self, account: str) -> CustomerEntry | None: ...
    def all(self) -> list[CustomerEntry]: ...


class Results(Protocol):
    def publish(self, details: Sequence[Detail]) -> None: ...


class Checks(Protocol):
    def schedule(self, messages: Sequence[tuple[BaseModel, int]]) -> None:
        """Send each message to the service's own queue with its delay in seconds."""
        ...


class Ledger(Protocol):
    def load(self, job_id: str) -> JobLedger: ...
    def record_launch(self, job_id: str, launches: Mapping[str, LaunchContext]) -> None: ...
    def mark_reported(
        self,
        job_id: str,
        source_server_ids: Sequence[str],
        results: Mapping[str, RecordedResult] | None = None,
    ) -> None:
        """Note the servers as reported, with the result published for each (same write)."""
        ...

    def claim_relaunch(self, job_id: str, source_server_ids: Sequence[str]) -> list[str]:
        """Claim the relaunch of failed servers of a job: those this caller got (once each)."""
        ...

    def mark_restored(self, job_id: str) -> bool:
        """Claim the restoration of a drill job's launch settings: True for the first caller."""
        ...


class Budget(Protocol):
    """The DRS quota budget of an account + region, shared by every operation (DynamoDB)."""

    def enqueue(self, batch: LaunchBatch) -> bool: ...
    def waiting(self, account: str, region: str) -> list[LaunchBatch]: ...
    def claim(self, batch: LaunchBatch, now: datetime) -> bool: ...
    def unclaim(self, batch: LaunchBatch) -> None: ...
    def done(self, batch: LaunchBatch) -> None: ...
    def reserve(self, account: str, region: str, hold: Hold, limits: DrsLimits) -> bool: ...
    def attach(self, account: str, region: str, hold_id: str, job_id: str) -> None: ...
    def release(self, account: str, region: str, hold_id: str, servers: int | None = None) -> bool:
        """Give a hold back (once); `servers` when known saves reading the hold."""
        ...

    def holds(self, account: str, region: str) -> list[Hold]: ...


class Operations(Protocol):
    """The service's records per operation (DynamoDB)."""

    def load(self, operation_id: str) -> OperationRecords: ...
    def save_options(self, options: OperationOptions) -> None: ...
    def record_job(self, operation_id: str, job: OpJob) -> None: ...
    def record_results(self, operation_id: str, results: Sequence[RecordedResult]) -> None:
        """Keep failures published before any job (to publish them again on a re-check)."""
        ...

    def mark_ended(self, operation_id: str, state: str, at: datetime) -> bool: ...
    def put_teardown(self, record: TeardownRecord, *, new: bool = False) -> bool: ...
    def put_reprotect(self, record: ReprotectRecord, *, new: bool = False) -> bool: ...


class Quotas(Protocol):
    def limits(self, entry: CustomerEntry, region: str) -> DrsLimits: ...


class Log(Protocol):
    def info(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def error(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


# --- helpers --------------------------------------------------------------------------------------

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


def parse_duration(value: str | None) -> float | None:
    """ISO-8601 duration (`PT1M30S`, `P1DT2H`) to seconds; None when absent or unreadable."""
    if not value:
        return None
    match = _DURATION.match(value.strip())
    if not match or value.strip() in ("P", "PT"):
        return None
    return sum(float(v) * _UNIT_SECONDS[k] for k, v in match.groupdict().items() if v)


_Item = TypeVar("_Item")


def chunks(items: Sequence[_Item], size: int) -> Iterator[Sequence[_Item]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


def step(backoff: Sequence[int], attempt: int) -> int:
    """The delay of an attempt: the backoff's step, its last one beyond it."""
    values = tuple(backoff) or (60,)
    return values[min(attempt, len(values) - 1)]


def arn_region_and_id(arn: str) -> tuple[str, str] | None:
    """(region, resource id) of an ARN like arn:aws:drs:us-east-1:111:source-server/s-1."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or "/" not in parts[5]:
        return None
    return parts[3], parts[5].rsplit("/", 1)[1]
