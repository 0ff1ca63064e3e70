"""`drctl drill` (bubble tests) and `drctl failback`, and the drs side of `drctl status` / `plan`.

    drctl drill -c C -e E [--keep] [--wait]     a drill in the environment's bubble network; torn
                                                down at its end (`--keep`: kept for validation)
    drctl drill status OP                       the drill and its teardown
    drctl drill cleanup OP [--wait]             remove what `--keep` kept
    drctl failback -c C -e E [--wait]           back into the original primary instances, after
                                                per-server checks; then re-protection

Exit codes as everywhere: 0 success, 1 the operation (or its teardown / re-protection) ended
failed, cancelled or not ready, 2 bad usage or input.
"""

from __future__ import annotations

import getpass
import sys
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from drcore.state import OperationView
from events.schemas import OperationRequested, OperationType, Source, Strategy
from events.schemas.models import DrillCleanupRequested

from . import render
from .context import Context, UsageError

TEARDOWN_DONE = ("COMPLETED", "KEPT")
PROTECT_DONE = ("COMPLETED", "TIMED_OUT", "SKIPPED")
POLL_SECONDS = 0.5

drill_app = typer.Typer(
    help="Bubble-test drills: recover into the isolated bubble network, then tear down.",
    invoke_without_command=True,
    no_args_is_help=False,
)

OutputOption = Annotated[str, typer.Option("--output", "-o", help="text or json")]
TimeoutOption = Annotated[float, typer.Option(help="Seconds to wait with --wait")]


def _main() -> Any:
    from . import main

    return main


def _output(value: str) -> str:
    if value not in ("text", "json"):
        raise UsageError(f"--output {value!r} is not one of: text, json")
    return value


# --- drill ----------------------------------------------------------------------------------------


