"""Pydantic models for every `detail` in the event catalog (DESIGN §3).

Each model carries its detail-type, the sources allowed to publish it and its schema version.
Consumers ignore unknown fields (forward compatible); producers never omit required ones.
A breaking change (a required field removed or renamed, a type changed, a new required field)
needs a version bump: `tests/contract/test_compatibility.py` enforces that against the JSON
Schemas committed under `events/schemas/json/`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from .names import (
    ALL_CUSTOMERS,
    RESULT_SOURCES,
    ApprovalDecision,
    ApprovalMode,
    ApprovalRefusalCode,
    DetailType,
    HookPhase,
    OperationType,
    PlanSource,
    Priority,
    ResumeMode,
    Source,
    Strategy,
    TeardownTrigger,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
OPERATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{5,63}$"


def utc_now() -> datetime:
    return datetime.now(UTC)


class Detail(BaseModel):
    """Fields every detail has."""

    model_config = ConfigDict(extra="ignore", frozen=True, use_enum_values=False)

    DETAIL_TYPE: ClassVar[DetailType]
    SOURCES: ClassVar[tuple[Source, ...]]
    SCHEMA_VERSION: ClassVar[str] = "1"

    schema_version: str = "1"
    operation_id: str = Field(pattern=OPERATION_ID_PATTERN)
    # `*` stands for every customer of a region (regional outage operations).
    customer: str = Field(pattern=rf"{NAME_PATTERN}|^\{ALL_CUSTOMERS}$")
    environment: str = Field(pattern=NAME_PATTERN)
    operation: OperationType
    occurred_at: AwareDatetime = Field(default_factory=utc_now)

    @field_validator("schema_version")
    @classmethod
    def _known_major(cls, value: str) -> str:
        if value.split(".")[0] != cls.SCHEMA_VERSION.split(".")[0]:
            raise ValueError(
                f"schema_version {value!r} is not supported by {cls.__name__} "
                f"(expects major {cls.SCHEMA_VERSION})"
            )
        return value


# --- requests from operators (dr.cli, dr.approval) -----------------------------------------


class OperationRequested(Detail):
    """Start an operation. `operation_id` is made by the client and is the idempotency key."""

    DETAIL_TYPE = DetailType.OPERATION_REQUESTED
    SOURCES = (Source.CLI,)

    requested_by: str = Field(min_length=1, max_length=256)
    region_map: dict[str, str] = Field(
        default_factory=dict, description="primary region -> DR region; empty: the registry's"
    )
    approval_mode: ApprovalMode | None = Field(
        default=None, description="None: the default for the operation and environment"
    )
    wave_filter: list[int] | None = Field(default=None, description="only these waves")
    dry_run: bool = False
    use_cached_inventory: bool = False
    allow_data_loss: bool = False
    reason: str | None = Field(default=None, max_length=1024)
    ticket: str | None = Field(default=None, max_length=128)
    # bubble-test: keep the drill's recovery instances for manual validation (`drctl drill
    # cleanup` removes them later; the janitor after its age limit).
    keep_drill_resources: bool = False
    # failover / failback: protect what was recovered by reversing replication at the end.
    reprotect: bool = True


class OperationCancelRequested(Detail):
    DETAIL_TYPE = DetailType.OPERATION_CANCEL_REQUESTED
    SOURCES = (Source.CLI,)

    requested_by: str = Field(min_length=1)
    reason: str | None = None


class OperationResumeRequested(Detail):
    DETAIL_TYPE = DetailType.OPERATION_RESUME_REQUESTED
    SOURCES = (Source.CLI,)

    requested_by: str = Field(min_length=1)
    mode: ResumeMode


class ApprovalGranted(Detail):
    DETAIL_TYPE = DetailType.APPROVAL_GRANTED
    SOURCES = (Source.APPROVAL,)

    wave: int = Field(ge=1)
    token: str = Field(min_length=8)
    approver: str = Field(min_length=1)
    comment: str | None = None


class ApprovalRejected(Detail):
    DETAIL_TYPE = DetailType.APPROVAL_REJECTED
    SOURCES = (Source.APPROVAL,)

    wave: int = Field(ge=1)
    token: str = Field(min_length=8)
    approver: str = Field(min_length=1)
    reason: str | None = None


# --- discovery -------------------------------------------------------------------------------


class PlanReady(Detail):
    """The plan is stored in the operations table (claim check); this event carries its key."""

    DETAIL_TYPE = DetailType.PLAN_READY
    SOURCES = (Source.DISCOVERY,)

    plan_key: str
    wave_count: int = Field(ge=0)
    resource_count: int = Field(ge=0)
    warning_count: int = Field(ge=0)
    plan_source: PlanSource
    inventory_age_seconds: int | None = None


class DiscoveryFailed(Detail):
    DETAIL_TYPE = DetailType.DISCOVERY_FAILED
    SOURCES = (Source.DISCOVERY,)

    code: str
    reason: str


# --- coordinator -----------------------------------------------------------------------------


class ResourceRef(BaseModel):
    """What a recovery service needs to know about one resource of a wave."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    resource_id: str
    arn: str
    name: str
    account: str = Field(pattern=r"^\d{12}$")
    region: str
    dr_region: str
    private_ip: str | None = None
    priority: Priority = Priority.MEDIUM
    rto_target_minutes: int = Field(ge=1)
    rpo_target_minutes: int = Field(ge=1)
    # The resource's type as Resource Explorer names it (`ec2:instance`, `eks:cluster`,
    # `elasticfilesystem:file-system`, `fsx:file-system`, `elasticache:replicationgroup`,
    # `elasticloadbalancing:loadbalancer` for every load balancer: the ARN tells ALB from NLB).
    resource_type: str = Field(default="ec2:instance", pattern=r"^[a-z0-9-]+:[a-z0-9-]+$")


