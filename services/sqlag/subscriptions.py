"""sqlag recovers the `sql-ag` part of each wave (failover, failback, bubble-test) and answers the
coordinator's re-check requests for its resources."""

from drcore.subscriptions import ServiceSpec, Subscription
from events.schemas import DetailType, Source, Strategy

SERVICE = ServiceSpec(
    name="sqlag",
    handler="services.sqlag.handler:handler",
    subscriptions=(
        Subscription(
            name="wave-started",
            sources=(Source.COORDINATOR,),
            detail_types=(DetailType.WAVE_STARTED,),
            detail={"strategy": [Strategy.SQL_AG.value]},
        ),
        Subscription(
            name="resource-check",
            sources=(Source.COORDINATOR,),
            detail_types=(DetailType.RESOURCE_CHECK_REQUESTED,),
            detail={"strategy": [Strategy.SQL_AG.value]},
        ),
    ),
    # A part's availability groups are worked on while the record is in flight (SSM commands
    # are awaited): the visibility timeout covers a failback's sync wait and its commands.
    batch_size=1,
    visibility_timeout=900,
)