@drill_app.callback()
def drill(
    ctx: typer.Context,
    customer: Annotated[
        str | None, typer.Option("--customer", "-c", help="Customer name (tag Customer)")
    ] = None,
    environment: Annotated[
        str | None, typer.Option("--environment", "-e", help="Environment name")
    ] = None,
    keep: Annotated[
        bool,
        typer.Option(
            help="Keep the drill's instances for manual validation (remove them later "
            "with `drctl drill cleanup`; the janitor removes them after 8 h)"
        ),
    ] = False,
    wait: Annotated[bool, typer.Option(help="Follow the drill and its teardown")] = False,
    wave: Annotated[list[int] | None, typer.Option(help="Only these waves (repeatable)")] = None,
    force: Annotated[
        bool, typer.Option(help="Drill servers whose replication is stalled (last snapshot)")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (recorded for audit)")] = None,
    ticket: Annotated[str | None, typer.Option(help="Change ticket")] = None,
    requested_by: Annotated[str | None, typer.Option(help="Operator identity")] = None,
    output: OutputOption = "text",
    timeout: TimeoutOption = 6 * 3600,
) -> None:
    """Run a bubble-test drill of a customer environment (recovery instances in its isolated
    bubble network, never in production), torn down when it ends."""
    if ctx.invoked_subcommand is not None:
        return
    main = _main()
    context: Context = ctx.obj
    if not customer or not environment:
        main._fail_usage("drctl drill needs --customer and --environment (or a subcommand)")
        return
    scope = (customer, environment)
    main._guard(context, lambda: _output(output))
    entry = main._guard(context, lambda: context.resolve_scope(*scope))
    if wave and any(w < 1 for w in wave):
        main._fail_usage(f"--wave {min(wave)} is not a wave number (1 or more)")
    request = OperationRequested(
        operation_id=main.new_operation_id(customer),
        customer=customer,
        environment=environment,
        operation=OperationType.BUBBLE_TEST,
        requested_by=requested_by or getpass.getuser(),
        region_map=dict(entry.regions),
        wave_filter=wave or None,
        allow_data_loss=force,
        keep_drill_resources=keep,
        reason=reason,
        ticket=ticket,
    )
    main._guard(context, lambda: context.publisher().publish(Source.CLI, [request]))
    if not wait:
        _requested(request.operation_id, "drill", output)
        return
    _follow(context, request.operation_id, output, timeout, teardown=True)


@drill_app.command("status")
def drill_status(
    ctx: typer.Context,
    operation_id: Annotated[str, typer.Argument(help="Operation id of the drill")],
    output: OutputOption = "text",
) -> None:
    """Show a drill: waves, resources and its teardown."""
    context: Context = ctx.obj
    view = _view(context, operation_id)
    _show(context, view, _output_checked(context, output))
    teardown = drs_section(context, view).get("drs", {}).get("teardown", {})
    if view.state in ("FAILED", "CANCELLED") or teardown.get("state") not in (None, *TEARDOWN_DONE):
        raise typer.Exit(1)


@drill_app.command("cleanup")
def drill_cleanup(
    ctx: typer.Context,
    operation_id: Annotated[str, typer.Argument(help="Operation id of the drill")],
    wait: Annotated[bool, typer.Option(help="Wait until the teardown completed")] = False,
    requested_by: Annotated[str | None, typer.Option(help="Operator identity")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (recorded for audit)")] = None,
    output: OutputOption = "text",
    timeout: TimeoutOption = 3600,
) -> None:
    """Remove the recovery instances a drill kept (`--keep`)."""
    main = _main()
    context: Context = ctx.obj
    output = _output_checked(context, output)
    view = _view(context, operation_id)
    if view.operation != OperationType.BUBBLE_TEST.value:
        main._fail_usage(f"{operation_id} is a {view.operation}, not a drill (bubble-test)")
    if not view.terminal:
        main._fail_usage(
            f"{operation_id} is still {view.state}: its teardown runs when it ends "
            "(a cleanup now would cut the drill short)"
        )
    request = DrillCleanupRequested(
        operation_id=operation_id,
        customer=view.customer,
        environment=view.environment,
        operation=OperationType.BUBBLE_TEST,
        requested_by=requested_by or getpass.getuser(),
        reason=reason,
    )
    main._guard(context, lambda: context.publisher().publish(Source.CLI, [request]))
    if not wait:
        _requested(operation_id, "cleanup", output)
        return
    section = _wait_for(context, operation_id, "teardown", ("COMPLETED",), timeout)
    _show(context, view, output, section)
    if section.get("drs", {}).get("teardown", {}).get("state") != "COMPLETED":
        raise typer.Exit(1)


# --- failback -------------------------------------------------------------------------------------


def failback(
    ctx: typer.Context,
    customer: Annotated[str, typer.Option("--customer", "-c", help="Customer name")],
    environment: Annotated[str, typer.Option("--environment", "-e", help="Environment name")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    wait: Annotated[bool, typer.Option(help="Follow the failback, then its re-protection")] = False,
    no_reprotect: Annotated[
        bool,
        typer.Option(
            "--no-reprotect",
            help="Do not restore replication to the DR region afterwards (no next failover!)",
        ),
    ] = False,
    wave: Annotated[list[int] | None, typer.Option(help="Only these waves (repeatable)")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (recorded for audit)")] = None,
    ticket: Annotated[str | None, typer.Option(help="Change or incident ticket")] = None,
    requested_by: Annotated[str | None, typer.Option(help="Operator identity")] = None,
    output: OutputOption = "text",
    timeout: TimeoutOption = 6 * 3600,
) -> None:
    """Fail a customer environment back into its original primary instances, wave by wave,
    once every server's reverse replication is continuous (checked first, per server)."""
    main = _main()
    context: Context = ctx.obj
    output = _output_checked(context, output)
    entry = main._guard(context, lambda: context.resolve_scope(customer, environment))
    if wave and any(w < 1 for w in wave):
        main._fail_usage(f"--wave {min(wave)} is not a wave number (1 or more)")
    planned, checks = main._guard(
        context, lambda: _failback_checks(context, customer, environment, set(wave or []))
    )
    blocked = [c for c in checks if not c["ready"]]
    if blocked or not planned:
        _print_checks(checks, output, title="Failback preconditions")
        why = (
            f"{len(blocked)} of {len(checks)} servers are not ready"
            if blocked
            else "nothing to fail back (no DR-enabled resource in the plan)"
        )
        render.err_console.print(f"[red]failback refused:[/red] {why}")
        raise typer.Exit(1)
    env = entry.environment(environment)
    if env is not None and env.production and not yes:
        if not sys.stdin.isatty():
            main._fail_usage(
                f"{customer}/{environment} is production: pass --yes to confirm the failback"
            )
        typer.confirm(
            f"Fail PRODUCTION {customer}/{environment} back to {entry.primary_region}?",
            abort=True,
        )
    request = OperationRequested(
        operation_id=main.new_operation_id(customer),
        customer=customer,
        environment=environment,
        operation=OperationType.FAILBACK,
        requested_by=requested_by or getpass.getuser(),
        region_map=dict(entry.regions),
        wave_filter=wave or None,
        reprotect=not no_reprotect,
        reason=reason,
        ticket=ticket,
    )
    main._guard(context, lambda: context.publisher().publish(Source.CLI, [request]))
    if not wait:
        _requested(request.operation_id, "failback", output)
        return
    _follow(context, request.operation_id, output, timeout, reprotect=not no_reprotect)


def _failback_checks(
    context: Context, customer: str, environment: str, waves: set[int]
) -> tuple[int, list[dict[str, Any]]]:
    """How many resources the failback plan holds, and the DRS servers' readiness checks (the
    other strategies check their own readiness when their wave starts)."""
    from services.discovery.app import UnknownScope, build_plan_for
    from services.drs.app import plan_readiness

    try:
        plan = build_plan_for(
            customer, environment, OperationType.FAILBACK, context.clients, context.settings
        )
    except UnknownScope as error:
        raise UsageError(str(error)) from error
    if waves:
        plan = plan.model_copy(update={"waves": [w for w in plan.waves if w.number in waves]})
    planned = sum(len(w.resources) for w in plan.waves)
    return planned, [r.model_dump() for r in plan_readiness(plan, context.clients)]


# --- the drs side of status and plan --------------------------------------------------------------


def drs_section(context: Context, view: OperationView) -> dict[str, Any]:
    """{"drs": {...}} for an operation (teardown, re-protection), {} when there is nothing."""
    from services.drs.app import operation_records, status_of

    records = operation_records(
        context.clients, context.settings.operations_table, view.operation_id
    )
    section = status_of(records)
    return {"drs": section} if section else {}


def print_drs_section(section: dict[str, Any]) -> None:
    drs = section.get("drs", {})
    teardown = drs.get("teardown")
    if teardown:
        state = teardown["state"]
        line = f"Drill teardown: {render.styled(state)} ({teardown['trigger']})"
        if state == "KEPT":
            line += f" — {teardown['kept']} instance(s) kept until {teardown['expires_at']}"
            line += "; remove them with `drctl drill cleanup`"
        else:
            line += f" — {teardown['terminated']} recovery instance(s) terminated"
            line += f" in {len(teardown['terminate_jobs'])} TerminateRecoveryInstances job(s)"
            if teardown["templates_restored"]:
                line += f", {teardown['templates_restored']} launch template(s) restored"
        render.console.print(line)
    protect = drs.get("reprotect")
    if protect:
        states = ", ".join(f"{n} {s}" for s, n in protect["by_state"].items()) or "none"
        render.console.print(
            f"Reverse replication to {protect['target_region'] or '-'}: "
            f"{render.styled(protect['state'])} — {protect['continuous']}/{protect['servers']} "
            f"continuous ({states})"
        )
        for failure in protect["failures"]:
            render.console.print(
                f"  [red]{failure['code']}[/red] {failure['resource_id']}: {failure['error']}"
            )


def plan_checks(context: Context, plan: Any) -> list[dict[str, Any]]:
    """Readiness of the plan's DRS servers for its operation (what its parts would check)."""
    from services.drs.app import plan_readiness

    return [r.model_dump() for r in plan_readiness(plan, context.clients)]


def print_checks(checks: list[dict[str, Any]]) -> None:
    _print_checks(checks, "text", title="DRS readiness")


def _print_checks(checks: list[dict[str, Any]], output: str, title: str) -> None:
    if output == "json":
        render.print_json({"readiness": checks})
        return
    if not checks:
        return
    ready = sum(1 for c in checks if c["ready"])
    table = Table(
        "Wave", "Server", "Ready", "Code", "Detail", title=f"{title}: {ready}/{len(checks)}"
    )
    for check in checks:
        detail = check["message"] or "; ".join(check["warnings"])
        table.add_row(
            str(check["wave"]),
            check["name"],
            "[green]yes[/green]" if check["ready"] else "[red]no[/red]",
            check["code"] or "",
            detail,
        )
    render.console.print(table)


# --- helpers --------------------------------------------------------------------------------------


class _Paused(Exception):
    def __init__(self, view: OperationView) -> None:
        super().__init__(view.state)
        self.view = view


def _output_checked(context: Context, output: str) -> str:
    result: str = _main()._guard(context, lambda: _output(output))
    return result


def _requested(operation_id: str, what: str, output: str) -> None:
    if output == "json":
        render.print_json({"operation_id": operation_id, "state": "REQUESTED"})
    else:
        render.console.print(
            f"Requested {what} [bold]{operation_id}[/bold]; "
            f"follow it with `drctl watch {operation_id}`"
        )


def _view(context: Context, operation_id: str) -> OperationView:
    main = _main()
    view: OperationView | None = main._read(context, operation_id)
    if view is None:
        main._fail_usage(f"unknown operation {operation_id!r}")
    assert view is not None
    return view


def _show(
    context: Context, view: OperationView, output: str, section: dict[str, Any] | None = None
) -> None:
    section = drs_section(context, view) if section is None else section
    if output == "json":
        render.print_json(render.status_json(view) | section)
    else:
        render.print_status(view)
        print_drs_section(section)


def _wait_for(
    context: Context, operation_id: str, key: str, states: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    """Poll the drs section until `key` (teardown, reprotect) reaches one of `states`."""
    deadline = time.monotonic() + timeout
    view = _view(context, operation_id)
    while True:
        section = drs_section(context, view)
        state = section.get("drs", {}).get(key, {}).get("state")
        if state in states or time.monotonic() > deadline:
            return section
        time.sleep(POLL_SECONDS)


def _follow(
    context: Context,
    operation_id: str,
    output: str,
    timeout: float,
    *,
    teardown: bool = False,
    reprotect: bool = False,
) -> None:
    main = _main()
    deadline = time.monotonic() + timeout
    live = output == "text"

    def read() -> OperationView | None:
        view: OperationView | None = main._read(context, operation_id)
        if view is not None and view.state == "PAUSED":
            raise _Paused(view)  # the operator's turn: resume or abort
        return view

    try:
        view = render.watch(read, timeout=timeout, live=live)
    except _Paused as paused:
        _show(context, paused.view, output)
        render.err_console.print(
            f"[yellow]{operation_id} is PAUSED[/yellow]: `drctl resume` or `drctl abort` it"
        )
        raise typer.Exit(1) from None
    if view is None:
        main._fail_usage(f"operation {operation_id} was not accepted within {timeout:.0f} s")
    assert view is not None
    section: dict[str, Any] = {}
    failed = not view.terminal or view.state in ("FAILED", "CANCELLED")
    left = max(0.0, deadline - time.monotonic())
    # Teardown and re-protection are DRS work: an operation without DRS servers has none.
    drs_work = any(r.strategy == Strategy.DRS for r in view.resources)
    if view.terminal and teardown and drs_work:
        section = _wait_for(context, operation_id, "teardown", TEARDOWN_DONE, left)
        failed |= section.get("drs", {}).get("teardown", {}).get("state") not in TEARDOWN_DONE
    elif view.terminal and reprotect and drs_work and view.state == "COMPLETED":
        section = _wait_for(context, operation_id, "reprotect", PROTECT_DONE, left)
        failed |= section.get("drs", {}).get("reprotect", {}).get("state") != "COMPLETED"
    _show(context, view, output, section or None)
    if not view.terminal:
        render.err_console.print(f"[yellow]still {view.state} after {timeout:.0f} s[/yellow]")
    if failed:
        raise typer.Exit(1)
