"""Discovery builds the plan when an operation is requested, and refreshes the DR-region
inventory cache every 15 minutes (its own `inventory-refresh` message, also sent on demand)."""

from drcore.subscriptions import Schedule, ServiceSpec, Subscription
from events.schemas import DetailType, Source

# The message kind of a cache refresh (the schedule's, and `drctl inventory refresh`'s).
INVENTORY_REFRESH = "inventory-refresh"
INVENTORY_REFRESH_SECONDS = 15 * 60

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
    schedules=(
        Schedule(
            name="inventory-refresh",
            rate_seconds=INVENTORY_REFRESH_SECONDS,
            message={"kind": INVENTORY_REFRESH},
        ),
    ),
)
