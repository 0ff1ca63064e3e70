"""Terminal and JSON output for drctl."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from drcore.plan import Plan
from drcore.state import OperationView

console = Console()
err_console = Console(stderr=True)

STATE_STYLE = {
    "COMPLETED": "green",
    "RECOVERED": "green",
    "FAILED": "red",
    "CANCELLED": "yellow",
    "PAUSED": "yellow",
    "RUNNING": "cyan",
    "RECOVERING": "cyan",
    "PRE_HOOKS": "cyan",
    "POST_HOOKS": "cyan",
    "AWAITING_APPROVAL": "magenta",
}


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def status_json(view: OperationView) -> dict[str, Any]:
    data: dict[str, Any] = view.model_dump(mode="json")
    return data


def plan_json(plan: Plan) -> dict[str, Any]:
    data: dict[str, Any] = plan.model_dump(mode="json")
    data["expected_rto_minutes"] = plan.expected_rto_minutes
    data["resource_count"] = plan.resource_count
    for wave, model in zip(data["waves"], plan.waves, strict=True):
        wave["rto_target_minutes"] = model.rto_target_minutes
    return data


def styled(state: str) -> str:
    style = STATE_STYLE.get(state, "white")
    return f"[{style}]{state}[/{style}]"


def print_plan(plan: Plan) -> None:
    console.print(
        f"[bold]Plan[/bold] {plan.operation} of [bold]{plan.customer}/{plan.environment}[/bold] "
        f"— {plan.resource_count} resources in {len(plan.waves)} waves, "
        f"expected RTO ≤ {plan.expected_rto_minutes} min (source: {plan.plan_source}"
        + (
            f", cache age {plan.inventory_age_seconds // 60} min"
            if plan.inventory_age_seconds is not None
            else ""
        )
        + ")"
    )
    table = Table("Wave", "Resources", "Strategies", "RTO target", "First resources")
    for wave in plan.waves:
        strategies = sorted({r.strategy.value for r in wave.resources})
        names = ", ".join(r.name for r in wave.resources[:3])
        more = f" (+{len(wave.resources) - 3})" if len(wave.resources) > 3 else ""
        table.add_row(
            str(wave.number),
            str(len(wave.resources)),
            ", ".join(strategies),
            f"{wave.rto_target_minutes} min",
            names + more,
        )
    console.print(table)
    if plan.warnings:
        warnings = Table("Code", "Resource", "Message", title=f"{len(plan.warnings)} warning(s)")
        for warning in plan.warnings:
            warnings.add_row(
                f"[yellow]{warning.code}[/yellow]", warning.resource_id, warning.message
            )
        console.print(warnings)


def print_status(view: OperationView) -> None:
    console.print(
        f"[bold]{view.operation_id}[/bold] {view.operation} {view.customer}/{view.environment}: "
        f"{styled(view.state)}" + (f" — {view.reason}" if view.reason else "")
    )
    waves = Table("Wave", "State", "Recovered", "Failed", "Expected", "Started", "Completed")
    for wave in view.waves:
        waves.add_row(
            str(wave.number),
            styled(wave.state),
            str(wave.recovered),
            str(wave.failed),
            str(wave.expected),
            _time(wave.started_at),
            _time(wave.completed_at),
        )
    console.print(waves)
    failed = [r for r in view.resources if r.state == "FAILED"]
    if failed:
        table = Table("Resource", "Wave", "Code", "Error", title="Failed resources")
        for resource in failed:
            table.add_row(
                resource.name, str(resource.wave), resource.error_code or "", resource.error or ""
            )
        console.print(table)


def _time(value: Any) -> str:
    return value.strftime("%H:%M:%S") if value else "-"


def watch(
    read: Callable[[], OperationView | None],
    interval: float = 0.5,
    timeout: float | None = None,
    live: bool = True,
) -> OperationView | None:
    """Poll until the operation ends; with `live`, draw a progress bar per wave."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if not live:
        while True:
            latest = read()
            if (latest is not None and latest.terminal) or _expired(deadline):
                return latest
            time.sleep(interval)
    tasks: dict[int, TaskID] = {}
    view: OperationView | None = None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        waiting = progress.add_task("Waiting for the coordinator", total=None, state="")
        while True:
            view = read()
            if view is not None:
                progress.update(
                    waiting,
                    description=f"Operation {view.operation_id}",
                    state=styled(view.state),
                    total=1,
                    completed=1 if view.terminal else 0,
                )
                for wave in view.waves:
                    if wave.number not in tasks:
                        tasks[wave.number] = progress.add_task(
                            f"  Wave {wave.number}", total=wave.expected, state=""
                        )
                    failed = f" [red]{wave.failed} failed[/red]" if wave.failed else ""
                    progress.update(
                        tasks[wave.number],
                        completed=wave.recovered + wave.failed,
                        state=styled(wave.state) + failed,
                    )
                if view.terminal:
                    return view
            if _expired(deadline):
                return view
            time.sleep(interval)


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline
