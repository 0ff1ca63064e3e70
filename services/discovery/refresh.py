"""Refresh the DR-region inventory cache: every registered customer + environment, one version.

Triggered every 15 minutes by the discovery service's schedule (`subscriptions.py`) and on
demand (`drctl inventory refresh` sends the same message). One refresh runs at a time (a lease
on the status item); a request older than the last successful refresh is answered by it.

A customer whose collection fails (its region down, its role broken…) keeps its previous
snapshot as current: the version records it as not refreshed, with the reason, and its age
keeps growing until a refresh succeeds. Each refresh is checked (`inventory.check_refresh`),
and emits metrics: refresh outcome, duration, stored bytes, resources, check findings, per scope
the cache age and resources, and the scope's readiness findings (`services.readiness`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from drcore.aws import AwsClients
from drcore.registry import CustomerEntry
from drcore.settings import Settings
from events.schemas.models import utc_now

from .adapters import InventoryTable, SsmRegistry
from .collect import CollectionFailed, Collector, InventoryCollector, collect_many
from .inventory import (
    CacheStatus,
    CustomerInventory,
    ScopeSnapshot,
    ScopeSummary,
    Severity,
    VersionManifest,
    check_refresh,
    expires_at,
    pack,
    version_id,
)
from .messages import InventoryRefreshMessage
from .metrics import BYTES, COUNT, MILLISECONDS, SECONDS, MetricSet, MetricsSink, PowertoolsEmf

# Longest a refresh may hold the lease (a crashed refresh frees it after this).
LEASE_SECONDS = 600
SERVICE = "discovery"


BUSY = "another refresh is running"


class RefreshBusy(RuntimeError):
    """A requested refresh found another one running: retried later (SQS redelivery)."""


@dataclass(frozen=True)
class RefreshResult:
    manifest: VersionManifest | None
    skipped: str | None = None


class InventoryStore(Protocol):
    """What the refresh needs of the cache table (`adapters.InventoryTable`)."""

    def put_snapshot(self, snapshot: ScopeSnapshot, data: bytes, expires_at: int) -> None: ...
    def put_manifest(self, manifest: VersionManifest, expires_at: int) -> None: ...
    def manifests(self, limit: int | None = None) -> list[VersionManifest]: ...
    def current_summary(
        self, customer: str, environment: str
    ) -> tuple[str, datetime, int] | None: ...
    def status(self) -> CacheStatus: ...
    def begin_refresh(self, now: datetime, lease_seconds: int, request_id: str | None) -> bool: ...
    def end_refresh(self, manifest: VersionManifest | None, error: str | None) -> None: ...


class InventoryRefresher:
    def __init__(
        self,
        *,
        customers: Callable[[], Sequence[CustomerEntry]],
        collector: Collector,
        table: InventoryStore,
        settings: Settings,
        metrics: MetricsSink,
        logger: Any,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._customers = customers
        self._collector = collector
        self._table = table
        self._settings = settings
        self._metrics = metrics
        self._logger = logger
        self._now = now

    @classmethod
    def from_settings(
        cls,
        logger: Any,
        settings: Settings | None = None,
        clients: AwsClients | None = None,
        metrics: MetricsSink | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> InventoryRefresher:
        settings = settings or Settings()
        clients = clients or AwsClients(settings)
        registry = SsmRegistry(clients.client("ssm", settings.orchestration_region))
        return cls(
            customers=registry.all,
            collector=InventoryCollector(clients, settings, now=now),
            table=InventoryTable(
                clients.client("dynamodb", settings.orchestration_region),
                settings.inventory_table,
            ),
            settings=settings,
            metrics=metrics or PowertoolsEmf(SERVICE),
            logger=logger,
            now=now,
        )

    def on_request(self, request: InventoryRefreshMessage) -> RefreshResult:
        """Handle a refresh message: coalesce it with a newer refresh, else refresh."""
        if request.requested_at is not None:
            status = self._table.status()
            if status.last_success_at and status.last_success_at >= request.requested_at:
                self._logger.info(
                    "Inventory refresh already done since the request",
                    extra={"request_id": request.request_id, "version": status.last_version},
                )
                return RefreshResult(None, skipped="a newer refresh answered the request")
        result = self.refresh(request_id=request.request_id, requested_by=request.requested_by)
        if result.skipped == BUSY and request.requested_at is not None:
            # An operator's request must not be lost: fail the message, SQS redelivers it once
            # the running refresh is done (and then it is answered, or run).
            raise RefreshBusy(f"inventory refresh {request.request_id}: {BUSY}")
        return result

    def refresh(
        self, request_id: str | None = None, requested_by: str | None = None
    ) -> RefreshResult:
        started = self._now()
        if not self._table.begin_refresh(started, LEASE_SECONDS, request_id):
            self._logger.info("Inventory refresh already running", extra={"request_id": request_id})
            return RefreshResult(None, skipped=BUSY)
        clock = time.monotonic()
        manifest: VersionManifest | None = None
        error: str | None = None
        try:
            manifest = self._refresh(started, clock, requested_by)
            failed = [s for s in manifest.scopes if not s.refreshed]
            error = "; ".join(sorted({s.error for s in failed if s.error})) or None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._table.end_refresh(manifest, error)
            if manifest is None:
                self._metrics.emit([MetricSet({}, [("InventoryRefreshSucceeded", COUNT, 0.0)])])
        return RefreshResult(manifest)

    def _refresh(
        self, started: datetime, clock: float, requested_by: str | None
    ) -> VersionManifest:
        entries = sorted(self._customers(), key=lambda e: e.name)
        previous = next(iter(self._table.manifests(limit=1)), None)
        results = collect_many(self._collector, entries)
        version = version_id(started)
        history_expiry = expires_at(started, self._settings.inventory_history_hours)
        summaries: list[ScopeSummary] = []
        snapshots: dict[tuple[str, str], ScopeSnapshot] = {}
        readiness: list[tuple[ScopeSnapshot, CustomerInventory]] = []
        for entry, result in zip(entries, results, strict=True):
            if isinstance(result, CollectionFailed):
                summaries += self._kept(entry, result)
                continue
            for snapshot in result.snapshots:
                snapshot = snapshot.model_copy(update={"version": version})
                data, raw = pack(snapshot)
                self._table.put_snapshot(snapshot, data, history_expiry)
                snapshots[snapshot.key] = snapshot
                readiness.append((snapshot, result))
                summaries.append(
                    ScopeSummary(
                        customer=snapshot.customer,
                        environment=snapshot.environment,
                        refreshed=True,
                        version=version,
                        captured_at=snapshot.captured_at,
                        resources=len(snapshot.resources),
                        replicating=snapshot.replicating_count,
                        stored_bytes=len(data),
                        raw_bytes=raw,
                        source=snapshot.source,
                    )
                )
        findings = check_refresh(
            summaries, snapshots, previous, self._settings.inventory_drop_ratio
        )
        manifest = VersionManifest(
            version=version,
            captured_at=started,
            duration_ms=int((time.monotonic() - clock) * 1000),
            requested_by=requested_by,
            scopes=summaries,
            findings=findings,
        )
        self._table.put_manifest(manifest, history_expiry)
        self._logger.info(
            "Inventory refreshed",
            extra={
                "version": version,
                "outcome": manifest.outcome,
                "scopes": len(summaries),
                "resources": manifest.resources,
                "stored_bytes": manifest.stored_bytes,
                "duration_ms": manifest.duration_ms,
                "findings": [f.model_dump(mode="json") for f in findings],
            },
        )
        self._metrics.emit(self._metric_sets(manifest, readiness))
        return manifest

    def _kept(self, entry: CustomerEntry, failure: CollectionFailed) -> list[ScopeSummary]:
        """The scopes of a customer whose collection failed: their current snapshot stays."""
        self._logger.warning(
            "Inventory collection failed",
            extra={
                "customer": entry.name,
                "reason": failure.reason,
                "region_down": failure.region_down,
            },
        )
        out = []
        for environment in entry.environments:
            current = self._table.current_summary(entry.name, environment.name)
            out.append(
                ScopeSummary(
                    customer=entry.name,
                    environment=environment.name,
                    refreshed=False,
                    version=current[0] if current else None,
                    captured_at=current[1] if current else None,
                    resources=current[2] if current else 0,
                    error=failure.reason,
                )
            )
        return out

    def _metric_sets(
        self,
        manifest: VersionManifest,
        readiness: Sequence[tuple[ScopeSnapshot, CustomerInventory]],
    ) -> list[MetricSet]:
        from services.readiness.domain import evaluate, summarize, unattributed
        from services.readiness.metrics import metric_sets as readiness_sets

        now = manifest.captured_at
        out = [
            MetricSet(
                {},
                [
                    (
                        "InventoryRefreshSucceeded",
                        COUNT,
                        1.0 if manifest.outcome == "complete" else 0.0,
                    ),
                    ("InventoryRefreshDuration", MILLISECONDS, float(manifest.duration_ms)),
                    ("InventoryStoredBytes", BYTES, float(manifest.stored_bytes)),
                    ("InventoryResources", COUNT, float(manifest.resources)),
                    (
                        "InventoryScopesNotRefreshed",
                        COUNT,
                        float(sum(1 for s in manifest.scopes if not s.refreshed)),
                    ),
                    (
                        "InventoryCheckFindings",
                        COUNT,
                        float(sum(1 for f in manifest.findings if f.severity is not Severity.INFO)),
                    ),
                ],
            )
        ]
        for scope in manifest.scopes:
            values = [("InventoryResources", COUNT, float(scope.resources))]
            if scope.captured_at is not None:
                age = max(0.0, (now - scope.captured_at).total_seconds())
                values.append(("InventoryAgeSeconds", SECONDS, age))
            out.append(
                MetricSet({"Customer": scope.customer, "Environment": scope.environment}, values)
            )
        findings = []
        scopes = []
        customers_done: set[str] = set()
        for snapshot, inventory in readiness:
            scope_findings = evaluate(snapshot)
            findings += scope_findings
            scopes.append(summarize(snapshot, scope_findings))
            if inventory.customer not in customers_done:
                customers_done.add(inventory.customer)
                findings += unattributed(inventory.customer, inventory.unattributed)
        return out + readiness_sets(scopes, findings)
