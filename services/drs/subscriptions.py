"""DRS recovers the `drs` part of each wave, follows DRS's native launch results, and acts on the
life of operations: options when requested, teardown (drills) or re-protection when they end."""

from drcore.subscriptions import Schedule, ServiceSpec, Subscription
from events.schemas import DetailType, NativeDetailType, Source, Strategy

# The janitor: bubble-test resources older than the age limit (8 h) are removed, hourly.
JANITOR = Schedule(name="bubble-janitor", rate_seconds=3600, message={"kind": "drs-janitor"})

SERVICE = ServiceSpec(
    name="drs",
    handler="services.drs.handler:handler",
    subscriptions=(
        Subscription(
            name="wave-started",
            sources=(Source.COORDINATOR,),
            detail_types=(DetailType.WAVE_STARTED,),
            detail={"strategy": [Strategy.DRS.value]},
        ),
        # The coordinator's reconciler: resources in flight longer than expected.
        Subscription(
            name="resource-checks",
            sources=(Source.COORDINATOR,),
            detail_types=(DetailType.RESOURCE_CHECK_REQUESTED,),
            detail={"strategy": [Strategy.DRS.value]},
        ),
        Subscription(
            name="launch-results",
            sources=(Source.AWS_DRS,),
            detail_types=(NativeDetailType.DRS_LAUNCH_RESULT,),
        ),
        # Only requests that change what the service does by default: keep a drill's instances,
        # no reverse replication, or accept data loss (--force). Absent options are defaults.
        Subscription(
            name="operation-requested",
            sources=(Source.CLI,),
            detail_types=(DetailType.OPERATION_REQUESTED,),
            detail={
                "$or": [
                    {"keep_drill_resources": [True]},
                    {"reprotect": [False]},
                    {"allow_data_loss": [True]},
                ]
            },
        ),
        Subscription(
            name="operation-lifecycle",
            sources=(Source.COORDINATOR,),
            detail_types=(
                DetailType.OPERATION_COMPLETED,
                DetailType.OPERATION_FAILED,
                DetailType.OPERATION_CANCELLED,
                DetailType.REGIONAL_OPERATION_STARTED,
            ),
        ),
        Subscription(
            name="drill-cleanup",
            sources=(Source.CLI,),
            detail_types=(DetailType.DRILL_CLEANUP_REQUESTED,),
        ),
    ),
    visibility_timeout=30,
    # No batching window: a job's last launch result is reported as soon as it arrives (results
    # are grouped by the service itself, see domain.reconcile_job).
    batching_window_seconds=0.0,
    self_scheduling=True,
    schedules=(JANITOR,),
)
