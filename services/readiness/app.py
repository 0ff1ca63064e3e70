"""The readiness report for `drctl readiness`: collect (live, or from the DR-region cache),
evaluate, and optionally emit the findings as metrics. Starts nothing, changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from drcore.aws import AwsClients
from drcore.registry import CustomerEntry
from drcore.settings import Settings
from events.schemas.models import utc_now
from services.discovery.adapters import InventoryTable, SsmRegistry
from services.discovery.collect import CollectionFailed, InventoryCollector, collect_many
from services.discovery.domain import UnknownScope
from services.discovery.inventory import ScopeSnapshot, Severity
from services.discovery.metrics import MetricsSink

from .domain import (
    INVENTORY_UNAVAILABLE,
    Finding,
    ReadinessReport,
    ScopeReadiness,
    cache_findings,
    evaluate,
    sort_findings,
    summarize,
    unattributed,
)
from .metrics import metric_sets

LIVE = "live"
CACHE = "inventory-cache"


def select_scopes(
    entries: Sequence[CustomerEntry], customer: str | None, environment: str | None
) -> list[tuple[CustomerEntry, list[str]]]:
    """The customers and environments asked for; `UnknownScope` names a bad value."""
    chosen = list(entries)
    if customer is not None:
        chosen = [e for e in entries if e.name == customer]
        if not chosen:
            raise UnknownScope("UNKNOWN_CUSTOMER", "customer", customer, [e.name for e in entries])
    out: list[tuple[CustomerEntry, list[str]]] = []
    for entry in sorted(chosen, key=lambda e: e.name):
        names = [e.name for e in entry.environments]
        if environment is not None:
            names = [n for n in names if n == environment]
        if names:
            out.append((entry, names))
    if environment is not None and not out:
        known = sorted({e.name for entry in chosen for e in entry.environments})
        detail = f" for customer {customer!r}" if customer else ""
        raise UnknownScope("UNKNOWN_ENVIRONMENT", "environment", environment, known, detail)
    return out


def readiness_report(
    clients: AwsClients,
    settings: Settings,
    *,
    customer: str | None = None,
    environment: str | None = None,
    use_cached_inventory: bool = False,
    metrics: MetricsSink | None = None,
    now: Callable[[], datetime] = utc_now,
) -> ReadinessReport:
    """The readiness of the chosen scopes (every registered one by default)."""
    registry = SsmRegistry(clients.client("ssm", settings.orchestration_region))
    scopes = select_scopes(registry.all(), customer, environment)
    table = InventoryTable(
        clients.client("dynamodb", settings.orchestration_region), settings.inventory_table
    )
    at = now()
    findings: list[Finding] = []
    summaries: list[ScopeReadiness] = []
    snapshots: list[ScopeSnapshot] = []
    if use_cached_inventory:
        for entry, names in scopes:
            for name in names:
                snapshot = table.current(entry.name, name)
                findings += cache_findings(
                    entry.name,
                    name,
                    snapshot.captured_at if snapshot else None,
                    at,
                    settings.inventory_warning_age_seconds,
                    settings.inventory_critical_age_seconds,
                )
                if snapshot is None:
                    summaries.append(ScopeReadiness(customer=entry.name, environment=name))
                else:
                    snapshots.append(snapshot)
    else:
        collector = InventoryCollector(clients, settings, now=now)
        only = [environment] if environment is not None else None
        results = collect_many(collector, [e for e, _ in scopes], only)
        for (entry, names), result in zip(scopes, results, strict=True):
            for name in names:
                current = table.current_summary(entry.name, name)
                findings += cache_findings(
                    entry.name,
                    name,
                    current[1] if current else None,
                    at,
                    settings.inventory_warning_age_seconds,
                    settings.inventory_critical_age_seconds,
                )
            if isinstance(result, CollectionFailed):
                findings += _unavailable(entry.name, names, result)
                summaries += [ScopeReadiness(customer=entry.name, environment=n) for n in names]
                continue
            snapshots += [s for s in result.snapshots if s.environment in names]
            if environment is None:
                findings += unattributed(entry.name, result.unattributed)
    for snapshot in snapshots:
        scope_findings = evaluate(snapshot)
        findings += scope_findings
        summaries.append(summarize(snapshot, scope_findings))
    ordered = sort_findings(findings)
    summaries = [
        s.model_copy(
            update={
                "critical": sum(
                    1
                    for f in ordered
                    if (f.customer, f.environment) == (s.customer, s.environment)
                    and f.severity is Severity.CRITICAL
                ),
                "warnings": sum(
                    1
                    for f in ordered
                    if (f.customer, f.environment) == (s.customer, s.environment)
                    and f.severity is Severity.WARNING
                ),
            }
        )
        for s in sorted(summaries, key=lambda s: (s.customer, s.environment))
    ]
    report = ReadinessReport(
        generated_at=at,
        source=CACHE if use_cached_inventory else LIVE,
        scopes=summaries,
        findings=ordered,
    )
    if metrics is not None:
        metrics.emit(metric_sets(report.scopes, report.findings))
    return report


def _unavailable(customer: str, names: Sequence[str], failure: CollectionFailed) -> list[Finding]:
    hint = " (the region is down: try --use-cached-inventory)" if failure.region_down else ""
    return [
        Finding(
            code=INVENTORY_UNAVAILABLE,
            severity=Severity.CRITICAL,
            customer=customer,
            environment=name,
            message=f"the inventory could not be read: {failure.reason}{hint}",
        )
        for name in names
    ]