class WaveStarted(Detail):
    """One part of a wave for one strategy. Large waves are split into numbered parts."""

    DETAIL_TYPE = DetailType.WAVE_STARTED
    SOURCES = (Source.COORDINATOR,)

    wave: int = Field(ge=1)
    strategy: Strategy
    part: int = Field(ge=1)
    part_count: int = Field(ge=1)
    attempt: int = Field(default=1, ge=1)
    resources: list[ResourceRef] = Field(min_length=1)


class WaveCompleted(Detail):
    DETAIL_TYPE = DetailType.WAVE_COMPLETED
    SOURCES = (Source.COORDINATOR,)

    wave: int = Field(ge=1)
    recovered: int = Field(ge=0)
    failed: int = Field(ge=0)
    started_at: AwareDatetime
    completed_at: AwareDatetime
    duration_seconds: float = Field(ge=0)
    rto_target_minutes: int | None = None


class WaveFailed(Detail):
    DETAIL_TYPE = DetailType.WAVE_FAILED
    SOURCES = (Source.COORDINATOR,)

    wave: int = Field(ge=1)
    recovered: int = Field(ge=0)
    failed: int = Field(ge=0)
    failed_resources: list[str]
    reason: str


class ApprovalRequested(Detail):
    DETAIL_TYPE = DetailType.APPROVAL_REQUESTED
    SOURCES = (Source.COORDINATOR,)

    wave: int = Field(ge=1)
    token: str = Field(min_length=8)
    resource_count: int = Field(ge=0)
    rto_target_minutes: int | None = None
    expires_at: AwareDatetime


class OperationPaused(Detail):
    DETAIL_TYPE = DetailType.OPERATION_PAUSED
    SOURCES = (Source.COORDINATOR,)

    wave: int = Field(ge=1)
    reason: str


class OperationCompleted(Detail):
    DETAIL_TYPE = DetailType.OPERATION_COMPLETED
    SOURCES = (Source.COORDINATOR,)

    waves: int = Field(ge=0)
    recovered: int = Field(ge=0)
    failed: int = Field(ge=0)
    started_at: AwareDatetime
    completed_at: AwareDatetime
    duration_seconds: float = Field(ge=0)


class OperationFailed(Detail):
    DETAIL_TYPE = DetailType.OPERATION_FAILED
    SOURCES = (Source.COORDINATOR,)

    code: str
    reason: str
    wave: int | None = None


class OperationCancelled(Detail):
    DETAIL_TYPE = DetailType.OPERATION_CANCELLED
    SOURCES = (Source.COORDINATOR,)

    requested_by: str
    reason: str | None = None


# --- recovery services -----------------------------------------------------------------------


class ResourceRecoveryStarted(Detail):
    DETAIL_TYPE = DetailType.RESOURCE_RECOVERY_STARTED
    SOURCES = RESULT_SOURCES

    resource_id: str
    wave: int = Field(ge=1)
    strategy: Strategy
    step: str = "recover"
    job_id: str | None = None
    started_at: AwareDatetime


class ResourceRecovered(Detail):
    DETAIL_TYPE = DetailType.RESOURCE_RECOVERED
    SOURCES = RESULT_SOURCES

    resource_id: str
    wave: int = Field(ge=1)
    strategy: Strategy
    step: str = "recover"
    dr_resource_id: str
    dr_private_ip: str | None = None
    dr_region: str
    started_at: AwareDatetime
    completed_at: AwareDatetime
    details: dict[str, str] = Field(default_factory=dict)


class ResourceRecoveryFailed(Detail):
    DETAIL_TYPE = DetailType.RESOURCE_RECOVERY_FAILED
    SOURCES = RESULT_SOURCES

    resource_id: str
    wave: int = Field(ge=1)
    strategy: Strategy
    step: str = "recover"
    error_code: str
    error: str
    retryable: bool = False
    started_at: AwareDatetime | None = None
    failed_at: AwareDatetime


CATALOG: tuple[type[Detail], ...] = (
    OperationRequested,
    OperationCancelRequested,
    OperationResumeRequested,
    ApprovalGranted,
    ApprovalRejected,
    PlanReady,
    DiscoveryFailed,
    WaveStarted,
    WaveCompleted,
    WaveFailed,
    ApprovalRequested,
    OperationPaused,
    OperationCompleted,
    OperationFailed,
    OperationCancelled,
    ResourceRecoveryStarted,
    ResourceRecovered,
    ResourceRecoveryFailed,
)

MODEL_BY_DETAIL_TYPE: dict[str, type[Detail]] = {m.DETAIL_TYPE.value: m for m in CATALOG}


class DrsLaunchResult(BaseModel):
    """`detail` of the native `aws.drs` "DRS Source Server Launch Result" event.

    States as DRS documents them: {RECOVERY,DRILL}_LAUNCH_{SUCCEEDED,FAILED}. The source server
    ARN is the event's `resources[0]`.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    state: str
    job_id: str = Field(alias="job-id")

    @property
    def succeeded(self) -> bool:
        return self.state.endswith("_SUCCEEDED")


class EventEnvelope(BaseModel):
    """An EventBridge event as a target receives it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str
    detail_type: str = Field(alias="detail-type")
    source: str
    account: str = ""
    time: datetime | None = None
    region: str = ""
    resources: list[str] = Field(default_factory=list)
    detail: dict[str, Any]
    replay_name: str | None = Field(default=None, alias="replay-name")

    @property
    def is_replay(self) -> bool:
        return self.replay_name is not None

    def origin(self) -> tuple[str, str]:
        """(account, region) of the resource the event is about: its first resource ARN, else
        the envelope's fields. The ARN survives forwarding between buses and accounts; the
        envelope fields may be rewritten by an intermediary."""
        if self.resources:
            parts = self.resources[0].split(":")
            if len(parts) > 5 and parts[3] and parts[4]:
                return parts[4], parts[3]
        return self.account, self.region


ResultKind = Literal["recovered", "failed"]


# --- coordinator: approvals, hooks, pause/resume, reconciliation, regional fan-out -----------


class ApprovalRefused(Detail):
    """An `ApprovalGranted` / `ApprovalRejected` the coordinator refused (wrong, reused or expired
    token, or a scope that does not match the wave awaiting approval). Nothing changed."""

    DETAIL_TYPE = DetailType.APPROVAL_REFUSED
    SOURCES = (Source.COORDINATOR,)

    wave: int = Field(ge=1)
    decision: ApprovalDecision
    approver: str
    code: ApprovalRefusalCode
    reason: str


