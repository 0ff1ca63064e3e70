"""What the drs service stores and sends itself: per-operation records, launch batches waiting for
DRS quota, quota holds, and its own delayed messages. Pure data (pydantic), no AWS.

Per operation (`pk=DRSOP#<operation id>` in the operations table, see `adapters.DynamoOperations`):
  OPTIONS     what the operator asked (`OperationRequested`: keep, reprotect, allow data loss)
  JOB#<id>    every DRS job the service started for the operation (launch or terminate)
  RESULT#<wave>#<attempt>#<resource>  a failure published before any job (readiness, launch
              settings, StartRecovery refused), kept to be published again on a re-check
  ENDED       the operation's terminal state, once the coordinator announced it
  TEARDOWN    bubble-test teardown: state, trigger, terminated recovery instances
  REPROTECT   reverse replication after a failover / failback: per-server progress
Per account + region (`pk=DRSQUOTA#<account>#<region>`, see `adapters.DynamoBudget`):
  BUDGET      servers in active jobs and active jobs the orchestration holds (quota scheduler)
  HOLD#<id>   one reservation (a job's share of the budget) until the job completes
  WAIT#...    a launch batch waiting for budget, oldest first (FIFO across operations)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from drcore import tags as T
from events.schemas import MODEL_BY_DETAIL_TYPE, Detail, OperationType
from events.schemas.models import ReprotectFailure
from events.schemas.names import TeardownTrigger

# --- launches -------------------------------------------------------------------------------------


class LaunchContext(BaseModel):
    """What the service knew about one server when it launched it (stored with the job)."""

    model_config = ConfigDict(frozen=True)

    resource_id: str
    name: str
    twin: str | None = None  # launch-into target (DR twin; the original instance on failback)
    primary_ip: str | None = None
    lag_seconds: int | None = None
    rpo_exceeded: bool | None = None
    forced: bool | None = None  # launched past a readiness rule with --force
    launch_try: int = 1
    boot_mode: str | None = None  # "verified" | "unverified"
    # Drills: where the server goes and what to restore once the drill's launch job is over.
    bubble_vpc: str | None = None
    bubble_subnet: str | None = None
    bubble_groups: tuple[str, ...] = ()
    copy_private_ip: bool | None = None
    template_id: str | None = None
    restore_version: int | None = None
    restore_launch_into: str | None = None
    # Failback: the DR recovery instance the server ran on (stopped after failback).
    dr_instance: str | None = None


class LaunchMember(BaseModel):
    model_config = ConfigDict(frozen=True)

    source_server_id: str
    context: LaunchContext


class LaunchBatch(BaseModel):
    """Servers of one operation, wave and attempt to launch in one DRS job, in one account and
    region. Waits in the budget's queue until the DRS quotas allow its job."""

    model_config = ConfigDict(frozen=True)

    batch_id: str
    account: str = Field(pattern=r"^\d{12}$")
    region: str
    operation_id: str
    customer: str
    environment: str
    operation: OperationType
    wave: int = Field(ge=1)
    attempt: int = Field(default=1, ge=1)
    launch_try: int = Field(default=1, ge=1)
    enqueued_at: AwareDatetime
    not_before: AwareDatetime | None = None
    members: list[LaunchMember] = Field(min_length=1)

    @staticmethod
    def make_id(
        operation_id: str, wave: int, attempt: int, launch_try: int, sids: Iterable[str]
    ) -> str:
        """Deterministic: the same servers of the same step are always the same batch."""
        text = f"{operation_id}|{wave}|{attempt}|{launch_try}|{','.join(sorted(sids))}"
        return "b" + hashlib.sha256(text.encode()).hexdigest()[:23]

    @property
    def drill(self) -> bool:
        return self.operation == OperationType.BUBBLE_TEST

    def job_tags(self) -> dict[str, str]:
        return {
            T.JOB_OPERATION_ID: self.operation_id,
            T.JOB_WAVE: str(self.wave),
            T.JOB_CUSTOMER: self.customer,
            T.JOB_ENVIRONMENT: self.environment,
            T.JOB_OPERATION: self.operation.value,
            T.JOB_ATTEMPT: str(self.attempt),
            T.JOB_BATCH: self.batch_id,
            T.JOB_LAUNCH_TRY: str(self.launch_try),
        }


class Hold(BaseModel):
    """A share of an account + region's DRS budget, held by one job until it completes."""

    model_config = ConfigDict(frozen=True)

    hold_id: str
    servers: int = Field(ge=0)
    created_at: AwareDatetime
    job_id: str | None = None


class DrsLimits(BaseModel):
    """The DRS quotas of an account + region the scheduler keeps every job within."""

    model_config = ConfigDict(frozen=True)

    servers_per_job: int = Field(ge=1)
    concurrent_jobs: int = Field(ge=1)
    servers_in_active_jobs: int = Field(ge=1)
    source: Literal["service-quotas", "defaults"] = "defaults"


# --- per operation --------------------------------------------------------------------------------


class OperationOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    operation_id: str
    customer: str
    environment: str
    operation: OperationType
    keep_drill_resources: bool = False
    reprotect: bool = True
    allow_data_loss: bool = False
    requested_at: AwareDatetime
    requested_by: str | None = None


class OpJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    account: str
    region: str
    kind: Literal["launch", "terminate"]
    hold: str | None = None
    servers: int = 0
    created_at: AwareDatetime
    # The wave and attempt a launch job belongs to (absent on records written before them).
    wave: int | None = None
    attempt: int | None = None


class RecordedResult(BaseModel):
    """A result the service published (`ResourceRecovered` / `ResourceRecoveryFailed`), kept so
    that a re-check (`ResourceCheckRequested`) publishes the very same result again."""

    model_config = ConfigDict(frozen=True)

    wave: int = Field(ge=1)
    attempt: int = Field(ge=1)
    resource_id: str
    detail_type: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, detail: Detail, attempt: int) -> RecordedResult:
        return cls(
            wave=getattr(detail, "wave", 1),
            attempt=attempt,
            resource_id=getattr(detail, "resource_id", ""),
            detail_type=detail.DETAIL_TYPE.value,
            detail=detail.model_dump(mode="json"),
        )

    def event(self) -> Detail:
        return MODEL_BY_DETAIL_TYPE[self.detail_type].model_validate(self.detail)


class TeardownState(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    KEPT = "KEPT"


class TeardownRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    operation_id: str
    customer: str
    environment: str
    state: TeardownState
    trigger: TeardownTrigger
    started_at: AwareDatetime
    completed_at: AwareDatetime | None = None
    # Recovery instances of the drill: terminated ones, and those kept with --keep.
    terminated: list[str] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list)
    terminate_jobs: list[str] = Field(default_factory=list)
    templates_restored: int = 0
    expires_at: AwareDatetime | None = None
    sweeps: int = 0


class ProtectState(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    TIMED_OUT = "TIMED_OUT"
    SKIPPED = "SKIPPED"  # --no-reprotect


class ProtectedServer(BaseModel):
    model_config = ConfigDict(frozen=True)

    resource_id: str
    name: str | None = None
    account: str
    region: str  # where the reversed source server replicates to
    source_server_id: str
    state: str
    lag_seconds: int | None = None


class ReprotectRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    operation_id: str
    customer: str
    environment: str
    operation: OperationType
    state: ProtectState
    started_at: AwareDatetime
    completed_at: AwareDatetime | None = None
    servers: list[ProtectedServer] = Field(default_factory=list)
    failures: list[ReprotectFailure] = Field(default_factory=list)
    checks: int = 0

    @property
    def target_region(self) -> str:
        return self.servers[0].region if self.servers else ""

    @property
    def continuous(self) -> list[ProtectedServer]:
        return [s for s in self.servers if s.state == "CONTINUOUS"]


class OperationRecords(BaseModel):
    """Everything the service recorded about one operation (one Query)."""

    model_config = ConfigDict(frozen=True)

    options: OperationOptions | None = None
    jobs: list[OpJob] = Field(default_factory=list)
    ended: str | None = None
    ended_at: datetime | None = None
    teardown: TeardownRecord | None = None
    reprotect: ReprotectRecord | None = None
    # Failures published before any job (see RESULT# above).
    results: list[RecordedResult] = Field(default_factory=list)

    def launch_jobs(self) -> list[OpJob]:
        return [j for j in self.jobs if j.kind == "launch"]

    def terminate_jobs(self) -> list[OpJob]:
        return [j for j in self.jobs if j.kind == "terminate"]


# --- the service's own messages (its queue) -------------------------------------------------------

JOB_CHECK_KIND = "drs-job-check"
QUOTA_WAKE_KIND = "drs-quota-wake"
TEARDOWN_CHECK_KIND = "drs-teardown-check"
PROTECT_CHECK_KIND = "drs-protect-check"
JANITOR_KIND = "drs-janitor"


class JobCheck(BaseModel):
    """Look at a job again."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["drs-job-check"] = "drs-job-check"
    job_id: str = Field(min_length=1)
    account: str = Field(pattern=r"^\d{12}$")
    region: str = Field(min_length=1)
    attempt: int = Field(default=0, ge=0)


class QuotaWake(BaseModel):
    """Launch what waits for DRS quota in an account + region, if the budget allows it now."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["drs-quota-wake"] = "drs-quota-wake"
    account: str = Field(pattern=r"^\d{12}$")
    region: str = Field(min_length=1)
    attempt: int = Field(default=0, ge=0)


class TeardownCheck(BaseModel):
    """Sweep a drill's resources again (until none is left)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["drs-teardown-check"] = "drs-teardown-check"
    operation_id: str = Field(min_length=1)
    attempt: int = Field(default=0, ge=0)


class ProtectCheck(BaseModel):
    """Read the progress of an operation's reverse replication."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["drs-protect-check"] = "drs-protect-check"
    operation_id: str = Field(min_length=1)
    attempt: int = Field(default=0, ge=0)


class JanitorRun(BaseModel):
    """The scheduled janitor (hourly): bubble-test resources older than the age limit go."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["drs-janitor"] = "drs-janitor"
    max_age_seconds: int | None = Field(default=None, ge=0)


ServiceMessage = JobCheck | QuotaWake | TeardownCheck | ProtectCheck | JanitorRun
