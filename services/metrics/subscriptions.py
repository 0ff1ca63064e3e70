"""The metrics service listens to every orchestration event (never to replays)."""

from drcore.subscriptions import ServiceSpec, Subscription
from events.schemas import CATALOG, Source

ORCHESTRATION_SOURCES = tuple(s for s in Source if s.value.startswith("dr."))

SERVICE = ServiceSpec(
    name="metrics",
    handler="services.metrics.handler:handler",
    subscriptions=(
        Subscription(
            name="orchestration-events",
            sources=ORCHESTRATION_SOURCES,
            detail_types=tuple(model.DETAIL_TYPE for model in CATALOG),
        ),
    ),
    batch_size=10,
    batching_window_seconds=1.0,
)
