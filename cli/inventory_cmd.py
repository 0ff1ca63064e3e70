"""`drctl inventory`: the DR-region inventory cache (refresh on demand, versions and ages), and
the plan notice `drctl failover --wait` shows (where the plan came from, how old the cache is)."""

from __future__ import annotations

import getpass
import json
import time
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from drcore.plan import Plan
from drcore.state import PlanStore, read_operation
from events.schemas import PlanSource
from events.schemas.models import utc_now
from services.discovery.adapters import InventoryTable, SsmRegistry
from services.discovery.domain import PLAN_WIDE
from services.discovery.inventory import (
    CACHE_AGE_CRITICAL,
    CACHE_AGE_WARNING,
    CacheStatus,
    Severity,
    VersionManifest,
    age_severity,
)
from services.discovery.subscriptions import INVENTORY_REFRESH, SERVICE

from . import render
from .context import Context, UsageError

inventory_app = typer.Typer(
    help="The DR-region inventory cache: refresh it, list its versions and ages.",
    no_args_is_help=True,
)

PLAN_WAIT_SECONDS = 60.0
POLL_SECONDS = 0.5
# Plan warnings an operator must see before the waves run.
NOTICE_CODES = ("PLANNED_FROM_CACHE", CACHE_AGE_WARNING, CACHE_AGE_CRITICAL)


class Output(StrEnum):
    TEXT = "text"
    JSON = "json"


OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="text for people, json for scripts")
]


def _table(context: Context) -> InventoryTable:
    return InventoryTable(
        context.clients.client("dynamodb", context.settings.orchestration_region),
        context.settings.inventory_table,
    )


def _age(at: datetime | None, now: datetime) -> int | None:
    return None if at is None else max(0, int((now - at).total_seconds()))


