"""The operation report: what happened, when, and how it compares with the RTO targets.

One model, two sources: `report_from_state` reads the live record (the operations table and the
stored plan); `report_from_events` rebuilds the same report from the operation's events alone
(the archived event stream, replayed for an audit). `audit_differences` compares the two on what
both can tell: outcomes, counts, DR ids, errors and the wave timings the events carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from events.schemas import (
    DetailType,
    EventEnvelope,
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
    WaveStarted,
)
from events.schemas.models import MODEL_BY_DETAIL_TYPE, Detail

from .plan import Plan, PlanWarning
from .state import OperationView


class ReportResource(BaseModel):
    model_config = ConfigDict(frozen=True)

    resource_id: str
    name: str
    wave: int
    strategy: str
    state: str
    private_ip: str | None = None
    dr_resource_id: str | None = None
    dr_private_ip: str | None = None
    error_code: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class ReportWave(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    state: str
    expected: int
    recovered: int
    failed: int
    started_at: datetime | None = None
    completed_at: datetime | None = None
    rto_target_minutes: int | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.completed_at:
            return (self.completed_at - self.started_at).total_seconds()
        return None


class OperationReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    operation_id: str
    operation: str
    customer: str
    environment: str
    state: str
    error_code: str | None = None
    reason: str | None = None
    requested_by: str | None = None
    request_reason: str | None = None
    ticket: str | None = None
    requested_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    plan_source: str | None = None
    warnings: list[PlanWarning] = Field(default_factory=list)
    approvals: list[dict[str, Any]] = Field(default_factory=list)
    waves: list[ReportWave] = Field(default_factory=list)
    resources: list[ReportResource] = Field(default_factory=list)
    source: str = "live record"

    @property
    def duration_seconds(self) -> float | None:
        start = self.started_at or self.requested_at
        if start and self.completed_at:
            return (self.completed_at - start).total_seconds()
        return None

    @property
    def clock_start(self) -> datetime | None:
        """RTO is counted from when the operation was requested (the recovery was declared)."""
        return self.requested_at or self.started_at

    def achieved_seconds(self, wave: ReportWave) -> float | None:
        """Time from the operation's start until the wave was recovered."""
        if self.clock_start is None or wave.completed_at is None or wave.state != "COMPLETED":
            return None
        return (wave.completed_at - self.clock_start).total_seconds()

    def rto_met(self, wave: ReportWave) -> bool | None:
        achieved = self.achieved_seconds(wave)
        if achieved is None or wave.rto_target_minutes is None:
            return None if wave.state != "FAILED" else False
        return achieved <= wave.rto_target_minutes * 60

    @property
    def expected_rto_minutes(self) -> int:
        return max((w.rto_target_minutes or 0 for w in self.waves), default=0)

    def summary(self) -> dict[str, Any]:
        """The report as JSON, with the figures an auditor asks for computed."""
        data: dict[str, Any] = self.model_dump(mode="json")
        data["duration_seconds"] = self.duration_seconds
        data["expected_rto_minutes"] = self.expected_rto_minutes
        data["recovered"] = sum(1 for r in self.resources if r.state == "RECOVERED")
        data["failed"] = sum(1 for r in self.resources if r.state == "FAILED")
        for wave, model in zip(data["waves"], self.waves, strict=True):
            wave["duration_seconds"] = model.duration_seconds
            wave["rto_achieved_seconds"] = self.achieved_seconds(model)
            wave["rto_met"] = self.rto_met(model)
        data["rto_met"] = bool(self.waves) and all(self.rto_met(w) for w in self.waves)
        return data


# --- from the live record ------------------------------------------------------------------


