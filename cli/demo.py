"""`drctl sandbox demo`: a fresh sandbox, a seeded estate and a live failover, end to end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from events.schemas import ApprovalMode, OperationRequested, OperationType, Source

from . import render
from .context import Context, Target
from .sandbox_cmd import PortOption, admin, is_running, sandbox_app, seed_file, start, stop


@sandbox_app.command()
def demo(
    estate: Annotated[Path, typer.Option(help="Estate file to seed")] = Path(
        "examples/estates/demo.yaml"
    ),
    customer: Annotated[str, typer.Option()] = "acme",
    environment: Annotated[str, typer.Option()] = "production",
    port: PortOption = 4566,
) -> None:
    """Start a fresh sandbox, seed the estate, then fail one environment over live."""
    from drcore.state import read_operation
    from services.discovery.app import build_plan_for

    if is_running(port):
        render.console.print("Restarting the sandbox for a clean run…")
        stop(port)
    start(port)
    render.console.print(f"[bold]1. Sandbox[/bold] running at http://127.0.0.1:{port}")
    render.console.print(f"[bold]2. Seeding[/bold] {estate}")
    seed_file(port, estate)

    context = Context.create(Target.SANDBOX, f"http://127.0.0.1:{port}")
    entry = context.resolve_scope(customer, environment)
    render.console.print("[bold]3. Plan[/bold] (drctl plan)")
    plan = build_plan_for(
        customer, environment, OperationType.FAILOVER, context.clients, context.settings
    )
    render.print_plan(plan)

    admin(port, "/_sandbox/stats/reset", {})
    operation_id = f"op-demo-{time.strftime('%Y%m%d%H%M%S')}"
    request = OperationRequested(
        operation_id=operation_id,
        customer=customer,
        environment=environment,
        operation=OperationType.FAILOVER,
        requested_by="drctl-demo",
        region_map=dict(entry.regions),
        reason="sandbox demo",
        # Unattended: a production failover would otherwise wait for approval of every wave.
        approval_mode=ApprovalMode.NONE,
    )
    render.console.print(
        f"[bold]4. Failover[/bold] {operation_id} (live; approval mode none for the demo, "
        "production otherwise asks approval per wave: drctl approve)"
    )
    started = time.monotonic()
    context.publisher().publish(Source.CLI, [request])
    view = render.watch(lambda: read_operation(context.table(), operation_id), timeout=1800)
    elapsed = time.monotonic() - started
    if view is None:
        render.err_console.print(
            "[red]The operation was never accepted; see the sandbox log.[/red]"
        )
        raise typer.Exit(1)
    render.print_status(view)

    stats = admin(port, "/_sandbox/stats")
    recovered = sum(1 for r in view.resources if r.state == "RECOVERED")
    # Only the orchestration's own calls: not drctl's reads, nor the runtime's queue polling.
    orchestration_calls = stats["by_caller"].get("services", 0)
    render.console.print(
        f"[bold]5. Outcome[/bold] {render.styled(view.state)}: {recovered}/{len(view.resources)} "
        f"servers recovered in {elapsed:.1f} s; the orchestration made {orchestration_calls} AWS "
        f"calls ({orchestration_calls / max(recovered, 1):.1f} per recovered server)."
    )
    render.console.print(
        "\nLook further:\n"
        f"  drctl status {operation_id}            waves and resources\n"
        f"  drctl status {operation_id} -o json    the same for scripts\n"
        f"  drctl plan -c {customer} -e {environment}   the plan again\n"
        "  drctl sandbox status                  the endpoint and its call counts\n"
        "  drctl sandbox down                    stop the sandbox"
    )
    if view.state != "COMPLETED":
        raise typer.Exit(1)
