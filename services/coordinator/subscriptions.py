"""The coordinator counts completions, announces the next wave, and runs the gates around waves:
approvals, pre/post-wave hooks, operator controls and the reconciler."""

from drcore.subscriptions import Schedule, ServiceSpec, Subscription
from events.schemas import RESULT_SOURCES, DetailType, NativeDetailType, Source

from .hooks import RECONCILE_KIND, TERMINAL_STATUSES

RECONCILE_SCHEDULE = "reconcile"
RECONCILE_RATE_SECONDS = 60

SERVICE = ServiceSpec(
    name="coordinator",
    handler="services.coordinator.handler:handler",
    subscriptions=(
        Subscription(
            name="operation-requested",
            sources=(Source.CLI,),
            detail_types=(DetailType.OPERATION_REQUESTED,),
        ),
        Subscription(
            name="discovery-results",
            sources=(Source.DISCOVERY,),
            detail_types=(DetailType.PLAN_READY, DetailType.DISCOVERY_FAILED),
        ),
        Subscription(
            name="resource-results",
            sources=RESULT_SOURCES,
            detail_types=(DetailType.RESOURCE_RECOVERED, DetailType.RESOURCE_RECOVERY_FAILED),
        ),
        Subscription(
            name="operation-controls",
            sources=(Source.CLI,),
            detail_types=(
                DetailType.OPERATION_CANCEL_REQUESTED,
                DetailType.OPERATION_RESUME_REQUESTED,
            ),
        ),
        Subscription(
            name="approvals",
            sources=(Source.APPROVAL,),
            detail_types=(DetailType.APPROVAL_GRANTED, DetailType.APPROVAL_REJECTED),
        ),
        # Hook completion: SSM's own status events, forwarded from the workload accounts.
        Subscription(
            name="hook-status",
            sources=(Source.AWS_SSM,),
            detail_types=(NativeDetailType.SSM_AUTOMATION_STATUS,),
            detail={"Status": sorted(TERMINAL_STATUSES)},
        ),
    ),
    # An event that arrives before its predecessor is retried soon.
    visibility_timeout=5,
    max_receive_count=20,
    # Hook polling: delayed checks on its own queue.
    self_scheduling=True,
    # Stuck resources, unannounced transitions, running hooks, waiting approvals.
    schedules=(
        Schedule(
            name=RECONCILE_SCHEDULE,
            rate_seconds=RECONCILE_RATE_SECONDS,
            message={"kind": RECONCILE_KIND},
        ),
    ),
)