def report_from_state(
    view: OperationView, meta: dict[str, Any], plan: Plan | None
) -> OperationReport:
    """`meta` is the raw operation item: it carries what the read model leaves out."""
    return OperationReport(
        operation_id=view.operation_id,
        operation=view.operation,
        customer=view.customer,
        environment=view.environment,
        state=view.state,
        error_code=view.error_code,
        reason=view.reason,
        requested_by=view.requested_by,
        request_reason=meta.get("request_reason"),
        ticket=meta.get("ticket"),
        requested_at=view.created_at,
        started_at=view.started_at,
        completed_at=view.completed_at,
        plan_source=plan.plan_source.value if plan else None,
        warnings=list(plan.warnings) if plan else [],
        approvals=[dict(a) for a in meta.get("approvals") or []],
        waves=[
            ReportWave(
                number=w.number,
                state=w.state,
                expected=w.expected,
                recovered=w.recovered,
                failed=w.failed,
                started_at=w.started_at,
                completed_at=w.completed_at,
                rto_target_minutes=w.rto_target_minutes,
            )
            for w in view.waves
        ],
        resources=[
            ReportResource(
                resource_id=r.resource_id,
                name=r.name,
                wave=r.wave,
                strategy=r.strategy,
                state=r.state,
                private_ip=r.private_ip,
                dr_resource_id=r.dr_resource_id,
                dr_private_ip=r.dr_private_ip,
                error_code=r.error_code,
                error=r.error,
                started_at=r.started_at,
                completed_at=r.completed_at,
            )
            for r in view.resources
        ],
    )


# --- from the events alone -----------------------------------------------------------------

TERMINAL = {
    DetailType.OPERATION_COMPLETED.value: "COMPLETED",
    DetailType.OPERATION_FAILED.value: "FAILED",
    DetailType.OPERATION_CANCELLED.value: "CANCELLED",
    DetailType.OPERATION_PAUSED.value: "PAUSED",
}


def parse_events(raw: Iterable[dict[str, Any]], operation_id: str) -> list[Detail]:
    """The catalog events of one operation, in the order they happened (replays included)."""
    details: list[Detail] = []
    for body in raw:
        envelope = EventEnvelope.model_validate(body)
        model = MODEL_BY_DETAIL_TYPE.get(envelope.detail_type)
        if model is None or envelope.detail.get("operation_id") != operation_id:
            continue
        details.append(model.model_validate(envelope.detail))
    return sorted(details, key=lambda d: d.occurred_at)


def report_from_events(details: list[Detail]) -> OperationReport:
    """Rebuild the report from an operation's events. Later events win (a retried resource's
    last result is its outcome; duplicates carry the same values)."""
    request = next((d for d in details if isinstance(d, OperationRequested)), None)
    first = request or (details[0] if details else None)
    if first is None:
        raise ValueError("no event of the operation")
    plan_ready = next((d for d in details if isinstance(d, PlanReady)), None)
    resources: dict[str, dict[str, Any]] = {}
    waves: dict[int, dict[str, Any]] = {}
    state, error_code, reason, completed_at, started_at = "RUNNING", None, None, None, None
    for detail in details:
        if isinstance(detail, WaveStarted):
            wave = waves.setdefault(detail.wave, {"number": detail.wave, "state": "RECOVERING"})
            wave.setdefault("started_at", detail.occurred_at)
            for ref in detail.resources:
                resources.setdefault(
                    ref.resource_id,
                    {
                        "resource_id": ref.resource_id,
                        "name": ref.name,
                        "wave": detail.wave,
                        "strategy": detail.strategy.value,
                        "state": "RECOVERING",
                        "private_ip": ref.private_ip,
                    },
                )
            wave["rto_target_minutes"] = min(
                [r.rto_target_minutes for r in detail.resources]
                + ([wave["rto_target_minutes"]] if "rto_target_minutes" in wave else [])
            )
        elif isinstance(detail, ResourceRecovered):
            resources.setdefault(detail.resource_id, _unknown(detail)).update(
                state="RECOVERED",
                dr_resource_id=detail.dr_resource_id,
                dr_private_ip=detail.dr_private_ip,
                error_code=None,
                error=None,
                started_at=detail.started_at,
                completed_at=detail.completed_at,
            )
        elif isinstance(detail, ResourceRecoveryFailed):
            resources.setdefault(detail.resource_id, _unknown(detail)).update(
                state="FAILED",
                error_code=detail.error_code,
                error=detail.error,
                started_at=detail.started_at,
                completed_at=detail.failed_at,
            )
        elif isinstance(detail, WaveCompleted):
            waves.setdefault(detail.wave, {"number": detail.wave}).update(
                state="COMPLETED",
                started_at=detail.started_at,
                completed_at=detail.completed_at,
                rto_target_minutes=detail.rto_target_minutes,
            )
        elif isinstance(detail, WaveFailed):
            waves.setdefault(detail.wave, {"number": detail.wave}).update(
                state="FAILED", completed_at=detail.occurred_at
            )
        elif isinstance(detail, OperationCompleted):
            state, started_at, completed_at = "COMPLETED", detail.started_at, detail.completed_at
            error_code = reason = None
        elif isinstance(detail, OperationFailed | OperationCancelled | OperationPaused):
            state = TERMINAL[detail.DETAIL_TYPE.value]
            completed_at = detail.occurred_at
            error_code = getattr(detail, "code", None)
            reason = getattr(detail, "reason", None)
    for number, wave in waves.items():
        members = [r for r in resources.values() if r["wave"] == number]
        wave["expected"] = len(members)
        wave["recovered"] = sum(1 for r in members if r["state"] == "RECOVERED")
        wave["failed"] = sum(1 for r in members if r["state"] == "FAILED")
        wave.setdefault("state", "RECOVERING")
    return OperationReport(
        operation_id=first.operation_id,
        operation=first.operation.value,
        customer=first.customer,
        environment=first.environment,
        state=state,
        error_code=error_code,
        reason=reason,
        requested_by=request.requested_by if request else None,
        request_reason=request.reason if request else None,
        ticket=request.ticket if request else None,
        requested_at=request.occurred_at if request else None,
        started_at=started_at,
        completed_at=completed_at,
        plan_source=plan_ready.plan_source.value if plan_ready else None,
        waves=[ReportWave.model_validate(w) for _, w in sorted(waves.items())],
        resources=sorted(
            (ReportResource.model_validate(r) for r in resources.values()),
            key=lambda r: (r.wave, r.name),
        ),
        source="replayed events",
    )