class HookStarted(Detail):
    """A pre- or post-wave SSM Automation hook was started in the workload account."""

    DETAIL_TYPE = DetailType.HOOK_STARTED
    SOURCES = (Source.COORDINATOR,)

    wave: int = Field(ge=1)
    phase: HookPhase
    attempt: int = Field(ge=1)
    document_name: str
    execution_id: str
    account: str = Field(pattern=r"^\d{12}$")
    region: str
    started_at: AwareDatetime


class HookFinished(Detail):
    """A hook ended; `succeeded` False (Failed, TimedOut, Cancelled) fails its wave."""

    DETAIL_TYPE = DetailType.HOOK_FINISHED
    SOURCES = (Source.COORDINATOR,)

    wave: int = Field(ge=1)
    phase: HookPhase
    attempt: int = Field(ge=1)
    document_name: str
    execution_id: str | None = Field(default=None, description="None: SSM refused to start it")
    status: str
    succeeded: bool
    started_at: AwareDatetime
    ended_at: AwareDatetime
    duration_seconds: float = Field(ge=0)
    failure_message: str | None = None


class OperationResumed(Detail):
    """A paused operation goes on: its failed wave is retried (only what failed) or its failures
    are accepted (skip-failed)."""

    DETAIL_TYPE = DetailType.OPERATION_RESUMED
    SOURCES = (Source.COORDINATOR,)

    wave: int = Field(ge=1)
    mode: ResumeMode
    requested_by: str
    attempt: int = Field(ge=1)


class ResourceCheckRequested(Detail):
    """The reconciler asks the service owning `strategy` to re-check resources that are in flight
    longer than expected and to publish their result again (`ResourceRecovered` /
    `ResourceRecoveryFailed`) if it has one. Duplicated results are harmless: the coordinator
    counts each resource once. Split into numbered parts like `WaveStarted`."""

    DETAIL_TYPE = DetailType.RESOURCE_CHECK_REQUESTED
    SOURCES = (Source.COORDINATOR,)

    wave: int = Field(ge=1)
    strategy: Strategy
    attempt: int = Field(default=1, ge=1)
    part: int = Field(ge=1)
    part_count: int = Field(ge=1)
    resources: list[ResourceRef] = Field(min_length=1)
    in_flight_since: AwareDatetime
    reason: str


