"""The coordinator counts completions and announces the next wave."""

from drcore.subscriptions import ServiceSpec, Subscription
from events.schemas import RESULT_SOURCES, DetailType, Source

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
    ),
    # An event that arrives before its predecessor is retried soon.
    visibility_timeout=5,
    max_receive_count=20,
)
