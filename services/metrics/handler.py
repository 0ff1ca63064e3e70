"""Metrics handler: every orchestration event becomes zero or more EMF metrics."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from drcore.consumer import EventRouter
from drcore.observability import METRICS_NAMESPACE, observability
from events.schemas import CATALOG, Detail, EventEnvelope

from .domain import metrics_for

obs = observability("metrics")
router = EventRouter(obs.logger)


def _emit(detail: Detail, envelope: EventEnvelope) -> None:
    for point in metrics_for(detail):
        with single_metric(
            name=point.name,
            unit=MetricUnit(point.unit),
            value=point.value,
            namespace=METRICS_NAMESPACE,
            default_dimensions=dict(point.dimensions),
        ):
            pass


for _model in CATALOG:
    router.on(_model.DETAIL_TYPE)(_emit)


@obs.logger.inject_lambda_context
@obs.tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return router.handle_batch(event, context)
