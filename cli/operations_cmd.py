"""`drctl approve | reject | resume | abort`, the approval default shown by `drctl plan`, what
`drctl status` adds (approvals, hooks, pause, children of a regional operation), and the
regional request of `drctl failover --all-customers --region R`.

Each command publishes one event for the coordinator (`ApprovalGranted` / `ApprovalRejected` from
`dr.approval`; `OperationResumeRequested` / `OperationCancelRequested` from `dr.cli`) and then
reads the coordinator's verdict back: an approval applied (exit 0) or refused with its reason
(exit 2), a resume or abort taken (exit 0), no answer in time (exit 1).
"""

from __future__ import annotations

import getpass
import sys
import time
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table

from drcore.state import OperationState
from events.schemas import (
    ALL_CUSTOMERS,
    ApprovalGranted,
    ApprovalRejected,
    OperationCancelRequested,
    OperationRequested,
    OperationResumeRequested,
    OperationType,
    ResumeMode,
    Source,
)
from events.schemas.models import utc_now
from events.schemas.names import ALL_ENVIRONMENTS
from services.coordinator.approvals import default_approval_mode
from services.coordinator.domain import WavePhase, to_millis
from services.coordinator.views import OperationDetails, read_details

from . import render
from .context import Context, UsageError

VERDICT_POLL_SECONDS = 0.3

OperationArgument = Annotated[str, typer.Argument(help="Operation id")]
WaveOption = Annotated[int, typer.Option("--wave", "-w", min=1, help="The wave awaiting approval")]
TokenOption = Annotated[
    str,
    typer.Option(
        "--token",
        envvar="DRCTL_APPROVAL_TOKEN",
        help="The one-time token of the approval request (SNS notification)",
    ),
]
ByOption = Annotated[str | None, typer.Option("--by", help="Your identity (default: login)")]
TimeoutOption = Annotated[float, typer.Option(help="Seconds to wait for the coordinator")]


class Output(StrEnum):
    TEXT = "text"
    JSON = "json"


OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="text for people, json for scripts")
]


# --- reading ---------------------------------------------------------------------------------


def operation_details(context: Context, operation_id: str) -> OperationDetails:
    from .main import _guard

    found: OperationDetails | None = _guard(
        context, lambda: read_details(context.table(), operation_id)
    )
    if found is None:
        _usage(f"unknown operation {operation_id!r}")
    return found


def details_json(details: OperationDetails) -> dict[str, Any]:
    data: dict[str, Any] = details.model_dump(mode="json", exclude={"operation_id"})
    return data


def print_details(details: OperationDetails) -> None:
    """The coordinator's part of `drctl status`: approvals, hooks, pauses, children."""
    console = render.console
    console.print(
        f"Approval mode: [bold]{details.approval_mode}[/bold] "
        f"(chosen by {details.approval_mode_chosen_by or 'each operation'})"
    )
    if details.parent_operation_id:
        console.print(f"Part of regional operation {details.parent_operation_id}")
    if details.paused_wave:
        console.print(
            f"[yellow]Paused on wave {details.paused_wave}[/yellow]: "
            f"drctl resume {details.operation_id} --retry-failed | --skip-failed, "
            f"or drctl abort {details.operation_id}"
        )
    if details.cancelled_by:
        console.print(f"Cancelled by {details.cancelled_by}")
    for wave in details.wave_runs:
        if wave.attempt > 1 or wave.failures_accepted_by:
            accepted = (
                f"; failures accepted by {wave.failures_accepted_by}"
                if wave.failures_accepted_by
                else ""
            )
            console.print(f"Wave {wave.wave}: attempt {wave.attempt}{accepted}")
    if details.approvals:
        table = Table("Wave", "Decision", "By", "At", "Requested", "Notices", title="Approvals")
        for approval in details.approvals:
            waiting = approval.wave_state == WavePhase.AWAITING_APPROVAL
            decision = approval.decision or ("[magenta]waiting[/magenta]" if waiting else "-")
            table.add_row(
                str(approval.wave),
                decision,
                approval.decided_by or "-",
                _at(approval.decided_at),
                _at(approval.requested_at),
                str(approval.notifications),
            )
        console.print(table)
        refused = [(a.wave, r) for a in details.approvals for r in a.refused]
        if refused:
            table = Table("Wave", "At", "By", "Code", "Reason", title="Refused decisions")
            for number, refusal in refused:
                table.add_row(
                    str(number), _at(refusal.at), refusal.approver, refusal.code, refusal.reason
                )
            console.print(table)
    if details.hooks:
        table = Table(
            "Wave", "Hook", "Run", "Document", "Status", "Started", "Ended", title="Hooks"
        )
        for hook in details.hooks:
            status = hook.status or "[cyan]running[/cyan]"
            if hook.failure_message:
                status += f": {hook.failure_message}"
            table.add_row(
                str(hook.wave),
                hook.phase,
                str(hook.attempt),
                hook.document_name,
                status,
                _at(hook.started_at),
                _at(hook.ended_at),
            )
        console.print(table)
    if details.children:
        table = Table(
            "Operation",
            "Customer",
            "Environment",
            "State",
            "Wave",
            "Recovered",
            "Failed",
            title=f"{len(details.children)} operation(s) of the region",
        )
        for child in details.children:
            table.add_row(
                child.operation_id,
                child.customer,
                child.environment,
                render.styled(child.state),
                str(child.current_wave or "-"),
                f"{child.recovered}/{child.expected}",
                str(child.failed),
            )
        console.print(table)