def _minutes(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def _severity_style(severity: Severity) -> str:
    return {Severity.CRITICAL: "red", Severity.WARNING: "yellow"}.get(severity, "green")


# --- drctl inventory refresh -------------------------------------------------------------------


@inventory_app.command()
def refresh(
    ctx: typer.Context,
    wait: Annotated[bool, typer.Option(help="Wait for the refresh to finish")] = True,
    local: Annotated[
        bool, typer.Option(help="Refresh from this process instead of the discovery service")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 600.0,
    output: OutputOption = Output.TEXT,
) -> None:
    """Refresh the cache now (the same refresh the 15-minute schedule runs)."""
    from .main import _fail_usage, _guard

    context: Context = ctx.obj
    if local:
        manifest = _guard(context, lambda: _refresh_here(context))
    else:
        requested_at = utc_now()
        request_id = f"refresh-{uuid.uuid4().hex[:12]}"
        _guard(context, lambda: _send(context, request_id, requested_at))
        if not wait:
            _print({"request_id": request_id, "state": "REQUESTED"}, output)
            return
        manifest = _guard(context, lambda: _wait_for_version(context, requested_at, timeout))
        if manifest is None:
            _fail_usage(f"no refresh finished within {timeout:.0f} s (request {request_id})")
    if output is Output.JSON:
        render.print_json(_manifest_json(manifest, utc_now()))
    else:
        _print_manifest(manifest)
    if manifest.outcome != "complete":
        raise typer.Exit(1)


def _send(context: Context, request_id: str, requested_at: datetime) -> None:
    sqs = context.clients.client("sqs", context.settings.orchestration_region)
    url = sqs.get_queue_url(QueueName=SERVICE.queue_name())["QueueUrl"]
    sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps(
            {
                "kind": INVENTORY_REFRESH,
                "request_id": request_id,
                "requested_at": requested_at.isoformat(),
                "requested_by": getpass.getuser(),
            }
        ),
    )


def _wait_for_version(
    context: Context, requested_at: datetime, timeout: float
) -> VersionManifest | None:
    """The first version made at or after the request (the request's own, or a newer one)."""
    table = _table(context)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        latest = next(iter(table.manifests(limit=1)), None)
        if latest is not None and latest.captured_at >= requested_at:
            return latest
        time.sleep(POLL_SECONDS)
    return None


def _refresh_here(context: Context) -> VersionManifest:
    """The refresh in this process (metrics are the discovery service's job: not emitted)."""
    from aws_lambda_powertools import Logger

    from services.discovery.metrics import RecordingSink
    from services.discovery.refresh import InventoryRefresher

    refresher = InventoryRefresher.from_settings(
        Logger(service="drctl", level="WARNING"),
        context.settings,
        clients=context.clients,
        metrics=RecordingSink(),
    )
    result = refresher.refresh(requested_by=getpass.getuser())
    if result.manifest is None:
        raise UsageError(f"refresh not run: {result.skipped}")
    return result.manifest


# --- drctl inventory show ----------------------------------------------------------------------


@inventory_app.command()
def show(
    ctx: typer.Context,
    customer: Annotated[
        str | None, typer.Option("--customer", "-c", help="Only this customer")
    ] = None,
    environment: Annotated[
        str | None, typer.Option("--environment", "-e", help="Only this environment")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Versions to list")] = 96,
    output: OutputOption = Output.TEXT,
) -> None:
    """The cache: its status, the current snapshot of each scope with its age, and the versions
    kept (24 h of history)."""
    from .main import _guard

    context: Context = ctx.obj
    data = _guard(context, lambda: _show(context, customer, environment, limit))
    if output is Output.JSON:
        render.print_json(data)
    else:
        _print_show(data)


def _show(
    context: Context, customer: str | None, environment: str | None, limit: int
) -> dict[str, Any]:
    from services.discovery.domain import UnknownScope
    from services.readiness.app import select_scopes

    settings = context.settings
    table = _table(context)
    registry = SsmRegistry(context.clients.client("ssm", settings.orchestration_region))
    try:
        scopes = select_scopes(registry.all(), customer, environment)
    except UnknownScope as error:
        raise UsageError(str(error)) from error
    now = utc_now()
    current: list[dict[str, Any]] = []
    for entry, names in scopes:
        for name in names:
            summary = table.current_summary(entry.name, name)
            age = _age(summary[1], now) if summary else None
            severity = age_severity(
                age, settings.inventory_warning_age_seconds, settings.inventory_critical_age_seconds
            )
            current.append(
                {
                    "customer": entry.name,
                    "environment": name,
                    "version": summary[0] if summary else None,
                    "captured_at": summary[1].isoformat() if summary else None,
                    "age_seconds": age,
                    "resources": summary[2] if summary else 0,
                    "status": "ok" if severity is Severity.INFO else severity.value,
                }
            )
    manifests = table.manifests(limit=limit)
    status: CacheStatus = table.status()
    last_age = _age(status.last_success_at, now)
    overall = age_severity(
        max((c["age_seconds"] for c in current if c["age_seconds"] is not None), default=None)
        if current and all(c["age_seconds"] is not None for c in current)
        else None,
        settings.inventory_warning_age_seconds,
        settings.inventory_critical_age_seconds,
    )
    return {
        "status": {
            **status.model_dump(mode="json"),
            "last_success_age_seconds": last_age,
            "health": "ok" if overall is Severity.INFO else overall.value,
            "warning_after_seconds": settings.inventory_warning_age_seconds,
            "critical_after_seconds": settings.inventory_critical_age_seconds,
        },
        "current": current,
        "versions": [_manifest_json(m, now) for m in manifests],
        "history_stored_bytes": sum(m.stored_bytes for m in manifests),
    }


def _manifest_json(manifest: VersionManifest, now: datetime) -> dict[str, Any]:
    data: dict[str, Any] = manifest.model_dump(mode="json")
    data |= {
        "age_seconds": _age(manifest.captured_at, now),
        "outcome": manifest.outcome,
        "resources": manifest.resources,
        "stored_bytes": manifest.stored_bytes,
        "raw_bytes": manifest.raw_bytes,
        "scopes_refreshed": sum(1 for s in manifest.scopes if s.refreshed),
    }
    return data


def _print(data: dict[str, Any], output: Output) -> None:
    if output is Output.JSON:
        render.print_json(data)
    else:
        render.console.print(", ".join(f"{k}: {v}" for k, v in data.items()))


def _print_manifest(manifest: VersionManifest) -> None:
    style = {"complete": "green", "partial": "yellow"}.get(manifest.outcome, "red")
    refreshed = sum(1 for s in manifest.scopes if s.refreshed)
    render.console.print(
        f"Inventory version [bold]{manifest.version}[/bold]: [{style}]{manifest.outcome}"
        f"[/{style}] — {refreshed}/{len(manifest.scopes)} scopes refreshed, "
        f"{manifest.resources} resources, {manifest.stored_bytes / 1024:.1f} KiB compressed "
        f"({manifest.raw_bytes / 1024:.1f} KiB raw), {manifest.duration_ms / 1000:.1f} s"
    )
    for scope in manifest.scopes:
        if not scope.refreshed:
            render.err_console.print(
                f"[yellow]not refreshed[/yellow] {scope.customer}/{scope.environment}: "
                f"{scope.error} (kept version {scope.version or 'none'})"
            )
    _print_findings(manifest)


def _print_findings(manifest: VersionManifest) -> None:
    from rich.table import Table

    if not manifest.findings:
        return
    table = Table("Severity", "Scope", "Check", "Message", title="Checks")
    for finding in manifest.findings:
        style = _severity_style(finding.severity)
        table.add_row(
            f"[{style}]{finding.severity.value}[/{style}]",
            f"{finding.customer}/{finding.environment}",
            finding.code,
            finding.message,
        )
    render.console.print(table)


def _print_show(data: dict[str, Any]) -> None:
    from rich.table import Table

    status = data["status"]
    health = status["health"]
    style = {"critical": "red", "warning": "yellow"}.get(health, "green")
    success_age = _minutes(status["last_success_age_seconds"])
    render.console.print(
        f"Inventory cache: [{style}]{health}[/{style}] — last success "
        f"{status.get('last_success_at') or 'never'} ({success_age} ago), "
        f"last attempt {status.get('last_attempt_at') or 'never'}"
        + (f", last error: {status['last_error']}" if status.get("last_error") else "")
    )
    current = Table(
        "Customer", "Environment", "Version", "Age", "Resources", "Status", title="Current"
    )
    for row in data["current"]:
        row_style = {"critical": "red", "warning": "yellow"}.get(row["status"], "green")
        current.add_row(
            row["customer"],
            row["environment"],
            row["version"] or "-",
            _minutes(row["age_seconds"]),
            str(row["resources"]),
            f"[{row_style}]{row['status']}[/{row_style}]",
        )
    render.console.print(current)
    versions = Table(
        "Version",
        "Age",
        "Outcome",
        "Scopes",
        "Resources",
        "Stored",
        "Duration",
        "Checks",
        title=f"Versions ({len(data['versions'])}, "
        f"{data['history_stored_bytes'] / 1024:.1f} KiB compressed)",
    )
    for version in data["versions"]:
        versions.add_row(
            version["version"],
            _minutes(version["age_seconds"]),
            version["outcome"],
            f"{version['scopes_refreshed']}/{len(version['scopes'])}",
            str(version["resources"]),
            f"{version['stored_bytes'] / 1024:.1f} KiB",
            f"{version['duration_ms'] / 1000:.1f} s",
            str(len(version["findings"])),
        )
    render.console.print(versions)


# --- the plan notice of drctl failover ---------------------------------------------------------


def wait_for_plan(
    context: Context, operation_id: str, timeout: float = PLAN_WAIT_SECONDS
) -> Plan | None:
    """The operation's stored plan once discovery made it (None if it ends or times out first)."""
    table = context.table()
    store = PlanStore(table)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        plan = store.get(operation_id)
        if plan is not None:
            return plan
        view = read_operation(table, operation_id)
        if view is not None and view.terminal:
            return None
        time.sleep(POLL_SECONDS)
    return None


def plan_notice(plan: Plan) -> dict[str, Any]:
    """Where the plan came from, how old its inventory is, and its warnings (for --output json)."""
    return {
        "plan_source": plan.plan_source.value,
        "inventory_age_seconds": plan.inventory_age_seconds,
        "resource_count": plan.resource_count,
        "warnings": [w.model_dump(mode="json") for w in plan.warnings],
    }


def print_plan_notice(plan: Plan) -> None:
    """Tell the operator (stderr) where the plan came from and warn about a stale cache."""
    source = plan.plan_source.value
    age = (
        f", cache {_minutes(plan.inventory_age_seconds)} old"
        if plan.plan_source is PlanSource.INVENTORY_CACHE
        else ""
    )
    render.err_console.print(
        f"Plan: {plan.resource_count} resources in {len(plan.waves)} waves (source: {source}{age})"
    )
    for warning in plan.warnings:
        if warning.code in NOTICE_CODES or warning.resource_id == PLAN_WIDE:
            style = "red" if warning.code == CACHE_AGE_CRITICAL else "yellow"
            render.err_console.print(
                f"[{style}]warning[/{style}] {warning.code}: {warning.message}"
            )