class ChildOperation(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    operation_id: str = Field(pattern=OPERATION_ID_PATTERN)
    customer: str = Field(pattern=NAME_PATTERN)
    environment: str = Field(pattern=NAME_PATTERN)


class RegionalOperationStarted(Detail):
    """A regional request (customer `*`) became one operation per customer + environment of the
    region; they run concurrently, each with its own lock, plan, waves and approvals."""

    DETAIL_TYPE = DetailType.REGIONAL_OPERATION_STARTED
    SOURCES = (Source.COORDINATOR,)

    region_map: dict[str, str]
    children: list[ChildOperation]


COORDINATOR_DETAILS: tuple[type[Detail], ...] = (
    ApprovalRefused,
    HookStarted,
    HookFinished,
    OperationResumed,
    ResourceCheckRequested,
    RegionalOperationStarted,
)
CATALOG = (*CATALOG, *COORDINATOR_DETAILS)
MODEL_BY_DETAIL_TYPE.update({m.DETAIL_TYPE.value: m for m in COORDINATOR_DETAILS})


class SsmAutomationStatusChange(BaseModel):
    """`detail` of the native `aws.ssm` "EC2 Automation Execution Status-change Notification"."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    execution_id: str = Field(alias="ExecutionId")
    definition: str = Field(default="", alias="Definition")
    status: str = Field(alias="Status")


# --- drs: bubble-test teardown and re-protection (reverse replication) ------------------------


class DrillCleanupRequested(Detail):
    """Remove what a bubble-test drill kept with `--keep` (`drctl drill cleanup OP`)."""

    DETAIL_TYPE = DetailType.DRILL_CLEANUP_REQUESTED
    SOURCES = (Source.CLI,)

    requested_by: str = Field(min_length=1, max_length=256)
    reason: str | None = Field(default=None, max_length=1024)


class DrillTeardownCompleted(Detail):
    """Every recovery instance the drill launched is terminated (TerminateRecoveryInstances jobs
    completed) and the launch settings the drill changed are restored."""

    DETAIL_TYPE = DetailType.DRILL_TEARDOWN_COMPLETED
    SOURCES = (Source.DRS,)

    trigger: TeardownTrigger
    terminated: int = Field(ge=0)
    recovery_instance_ids: list[str] = Field(default_factory=list)
    terminate_job_ids: list[str] = Field(default_factory=list)
    templates_restored: int = Field(default=0, ge=0)
    started_at: AwareDatetime
    completed_at: AwareDatetime
    duration_seconds: float = Field(ge=0)


class DrillResourcesKept(Detail):
    """The drill ended with `--keep`: its recovery instances stay for manual validation until
    `drctl drill cleanup` or, at `expires_at` at the latest, the janitor removes them."""

    DETAIL_TYPE = DetailType.DRILL_RESOURCES_KEPT
    SOURCES = (Source.DRS,)

    recovery_instance_ids: list[str]
    expires_at: AwareDatetime


class ReprotectFailure(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    resource_id: str
    code: str
    error: str


class ReprotectStarted(Detail):
    """Replication reversed for what the operation recovered: after a failover the recovery
    instances replicate back to the primary region (ready for failback); after a failback the
    restored servers replicate to the DR region again (ready for the next failover)."""

    DETAIL_TYPE = DetailType.REPROTECT_STARTED
    SOURCES = (Source.DRS,)

    target_region: str
    servers: int = Field(ge=0)
    failures: list[ReprotectFailure] = Field(default_factory=list)
    started_at: AwareDatetime


class ReprotectCompleted(Detail):
    """Every reversed replication reached CONTINUOUS, or the checks gave up on the servers in
    `not_continuous`."""

    DETAIL_TYPE = DetailType.REPROTECT_COMPLETED
    SOURCES = (Source.DRS,)

    target_region: str
    continuous: int = Field(ge=0)
    not_continuous: list[str] = Field(default_factory=list)
    started_at: AwareDatetime
    completed_at: AwareDatetime
    duration_seconds: float = Field(ge=0)


DRS_DETAILS: tuple[type[Detail], ...] = (
    DrillCleanupRequested,
    DrillTeardownCompleted,
    DrillResourcesKept,
    ReprotectStarted,
    ReprotectCompleted,
)
CATALOG = (*CATALOG, *DRS_DETAILS)
MODEL_BY_DETAIL_TYPE.update({m.DETAIL_TYPE.value: m for m in DRS_DETAILS})


# --- managed: records that follow servers recovered by other services (choreography) ----------


class DnsRecordUpdated(Detail):
    """A DNS record that belongs to a server recovered by drs now points at the server's new
    address (its `ResourceRecovered` arrived and the server's `dr:managed:dns-record` tag asked
    for it). Not a resource result: the coordinator does not count it."""

    DETAIL_TYPE = DetailType.DNS_RECORD_UPDATED
    SOURCES = (Source.MANAGED,)

    resource_id: str = Field(description="the server the record belongs to")
    dr_resource_id: str = Field(description="the instance the record now points at")
    hosted_zone_id: str
    record_name: str
    record_type: str = "A"
    previous_values: list[str] = Field(default_factory=list)
    values: list[str] = Field(min_length=1)
    changed: bool = Field(description="False: the record already held these values")
    change_id: str | None = None
    change_status: str | None = None
    updated_at: AwareDatetime


MANAGED_DETAILS: tuple[type[Detail], ...] = (DnsRecordUpdated,)
CATALOG = (*CATALOG, *MANAGED_DETAILS)
MODEL_BY_DETAIL_TYPE.update({m.DETAIL_TYPE.value: m for m in MANAGED_DETAILS})