def approval_default(
    context: Context, customer: str, environment: str, operation: OperationType
) -> dict[str, Any]:
    """The approval mode a request without `--approval` gets, and why (for `drctl plan`)."""
    entry = context.resolve_scope(customer, environment)
    env = entry.environment(environment)
    mode, why = default_approval_mode(operation, env.production if env else None)
    return {"approval_mode": mode.value, "approval_mode_reason": why}


def print_approval_default(approval: dict[str, Any]) -> None:
    render.console.print(
        f"Approval: [bold]{approval['approval_mode']}[/bold] ({approval['approval_mode_reason']}; "
        "override with --approval required|first-wave|none)"
    )


# --- the regional request ----------------------------------------------------------------------


def regional_request(
    context: Context,
    region: str,
    environment: str | None,
    operation: OperationType,
    yes: bool,
    **fields: Any,
) -> OperationRequested:
    """One request for every customer (+ environment) whose primary region is `region`."""
    customers = context.customers()
    in_region = [c for c in customers.values() if region in c.regions]
    if not in_region:
        known = sorted({r for c in customers.values() for r in c.regions}) or ["(none)"]
        raise UsageError(f"no customer has primary region {region!r}; known: {', '.join(known)}")
    scopes = [
        (c.name, e)
        for c in in_region
        for e in c.environments
        if environment in (None, ALL_ENVIRONMENTS, e.name)
    ]
    if not scopes:
        raise UsageError(f"no customer in {region} has an environment {environment!r}")
    production = sorted(f"{c}/{e.name}" for c, e in scopes if e.production)
    if production and not fields.get("dry_run") and not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"{len(production)} production environment(s) in {region}: pass --yes to confirm"
            )
        typer.confirm(
            f"Fail over {len(scopes)} environment(s) of {len(in_region)} customer(s) in "
            f"{region}, {len(production)} of them PRODUCTION?",
            abort=True,
        )
    from .main import new_operation_id

    dr_regions = sorted({c.regions[region] for c in in_region})
    return OperationRequested(
        operation_id=new_operation_id(f"all-{region}"),
        customer=ALL_CUSTOMERS,
        environment=environment or ALL_ENVIRONMENTS,
        operation=operation,
        region_map={region: dr_regions[0]},
        **fields,
    )


# --- commands --------------------------------------------------------------------------------


def approve(
    ctx: typer.Context,
    operation_id: OperationArgument,
    wave: WaveOption,
    token: TokenOption,
    comment: Annotated[str | None, typer.Option(help="Recorded with the approval")] = None,
    by: ByOption = None,
    timeout: TimeoutOption = 30,
    output: OutputOption = Output.TEXT,
) -> None:
    """Approve a wave that awaits approval, with the token of its notification."""
    _decide(ctx, operation_id, wave, token, by, timeout, output, granted=True, note=comment)


def reject(
    ctx: typer.Context,
    operation_id: OperationArgument,
    wave: WaveOption,
    token: TokenOption,
    reason: Annotated[
        str | None, typer.Option(help="Why (recorded; the operation is cancelled)")
    ] = None,
    by: ByOption = None,
    timeout: TimeoutOption = 30,
    output: OutputOption = Output.TEXT,
) -> None:
    """Reject a wave that awaits approval: the operation ends CANCELLED."""
    _decide(ctx, operation_id, wave, token, by, timeout, output, granted=False, note=reason)


