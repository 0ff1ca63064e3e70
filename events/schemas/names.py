"""Event sources and detail-types: the only place these strings are spelled out."""

from enum import StrEnum

BUS_NAME_DEFAULT = "dr-orchestration"


class Source(StrEnum):
    CLI = "dr.cli"
    APPROVAL = "dr.approval"
    DISCOVERY = "dr.discovery"
    COORDINATOR = "dr.coordinator"
    DRS = "dr.drs"
    EKS = "dr.eks"
    SQLAG = "dr.sqlag"
    MANAGED = "dr.managed"
    # AWS-native sources, forwarded from the default bus.
    AWS_DRS = "aws.drs"
    AWS_SSM = "aws.ssm"


class DetailType(StrEnum):
    OPERATION_REQUESTED = "OperationRequested"
    OPERATION_CANCEL_REQUESTED = "OperationCancelRequested"
    OPERATION_RESUME_REQUESTED = "OperationResumeRequested"
    APPROVAL_GRANTED = "ApprovalGranted"
    APPROVAL_REJECTED = "ApprovalRejected"
    PLAN_READY = "PlanReady"
    DISCOVERY_FAILED = "DiscoveryFailed"
    WAVE_STARTED = "WaveStarted"
    WAVE_COMPLETED = "WaveCompleted"
    WAVE_FAILED = "WaveFailed"
    APPROVAL_REQUESTED = "ApprovalRequested"
    OPERATION_PAUSED = "OperationPaused"
    OPERATION_COMPLETED = "OperationCompleted"
    OPERATION_FAILED = "OperationFailed"
    OPERATION_CANCELLED = "OperationCancelled"
    RESOURCE_RECOVERY_STARTED = "ResourceRecoveryStarted"
    RESOURCE_RECOVERED = "ResourceRecovered"
    RESOURCE_RECOVERY_FAILED = "ResourceRecoveryFailed"
    # Coordinator: approvals, hooks, pause/resume, reconciliation, regional fan-out.
    APPROVAL_REFUSED = "ApprovalRefused"
    HOOK_STARTED = "HookStarted"
    HOOK_FINISHED = "HookFinished"
    OPERATION_RESUMED = "OperationResumed"
    RESOURCE_CHECK_REQUESTED = "ResourceCheckRequested"
    REGIONAL_OPERATION_STARTED = "RegionalOperationStarted"
    # DRS: bubble-test teardown and re-protection (reverse replication).
    DRILL_CLEANUP_REQUESTED = "DrillCleanupRequested"
    DRILL_TEARDOWN_COMPLETED = "DrillTeardownCompleted"
    DRILL_RESOURCES_KEPT = "DrillResourcesKept"
    REPROTECT_STARTED = "ReprotectStarted"
    REPROTECT_COMPLETED = "ReprotectCompleted"
    # managed: a DNS record that follows a server recovered by drs (choreography).
    DNS_RECORD_UPDATED = "DnsRecordUpdated"


class NativeDetailType(StrEnum):
    """Detail-types AWS services publish on the default bus (forwarded to ours)."""

    DRS_LAUNCH_RESULT = "DRS Source Server Launch Result"
    SSM_AUTOMATION_STATUS = "EC2 Automation Execution Status-change Notification"


class OperationType(StrEnum):
    FAILOVER = "failover"
    FAILBACK = "failback"
    BUBBLE_TEST = "bubble-test"


class Strategy(StrEnum):
    """Values of the `dr:recovery-strategy` tag: which service recovers a resource."""

    DRS = "drs"
    EKS_DNS = "eks-dns"
    SQL_AG = "sql-ag"
    MANAGED_SERVICE = "managed-service"


# Which service source publishes results for each strategy.
STRATEGY_SOURCE: dict[Strategy, Source] = {
    Strategy.DRS: Source.DRS,
    Strategy.EKS_DNS: Source.EKS,
    Strategy.SQL_AG: Source.SQLAG,
    Strategy.MANAGED_SERVICE: Source.MANAGED,
}

RESULT_SOURCES: tuple[Source, ...] = tuple(STRATEGY_SOURCE.values())


class ApprovalMode(StrEnum):
    REQUIRED = "required"
    FIRST_WAVE = "first-wave"
    NONE = "none"


class ResumeMode(StrEnum):
    RETRY_FAILED = "retry-failed"
    SKIP_FAILED = "skip-failed"


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class PlanSource(StrEnum):
    RESOURCE_EXPLORER = "resource-explorer"
    TAGGING_API = "tagging-api"
    INVENTORY_CACHE = "inventory-cache"


ALL_CUSTOMERS = "*"

# A regional request (customer `*`) with this environment fails over every environment of every
# customer in the region; any other environment name selects that environment of each customer.
ALL_ENVIRONMENTS = "all"


class HookPhase(StrEnum):
    """When a wave's SSM Automation hook runs."""

    PRE_WAVE = "pre-wave"
    POST_WAVE = "post-wave"


class ApprovalDecision(StrEnum):
    GRANTED = "granted"
    REJECTED = "rejected"


class ApprovalRefusalCode(StrEnum):
    """Why an approval or rejection was refused (and logged)."""

    TOKEN_MISMATCH = "TOKEN_MISMATCH"
    TOKEN_REUSED = "TOKEN_REUSED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    SCOPE_MISMATCH = "SCOPE_MISMATCH"
    NOT_AWAITING_APPROVAL = "NOT_AWAITING_APPROVAL"


class TeardownTrigger(StrEnum):
    """What tore a bubble-test drill down."""

    OPERATION_END = "operation-end"  # the drill operation ended (completed, failed, cancelled)
    CLEANUP_REQUEST = "cleanup-request"  # `drctl drill cleanup` after `--keep`
    JANITOR = "janitor"  # the scheduled janitor: drill resources older than the limit
