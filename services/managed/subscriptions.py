"""The managed service recovers the `managed-service` part of each wave, answers the
reconciler's checks for it, and updates the DNS records of servers that drs recovered."""

from drcore.subscriptions import ServiceSpec, Subscription
from events.schemas import DetailType, OperationType, Source, Strategy

SERVICE = ServiceSpec(
    name="managed",
    handler="services.managed.handler:handler",
    subscriptions=(
        Subscription(
            name="wave-started",
            sources=(Source.COORDINATOR,),
            detail_types=(DetailType.WAVE_STARTED,),
            detail={"strategy": [Strategy.MANAGED_SERVICE.value]},
        ),
        Subscription(
            name="resource-checks",
            sources=(Source.COORDINATOR,),
            detail_types=(DetailType.RESOURCE_CHECK_REQUESTED,),
            detail={"strategy": [Strategy.MANAGED_SERVICE.value]},
        ),
        # Choreography: a server drs recovered may own a DNS record this service keeps.
        # Drills never touch production records.
        Subscription(
            name="drs-recovered",
            sources=(Source.DRS,),
            detail_types=(DetailType.RESOURCE_RECOVERED,),
            detail={
                "operation": [OperationType.FAILOVER.value, OperationType.FAILBACK.value],
            },
        ),
    ),
    # Route 53 changes are waited for until INSYNC within one invocation.
    visibility_timeout=180,
    batching_window_seconds=0.5,
)