def _decide(
    ctx: typer.Context,
    operation_id: str,
    wave: int,
    token: str,
    by: str | None,
    timeout: float,
    output: Output,
    *,
    granted: bool,
    note: str | None,
) -> None:
    from .main import _guard, _read

    context: Context = ctx.obj
    view = _read(context, operation_id)
    if view is None:
        _usage(f"unknown operation {operation_id!r}")
    if len(token) < 8:
        _usage(f"--token {token!r} is not an approval token")
    approver = by or getpass.getuser()
    header: dict[str, Any] = {
        "operation_id": operation_id,
        "customer": view.customer,
        "environment": view.environment,
        "operation": view.operation,
        "occurred_at": to_millis(utc_now()),
        "wave": wave,
        "token": token,
        "approver": approver,
    }
    event = (
        ApprovalGranted(**header, comment=note)
        if granted
        else ApprovalRejected(**header, reason=note)
    )
    _guard(context, lambda: context.publisher().publish(Source.APPROVAL, [event]))

    def verdict() -> dict[str, Any] | None:
        # This very decision (its time and author), applied or refused.
        details = operation_details(context, operation_id)
        mine = (approver, event.occurred_at)
        for approval in details.approvals:
            for refusal in approval.refused:
                if (refusal.approver, refusal.event_at) == mine:
                    return {"applied": False, "code": refusal.code, "reason": refusal.reason}
            if approval.wave == wave and (approval.decided_by, approval.decision_event_at) == mine:
                return {"applied": True, "decision": approval.decision, "wave": wave}
        return None

    result = _wait(verdict, timeout)
    word = "approval" if granted else "rejection"
    if result is None:
        _report(
            output,
            {"applied": None, "wave": wave},
            f"[yellow]no verdict on the {word} within {timeout:.0f} s[/yellow] "
            f"(it is on the bus; see drctl status {operation_id})",
        )
        raise typer.Exit(1)
    if not result["applied"]:
        _report(
            output,
            result,
            f"[red]{word} refused[/red]: {result['code']}: {result['reason']}",
            err=True,
        )
        raise typer.Exit(2)
    then = "recovers" if granted else "is cancelled: the operation ends CANCELLED"
    _report(output, result, f"Wave {wave} of {operation_id} {result['decision']}: it {then}")


def resume(
    ctx: typer.Context,
    operation_id: OperationArgument,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Run again only what failed in the wave")
    ] = False,
    skip_failed: Annotated[
        bool, typer.Option("--skip-failed", help="Accept the failures and go on")
    ] = False,
    by: ByOption = None,
    wait: Annotated[bool, typer.Option(help="Follow the operation until it ends")] = False,
    timeout: TimeoutOption = 30,
    output: OutputOption = Output.TEXT,
) -> None:
    """Resume a paused operation: retry what failed, or accept the failures and go on."""
    from .main import Output as MainOutput
    from .main import _follow, _guard, _read

    context: Context = ctx.obj
    if retry_failed == skip_failed:
        _usage("pass exactly one of --retry-failed or --skip-failed")
    mode = ResumeMode.RETRY_FAILED if retry_failed else ResumeMode.SKIP_FAILED
    view = _read(context, operation_id)
    if view is None:
        _usage(f"unknown operation {operation_id!r}")
    details = operation_details(context, operation_id)
    paused = [c.operation_id for c in details.children if c.state == OperationState.PAUSED]
    if view.state != OperationState.PAUSED and not paused:
        _usage(f"{operation_id} is {view.state}, not paused: nothing to resume")
    request = OperationResumeRequested(
        operation_id=operation_id,
        customer=view.customer,
        environment=view.environment,
        operation=OperationType(view.operation),
        requested_by=by or getpass.getuser(),
        mode=mode,
    )
    _guard(context, lambda: context.publisher().publish(Source.CLI, [request]))
    watched = paused or [operation_id]

    def resumed() -> bool | None:
        states = [_read(context, op) for op in watched]
        return all(v is not None and v.state != OperationState.PAUSED for v in states) or None

    if _wait(resumed, timeout) is None:
        _report(output, {"resumed": False}, f"[yellow]still paused after {timeout:.0f} s")
        raise typer.Exit(1)
    if wait:
        _follow(context, operation_id, MainOutput(output.value), 6 * 3600)
        return
    _report(
        output,
        {"resumed": True, "mode": mode.value, "operations": watched},
        f"Resumed {', '.join(watched)} ({mode.value}); follow with drctl watch {operation_id}",
    )


