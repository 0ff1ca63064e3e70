"""Discovery builds the plan when an operation is requested."""

from drcore.subscriptions import ServiceSpec, Subscription
from events.schemas import DetailType, Source

SERVICE = ServiceSpec(
    name="discovery",
    handler="services.discovery.handler:handler",
    subscriptions=(
        Subscription(
            name="operation-requested",
            sources=(Source.CLI,),
            detail_types=(DetailType.OPERATION_REQUESTED,),
        ),
    ),
    visibility_timeout=60,
)
