"""Which metrics each event is worth (pure: no AWS, no Powertools).

Dimensions are Customer, Environment and Operation on every metric, so dashboards can slice per
tenant; the RTO figures come with their targets so a dashboard or alarm can compare them.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.schemas import (
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    Detail,
    OperationCancelled,
    OperationCompleted,
    OperationFailed,
    OperationPaused,
    OperationRequested,
    PlanReady,
    ResourceRecovered,
    ResourceRecoveryFailed,
    WaveCompleted,
    WaveFailed,
)

COUNT = "Count"
SECONDS = "Seconds"


@dataclass(frozen=True)
class MetricPoint:
    name: str
    unit: str
    value: float
    dimensions: tuple[tuple[str, str], ...]


def dimensions(detail: Detail) -> tuple[tuple[str, str], ...]:
    return (
        ("Customer", detail.customer),
        ("Environment", detail.environment),
        ("Operation", detail.operation.value),
    )


def metrics_for(detail: Detail) -> list[MetricPoint]:
    dims = dimensions(detail)

    def point(name: str, value: float, unit: str = COUNT) -> MetricPoint:
        return MetricPoint(name, unit, float(value), dims)

    if isinstance(detail, OperationRequested):
        return [point("OperationsRequested", 1)]
    if isinstance(detail, PlanReady):
        return [
            point("PlanResources", detail.resource_count),
            point("PlanWarnings", detail.warning_count),
        ]
    if isinstance(detail, WaveCompleted):
        points = [
            point("WavesCompleted", 1),
            point("WaveDurationSeconds", detail.duration_seconds, SECONDS),
        ]
        if detail.rto_target_minutes:
            target = detail.rto_target_minutes * 60
            points += [
                point("WaveRtoTargetSeconds", target, SECONDS),
                point("WaveOverRtoTarget", 1 if detail.duration_seconds > target else 0),
            ]
        return points
    if isinstance(detail, WaveFailed):
        return [point("WavesFailed", 1)]
    if isinstance(detail, ResourceRecovered):
        seconds = (detail.completed_at - detail.started_at).total_seconds()
        return [point("ResourcesRecovered", 1), point("ResourceRecoverySeconds", seconds, SECONDS)]
    if isinstance(detail, ResourceRecoveryFailed):
        return [point("ResourcesFailed", 1)]
    if isinstance(detail, OperationCompleted):
        return [
            point("OperationsCompleted", 1),
            point("OperationDurationSeconds", detail.duration_seconds, SECONDS),
        ]
    if isinstance(detail, OperationFailed):
        return [point("OperationsFailed", 1)]
    if isinstance(detail, OperationCancelled):
        return [point("OperationsCancelled", 1)]
    if isinstance(detail, OperationPaused):
        return [point("OperationsPaused", 1)]
    if isinstance(detail, ApprovalRequested):
        # Waiting approvals = requested - answered over the same period.
        return [point("ApprovalsRequested", 1)]
    if isinstance(detail, ApprovalGranted | ApprovalRejected):
        return [point("ApprovalsAnswered", 1)]
    return []
