"""Metrics of the inventory cache and the readiness report, as Powertools EMF documents.

In Lambda each document is printed and CloudWatch Logs turns it into metrics (the sandbox bridges
printed EMF to its CloudWatch the same way). `drctl` writes the same documents to a stream of
its choosing, so its stdout stays one clean table or JSON document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from drcore.observability import METRICS_NAMESPACE

COUNT = MetricUnit.Count
SECONDS = MetricUnit.Seconds
MILLISECONDS = MetricUnit.Milliseconds
BYTES = MetricUnit.Bytes


@dataclass(frozen=True)
class MetricSet:
    """Metrics that share one set of dimensions (one EMF document)."""

    dimensions: Mapping[str, str]
    values: Sequence[tuple[str, MetricUnit, float]] = field(default_factory=tuple)


class MetricsSink(Protocol):
    def emit(self, sets: Sequence[MetricSet]) -> None: ...


def documents(sets: Sequence[MetricSet], service: str) -> list[dict[str, Any]]:
    """The EMF documents of metric sets (one per set with at least one value)."""
    return [dict(_metrics(s, service).serialize_metric_set()) for s in sets if s.values]


def _metrics(metric_set: MetricSet, service: str) -> EphemeralMetrics:
    metrics = EphemeralMetrics(namespace=METRICS_NAMESPACE, service=service)
    for name, value in metric_set.dimensions.items():
        metrics.add_dimension(name=name, value=value)
    for name, unit, number in metric_set.values:
        metrics.add_metric(name=name, unit=unit, value=number)
    return metrics


class PowertoolsEmf:
    """Prints EMF documents through Powertools (Lambda: CloudWatch Logs makes the metrics)."""

    def __init__(self, service: str) -> None:
        self._service = service

    def emit(self, sets: Sequence[MetricSet]) -> None:
        for metric_set in sets:
            if metric_set.values:
                _metrics(metric_set, self._service).flush_metrics()


class StreamEmf:
    """Writes EMF documents as JSON lines to a stream (drctl: stderr or a file)."""

    def __init__(self, stream: IO[str], service: str) -> None:
        self._stream = stream
        self._service = service

    def emit(self, sets: Sequence[MetricSet]) -> None:
        for document in documents(sets, self._service):
            self._stream.write(json.dumps(document, separators=(",", ":")) + "\n")
        self._stream.flush()


class RecordingSink:
    """Keeps what was emitted (tests and previews)."""

    def __init__(self) -> None:
        self.sets: list[MetricSet] = []

    def emit(self, sets: Sequence[MetricSet]) -> None:
        self.sets.extend(sets)

    def value(self, name: str, **dimensions: str) -> float | None:
        for metric_set in reversed(self.sets):
            if dict(metric_set.dimensions) != dimensions:
                continue
            for metric, _, number in metric_set.values:
                if metric == name:
                    return number
        return None
