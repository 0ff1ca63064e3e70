"""`drctl sandbox`: the local AWS endpoint with a seeded estate (the embedded default)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from . import render

sandbox_app = typer.Typer(
    help="Run the local AWS sandbox and seed estates into it.", no_args_is_help=True
)

STATE_DIR = Path(os.environ.get("DRCTL_STATE_DIR", Path.home() / ".cache" / "drctl"))
START_TIMEOUT = 60.0

PortOption = Annotated[int, typer.Option(help="Port of the local endpoint", min=1, max=65535)]


def _paths(port: int) -> tuple[Path, Path]:
    return STATE_DIR / f"sandbox-{port}.pid", STATE_DIR / f"sandbox-{port}.log"


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def admin(port: int, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call an admin path of the local endpoint (`/_sandbox/...`)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        _url(port) + path,
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def is_running(port: int) -> bool:
    try:
        return bool(admin(port, "/_sandbox/health").get("status") == "ok")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start(port: int) -> None:
    if is_running(port):
        return
    pid_file, log_file = _paths(port)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox.daemon", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            render.err_console.print(f"[red]error:[/red] the sandbox exited; see {log_file}")
            raise typer.Exit(2)
        if is_running(port) and _ready(log_file):
            return
        time.sleep(0.2)
    render.err_console.print(f"[red]error:[/red] the sandbox did not start in time; see {log_file}")
    raise typer.Exit(2)


def _ready(log_file: Path) -> bool:
    return "sandbox ready" in log_file.read_text(errors="replace")


def stop(port: int) -> bool:
    pid_file, _ = _paths(port)
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return False
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True


@sandbox_app.command()
def up(
    port: PortOption = 4566,
    estate: Annotated[Path | None, typer.Option(help="Estate file to seed once started")] = None,
) -> None:
    """Start the sandbox in the background (endpoint + orchestration runtime)."""
    already = is_running(port)
    start(port)
    render.console.print(
        f"Sandbox {'already running' if already else 'started'} at {_url(port)} "
        f"(log: {_paths(port)[1]})"
    )
    if estate is not None:
        seed_file(port, estate)


@sandbox_app.command()
def down(port: PortOption = 4566) -> None:
    """Stop the sandbox."""
    render.console.print("Sandbox stopped" if stop(port) else "Sandbox was not running")


@sandbox_app.command(name="status")
def sandbox_status(
    port: PortOption = 4566, output: Annotated[str, typer.Option("--output", "-o")] = "text"
) -> None:
    """Is the sandbox running, and how many AWS calls has it served."""
    running = is_running(port)
    stats = admin(port, "/_sandbox/stats") if running else None
    if output == "json":
        render.print_json({"running": running, "url": _url(port), "stats": stats})
        return
    if not running or stats is None:
        render.console.print(
            f"Sandbox is not running at {_url(port)}; start it with `drctl sandbox up`"
        )
        raise typer.Exit(1)
    render.console.print(f"Sandbox running at {_url(port)}: {stats['total']} AWS calls served")


@sandbox_app.command()
def seed(
    estate: Annotated[Path, typer.Argument(help="Estate file (YAML)")],
    port: PortOption = 4566,
) -> None:
    """Create an estate (customers, servers, twins, DRS replication) in the running sandbox."""
    if not is_running(port):
        render.err_console.print("[red]error:[/red] the sandbox is not running: `drctl sandbox up`")
        raise typer.Exit(2)
    seed_file(port, estate)


def seed_file(port: int, path: Path) -> Any:
    from drcore.settings import Settings
    from sandbox.estate import EstateError, load_estate
    from sandbox.runtime import connect_workload_account
    from sandbox.seed import seed_estate

    try:
        estate = load_estate(path)
    except EstateError as error:
        render.err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    settings = Settings()
    started = time.monotonic()
    summary = seed_estate(estate, _url(port), orchestration_region=settings.orchestration_region)
    bus_arn = (
        f"arn:aws:events:{settings.orchestration_region}:{settings.orchestration_account}"
        f":event-bus/{settings.bus_name}"
    )
    for customer in summary.customers:
        connect_workload_account(_url(port), settings, customer, bus_arn)
    render.console.print(f"Seeded {path} in {time.monotonic() - started:.1f} s: {summary}")
    return summary
