"""`drctl readiness`: DR posture per customer + environment, without starting anything.

Exit code 1 when any critical finding exists (for cron and CI), 0 otherwise, 2 for bad input.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from services.discovery.inventory import Severity
from services.readiness.domain import ReadinessReport

from . import render
from .context import Context, UsageError
from .inventory_cmd import Output, OutputOption

SHOWN_MESSAGES = 200


def readiness(
    ctx: typer.Context,
    customer: Annotated[
        str | None, typer.Option("--customer", "-c", help="Only this customer (default: all)")
    ] = None,
    environment: Annotated[
        str | None,
        typer.Option("--environment", "-e", help="Only this environment (default: all)"),
    ] = None,
    use_cached_inventory: Annotated[
        bool,
        typer.Option(
            "--use-cached-inventory",
            help="Read the DR-region inventory cache instead of the live APIs (primary region "
            "down)",
        ),
    ] = False,
    emit_metrics: Annotated[
        bool, typer.Option(help="Also write the findings as EMF metrics (JSON lines) to stderr")
    ] = False,
    output: OutputOption = Output.TEXT,
) -> None:
    """Would DR work now? Replication, lag vs RPO, DR twins, DR tags, waves, cache age."""
    from services.discovery.domain import UnknownScope
    from services.discovery.metrics import StreamEmf
    from services.readiness.app import readiness_report

    from .main import _guard

    context: Context = ctx.obj

    def build() -> ReadinessReport:
        try:
            return readiness_report(
                context.clients,
                context.settings,
                customer=customer,
                environment=environment,
                use_cached_inventory=use_cached_inventory,
                metrics=StreamEmf(sys.stderr, "readiness") if emit_metrics else None,
            )
        except UnknownScope as error:
            raise UsageError(str(error)) from error

    report: ReadinessReport = _guard(context, build)
    if output is Output.JSON:
        render.print_json(report_json(report))
    else:
        print_report(report)
    if not report.ready:
        raise typer.Exit(1)


def report_json(report: ReadinessReport) -> dict[str, Any]:
    data: dict[str, Any] = report.model_dump(mode="json")
    data |= {"ready": report.ready, "critical": report.critical, "warnings": report.warnings}
    return data


def print_report(report: ReadinessReport) -> None:
    from rich.table import Table

    style = "green" if report.ready else "red"
    verdict = "ready" if report.ready else "NOT ready"
    render.console.print(
        f"DR readiness ({report.source}): [{style}]{verdict}[/{style}] — "
        f"{report.critical} critical, {report.warnings} warning(s) over {len(report.scopes)} "
        "scope(s)"
    )
    scopes = Table(
        "Customer", "Environment", "Resources", "Replicating", "Waves", "Critical", "Warnings"
    )
    for scope in report.scopes:
        scopes.add_row(
            scope.customer,
            scope.environment,
            str(scope.resources),
            str(scope.replicating),
            ",".join(map(str, scope.waves)) or "-",
            f"[red]{scope.critical}[/red]" if scope.critical else "0",
            f"[yellow]{scope.warnings}[/yellow]" if scope.warnings else "0",
        )
    render.console.print(scopes)
    if not report.findings:
        return
    findings = Table("Severity", "Scope", "Resource", "Code", "Message", title="Findings")
    for finding in report.findings[:SHOWN_MESSAGES]:
        colour = {Severity.CRITICAL: "red", Severity.WARNING: "yellow"}.get(finding.severity, "")
        findings.add_row(
            f"[{colour}]{finding.severity.value}[/{colour}]" if colour else finding.severity.value,
            f"{finding.customer}/{finding.environment}",
            finding.name or finding.resource_id,
            finding.code,
            finding.message,
        )
    render.console.print(findings)
    if len(report.findings) > SHOWN_MESSAGES:
        render.console.print(
            f"… and {len(report.findings) - SHOWN_MESSAGES} more (use --output json)"
        )
