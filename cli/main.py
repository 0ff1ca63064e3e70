"""drctl: plan, start and follow DR operations (DESIGN §8).

Exit codes: 0 success; 1 the operation ended FAILED or CANCELLED; 2 bad usage or invalid input
(the message names the bad value).
"""

from __future__ import annotations

import getpass
import secrets
import sys
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from drcore.state import OperationView, read_operation
from events.schemas import ALL_CUSTOMERS, ApprovalMode, OperationRequested, OperationType, Source

from . import demo as _demo  # noqa: F401  (registers `drctl sandbox demo`)
from . import drs_cmd, inventory_cmd, operations_cmd, readiness_cmd, render, report_cmd
from .context import Context, Target, UsageError
from .sandbox_cmd import sandbox_app

app = typer.Typer(
    name="drctl",
    help="Disaster-recovery orchestration for AWS: plan, fail over and follow operations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(sandbox_app, name="sandbox")
app.command()(report_cmd.report)
app.command()(report_cmd.audit)
for _operator_command in operations_cmd.COMMANDS:  # approve, reject, resume, abort
    app.command()(_operator_command)
app.add_typer(inventory_cmd.inventory_app, name="inventory")
app.command()(readiness_cmd.readiness)
app.add_typer(drs_cmd.drill_app, name="drill")
app.command()(drs_cmd.failback)


class Output(StrEnum):
    TEXT = "text"
    JSON = "json"


OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="text for people, json for scripts")
]
CustomerOption = Annotated[
    str, typer.Option("--customer", "-c", help="Customer name (tag Customer)")
]
EnvironmentOption = Annotated[
    str, typer.Option("--environment", "-e", help="Environment name (tag Environment)")
]
UseCachedInventoryOption = Annotated[
    bool,
    typer.Option(
        "--use-cached-inventory",
        help="Plan from the DR-region inventory cache, not the live APIs (primary region down)",
    ),
]


@app.callback()
def main(
    ctx: typer.Context,
    target: Annotated[
        Target,
        typer.Option(envvar="DRCTL_TARGET", help="sandbox (local endpoint, the default) or aws"),
    ] = Target.SANDBOX,
    endpoint_url: Annotated[
        str | None, typer.Option(help="AWS endpoint override (default for sandbox: :4566)")
    ] = None,
) -> None:
    ctx.obj = Context.create(target, endpoint_url)


def _fail_usage(message: str) -> NoReturn:
    render.err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _guard(ctx: Context, action: Any) -> Any:
    """Run an action, turning bad input and unreachable endpoints into exit code 2."""
    try:
        return action()
    except UsageError as error:
        _fail_usage(str(error))
    except EndpointConnectionError:
        hint = " — start it with `drctl sandbox up`" if ctx.target is Target.SANDBOX else ""
        _fail_usage(f"cannot reach the AWS endpoint {ctx.endpoint_url or '(default)'}{hint}")
    except (ClientError, BotoCoreError) as error:
        _fail_usage(str(error))