def abort(
    ctx: typer.Context,
    operation_id: OperationArgument,
    reason: Annotated[str | None, typer.Option(help="Why (recorded)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    by: ByOption = None,
    wait: Annotated[
        bool, typer.Option(help="Wait until what was in flight has finished and is recorded")
    ] = False,
    timeout: TimeoutOption = 30,
    output: OutputOption = Output.TEXT,
) -> None:
    """Abort an operation: nothing new starts; what is in flight finishes and is recorded."""
    from .main import _guard, _read

    context: Context = ctx.obj
    view = _read(context, operation_id)
    if view is None:
        _usage(f"unknown operation {operation_id!r}")
    if view.terminal:
        _usage(f"{operation_id} already ended {view.state}")
    if not yes:
        if not sys.stdin.isatty():
            _usage(f"pass --yes to abort {operation_id} ({view.state})")
        typer.confirm(f"Abort {view.operation} {operation_id} ({view.state})?", abort=True)
    request = OperationCancelRequested(
        operation_id=operation_id,
        customer=view.customer,
        environment=view.environment,
        operation=OperationType(view.operation),
        requested_by=by or getpass.getuser(),
        reason=reason,
    )
    _guard(context, lambda: context.publisher().publish(Source.CLI, [request]))

    def taken() -> OperationDetails | None:
        current = operation_details(context, operation_id)
        if wait:
            return current if current.ended else None
        latest = _read(context, operation_id)
        cancelling = latest is not None and latest.state == OperationState.CANCELLED
        return current if cancelling or current.ended else None

    details = _wait(taken, timeout)
    if details is None:
        _report(output, {"cancelled": False}, f"[yellow]not cancelled within {timeout:.0f} s")
        raise typer.Exit(1)
    latest = _read(context, operation_id)
    in_flight = [w.wave for w in details.wave_runs if w.state == WavePhase.RECOVERING]
    note = (
        f"; wave(s) {', '.join(map(str, in_flight))} still finishing: their results are recorded"
        if in_flight and not details.ended
        else ""
    )
    _report(
        output,
        {"cancelled": True, "state": latest.state if latest else None, "ended": details.ended},
        f"{operation_id} {render.styled('CANCELLED')}{note}",
    )


COMMANDS = (approve, reject, resume, abort)


# --- helpers -------------------------------------------------------------------------------------


def _wait(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None or time.monotonic() > deadline:
            return result
        time.sleep(VERDICT_POLL_SECONDS)


def _report(output: Output, data: dict[str, Any], text: str, err: bool = False) -> None:
    if output is Output.JSON:
        render.print_json(data)
    else:
        (render.err_console if err else render.console).print(text)


def _usage(message: str) -> NoReturn:
    from .main import _fail_usage

    _fail_usage(message)


def _at(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def wave_numbers(waves: list[int] | None, listed: str | None) -> list[int] | None:
    """`--wave 1 --wave 2` and `--waves 1,2` together (None: every wave)."""
    numbers = list(waves or [])
    for part in filter(None, (p.strip() for p in (listed or "").split(","))):
        if not part.isdigit():
            _usage(f"--waves {listed!r}: {part!r} is not a wave number")
        numbers.append(int(part))
    return sorted(set(numbers)) or None


def regional_failover(
    ctx: typer.Context,
    region: str | None,
    environment: str | None,
    *,
    yes: bool,
    wait: bool,
    output: str,
    timeout: float,
    **fields: Any,
) -> None:
    """`drctl failover --all-customers --region R`: one request; the coordinator makes one
    operation per customer + environment of the region and runs them concurrently."""
    from .main import Output as MainOutput
    from .main import _follow, _guard

    context: Context = ctx.obj
    if not region:
        _usage("--all-customers needs --region: the primary region in outage")
    request = _guard(
        context,
        lambda: regional_request(
            context, region, environment, OperationType.FAILOVER, yes, **fields
        ),
    )
    _guard(context, lambda: context.publisher().publish(Source.CLI, [request]))
    if wait:
        _follow(context, request.operation_id, MainOutput(output), timeout)
        return
    _report(
        Output(output),
        {"operation_id": request.operation_id, "state": "REQUESTED", "regional": True},
        f"Requested the failover of every customer in {region} as [bold]{request.operation_id}"
        f"[/bold]; follow it with `drctl watch {request.operation_id}` (drctl status lists "
        "each customer's operation)",
    )
