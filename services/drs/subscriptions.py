"""DRS recovers the `drs` part of each wave and follows DRS's native launch results."""

from drcore.subscriptions import ServiceSpec, Subscription
from events.schemas import DetailType, NativeDetailType, Source, Strategy

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
        Subscription(
            name="launch-results",
            sources=(Source.AWS_DRS,),
            detail_types=(NativeDetailType.DRS_LAUNCH_RESULT,),
        ),
    ),
    visibility_timeout=30,
    batching_window_seconds=0.5,
    self_scheduling=True,
)