def new_operation_id(customer: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    safe = "".join(ch if ch.isalnum() else "-" for ch in customer)[:20].strip("-") or "op"
    return f"op-{stamp}-{safe}-{secrets.token_hex(3)}"


@app.command()
def plan(
    ctx: typer.Context,
    customer: CustomerOption,
    environment: EnvironmentOption,
    operation: Annotated[
        OperationType, typer.Option(help="Operation to plan")
    ] = OperationType.FAILOVER,
    output: OutputOption = Output.TEXT,
    use_cached_inventory: UseCachedInventoryOption = False,
) -> None:
    """Preview an operation: waves, resources, warnings and expected RTO. Starts nothing."""
    context: Context = ctx.obj

    def build() -> Any:
        from services.discovery.app import DiscoveryUnavailable, UnknownScope, build_plan_for

        try:
            return build_plan_for(
                customer,
                environment,
                operation,
                context.clients,
                context.settings,
                use_cached_inventory=use_cached_inventory,
            )
        except UnknownScope as error:
            raise UsageError(str(error)) from error
        except DiscoveryUnavailable as error:
            render.err_console.print(f"[red]error:[/red] no inventory source answered: {error}")
            raise typer.Exit(1) from error

    result = _guard(context, build)
    approval = _guard(
        context,
        lambda: operations_cmd.approval_default(context, customer, environment, operation),
    )
    checks = _guard(context, lambda: drs_cmd.plan_checks(context, result))  # DRS readiness
    if output is Output.JSON:
        render.print_json(
            render.plan_json(result) | approval | ({"readiness": checks} if checks else {})
        )
    else:
        render.print_plan(result)
        operations_cmd.print_approval_default(approval)
        drs_cmd.print_checks(checks)


@app.command()
def failover(
    ctx: typer.Context,
    customer: CustomerOption = "",
    environment: EnvironmentOption = "",
    approval: Annotated[
        ApprovalMode | None,
        typer.Option(help="Approval gates (default: required for production, else none)"),
    ] = None,
    waves: Annotated[str | None, typer.Option(help="Only these waves: 1,2")] = None,
    all_customers: Annotated[
        bool, typer.Option("--all-customers", help="Every customer of --region (outage)")
    ] = False,
    region: Annotated[str | None, typer.Option(help="Primary region in outage")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    wait: Annotated[bool, typer.Option(help="Follow the operation until it ends")] = False,
    output: OutputOption = Output.TEXT,
    wave: Annotated[list[int] | None, typer.Option(help="Only these waves (repeatable)")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (recorded for audit)")] = None,
    ticket: Annotated[str | None, typer.Option(help="Change or incident ticket")] = None,
    dry_run: Annotated[bool, typer.Option(help="Plan and record, recover nothing")] = False,
    requested_by: Annotated[str | None, typer.Option(help="Operator identity")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait")] = 6 * 3600,
    use_cached_inventory: UseCachedInventoryOption = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            "--allow-data-loss",
            help="Unplanned failover: accept lag over RPO / stalled replication, and forced "
            "SQL Server AG failover (possible data loss)",
        ),
    ] = False,
    no_reprotect: Annotated[
        bool, typer.Option("--no-reprotect", help="Do not reverse replication afterwards")
    ] = False,
) -> None:
    """Fail a customer environment over to its DR region, wave by wave (or, with
    --all-customers --region R, every customer environment of a region in outage)."""
    context: Context = ctx.obj
    wave = operations_cmd.wave_numbers(wave, waves)
    if all_customers or customer == ALL_CUSTOMERS:
        operations_cmd.regional_failover(
            ctx,
            region,
            environment or None,
            yes=yes,
            wait=wait,
            output=output.value,
            timeout=timeout,
            requested_by=requested_by or getpass.getuser(),
            approval_mode=approval,
            wave_filter=wave,
            dry_run=dry_run,
            reason=reason,
            ticket=ticket,
            use_cached_inventory=use_cached_inventory,
            allow_data_loss=force,
            reprotect=not no_reprotect,
        )
        return
    if not customer or not environment:
        _fail_usage("--customer and --environment are required (or --all-customers --region R)")
    entry = _guard(context, lambda: context.resolve_scope(customer, environment))
    env = entry.environment(environment)
    if wave and any(w < 1 for w in wave):
        _fail_usage(f"--wave {min(wave)} is not a wave number (1 or more)")
    if env is not None and env.production and not dry_run and not yes:
        if not sys.stdin.isatty():
            _fail_usage(
                f"{customer}/{environment} is production: pass --yes to confirm the failover"
            )
        typer.confirm(
            f"Fail over PRODUCTION {customer}/{environment} to {entry.dr_region}?", abort=True
        )
    request = OperationRequested(
        operation_id=new_operation_id(customer),
        customer=customer,
        environment=environment,
        operation=OperationType.FAILOVER,
        approval_mode=approval,
        requested_by=requested_by or getpass.getuser(),
        region_map=dict(entry.regions),
        wave_filter=wave or None,
        dry_run=dry_run,
        reason=reason,
        ticket=ticket,
        use_cached_inventory=use_cached_inventory,
        allow_data_loss=force,
        reprotect=not no_reprotect,
    )
    _guard(context, lambda: context.publisher().publish(Source.CLI, [request]))
    if not wait:
        if output is Output.JSON:
            render.print_json({"operation_id": request.operation_id, "state": "REQUESTED"})
        else:
            render.console.print(
                f"Requested failover [bold]{request.operation_id}[/bold]; "
                f"follow it with `drctl watch {request.operation_id}`"
            )
        return
    # Where the plan came from and how old the cache is, before the waves run (stderr).
    planned = _guard(context, lambda: inventory_cmd.wait_for_plan(context, request.operation_id))
    if planned is not None:
        inventory_cmd.print_plan_notice(planned)
    notice = inventory_cmd.plan_notice(planned) if planned is not None else None
    _follow(context, request.operation_id, output, timeout, plan=notice)


# How long `watch` waits for a just-requested operation to be recorded.
RECORDING_GRACE_SECONDS = 30.0


@app.command()
def status(
    ctx: typer.Context,
    operation_id: Annotated[str, typer.Argument(help="Operation id")],
    output: OutputOption = Output.TEXT,
) -> None:
    """Show an operation: state, waves and resources."""
    context: Context = ctx.obj
    view = _read(context, operation_id)
    if view is None:
        _fail_usage(f"unknown operation {operation_id!r}")
    details = operations_cmd.operation_details(context, operation_id)
    drs = _guard(context, lambda: drs_cmd.drs_section(context, view))  # teardown, re-protection
    if output is Output.JSON:
        render.print_json(render.status_json(view) | operations_cmd.details_json(details) | drs)
    else:
        render.print_status(view)
        operations_cmd.print_details(details)
        drs_cmd.print_drs_section(drs)
    _exit_for(view)


@app.command()
def watch(
    ctx: typer.Context,
    operation_id: Annotated[str, typer.Argument(help="Operation id")],
    output: OutputOption = Output.TEXT,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 6 * 3600,
) -> None:
    """Follow an operation live until it ends (a just-requested one: once it is recorded)."""
    context: Context = ctx.obj
    # An operation requested a moment ago is recorded within seconds, later when its first
    # delivery to the coordinator failed and is redelivered: wait that long before calling the
    # id unknown.
    grace = min(timeout, RECORDING_GRACE_SECONDS)
    deadline = time.monotonic() + grace
    while _read(context, operation_id) is None:
        if time.monotonic() >= deadline:
            _fail_usage(f"unknown operation {operation_id!r} (not recorded after {grace:.0f} s)")
        time.sleep(0.5)
    _follow(context, operation_id, output, timeout)


@app.command(name="list")
def list_operations(
    ctx: typer.Context,
    customer: CustomerOption,
    environment: EnvironmentOption,
    output: OutputOption = Output.TEXT,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    state: Annotated[
        str | None, typer.Option(help="Only operations in this state (e.g. PAUSED)")
    ] = None,
) -> None:
    """List recent operations of a customer environment, newest first."""
    from drcore.state import list_operations as query

    context: Context = ctx.obj
    _guard(context, lambda: context.resolve_scope(customer, environment))
    items = _guard(context, lambda: query(context.table(), customer, environment, limit))
    rows = [
        {
            k: item.get(k)
            for k in ("operation_id", "operation", "state", "created_at", "requested_by")
        }
        for item in items
        if state is None or str(item.get("state")).upper() == state.upper()
    ]
    if output is Output.JSON:
        render.print_json(rows)
        return
    from rich.table import Column, Table

    table = Table("Type", "State", "Created", "Requested by")
    table.columns.insert(0, Column("Operation", no_wrap=True))
    for row in rows:
        table.add_row(
            row["operation_id"],
            row["operation"],
            render.styled(row["state"]),
            str(row["created_at"]),
            str(row["requested_by"]),
        )
    render.console.print(table)


def _read(context: Context, operation_id: str) -> OperationView | None:
    table = _guard(context, context.table)
    result: OperationView | None = _guard(context, lambda: read_operation(table, operation_id))
    return result


def _follow(
    context: Context,
    operation_id: str,
    output: Output,
    timeout: float,
    plan: dict[str, Any] | None = None,
) -> None:
    live = output is Output.TEXT and render.err_console.is_terminal
    view = render.watch(
        lambda: _read(context, operation_id), timeout=timeout, live=live or output is Output.TEXT
    )
    if view is None:
        _fail_usage(f"operation {operation_id} was not accepted within {timeout:.0f} s")
    if output is Output.JSON:
        render.print_json(render.status_json(view) | ({"plan": plan} if plan else {}))
    else:
        render.print_status(view)
    if not view.terminal:
        render.err_console.print(f"[yellow]still {view.state} after {timeout:.0f} s[/yellow]")
        raise typer.Exit(1)
    _exit_for(view)


def _exit_for(view: OperationView) -> None:
    if view.state in ("FAILED", "CANCELLED"):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