def _unknown(detail: ResourceRecovered | ResourceRecoveryFailed) -> dict[str, Any]:
    return {
        "resource_id": detail.resource_id,
        "name": detail.resource_id,
        "wave": detail.wave,
        "strategy": detail.strategy.value,
    }


# --- audit ---------------------------------------------------------------------------------

OPERATION_FIELDS = ("operation", "customer", "environment", "state", "error_code", "requested_by")
WAVE_FIELDS = ("state", "expected", "recovered", "failed")
# Timings the events carry exactly as the live record holds them (WaveCompleted copies them).
WAVE_TIMINGS = ("started_at", "completed_at")
RESOURCE_FIELDS = ("wave", "state", "dr_resource_id", "dr_private_ip", "error_code")


def audit_differences(live: OperationReport, replayed: OperationReport) -> list[str]:
    """What the live record says that the events do not (empty: they agree)."""
    differences: list[str] = []
    for name in OPERATION_FIELDS:
        _compare(differences, f"operation.{name}", getattr(live, name), getattr(replayed, name))
    live_waves = {w.number: w for w in live.waves}
    replayed_waves = {w.number: w for w in replayed.waves}
    for number in sorted(set(live_waves) | set(replayed_waves)):
        a, b = live_waves.get(number), replayed_waves.get(number)
        if a is None or b is None:
            differences.append(
                f"wave {number}: only in the {'events' if a is None else 'live record'}"
            )
            continue
        for name in WAVE_FIELDS:
            _compare(differences, f"wave {number}.{name}", getattr(a, name), getattr(b, name))
        if b.state == "COMPLETED":
            for name in WAVE_TIMINGS:
                _compare(differences, f"wave {number}.{name}", getattr(a, name), getattr(b, name))
    live_resources = {r.resource_id: r for r in live.resources}
    replayed_resources = {r.resource_id: r for r in replayed.resources}
    for resource_id in sorted(set(live_resources) | set(replayed_resources)):
        a_res, b_res = live_resources.get(resource_id), replayed_resources.get(resource_id)
        if a_res is None or b_res is None:
            where = "events" if a_res is None else "live record"
            differences.append(f"resource {resource_id}: only in the {where}")
            continue
        for name in RESOURCE_FIELDS:
            _compare(
                differences,
                f"resource {resource_id}.{name}",
                getattr(a_res, name),
                getattr(b_res, name),
            )
    return differences


def _compare(out: list[str], label: str, live: Any, replayed: Any) -> None:
    if isinstance(live, datetime) and isinstance(replayed, datetime):
        if abs((live - replayed).total_seconds()) < 0.001:
            return
    elif live == replayed:
        return
    out.append(f"{label}: live record {live!r}, events {replayed!r}")
