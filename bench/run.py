"""`make bench`: the seed-scale benchmark (DESIGN §12), growing 50 -> 250 -> 1,000 servers.

Runs `bench.scenario` once per size in its own process, measures handler import times, and
writes `bench/results/<date>.json` plus the table in `bench/README.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
HANDLERS = ("discovery", "coordinator", "drs", "metrics")
# Handlers that build their service on first use (`handler._service()`).
BUILT = ("discovery", "coordinator", "drs")
TABLE_START, TABLE_END = "<!-- results:start -->", "<!-- results:end -->"
GOALS = {
    "overhead_ratio": 1.05,
    "aws_calls_per_server": 8,
    "plan_seconds_all": 10,
    "import_ms": 300,
}


def lambda_environment(service: str) -> dict[str, str]:
    """What Lambda sets that changes what a handler loads: Powertools tracing is on (the X-Ray
    SDK patches botocore) and the X-Ray recorder uses its Lambda sampler (outside Lambda it
    builds two X-Ray clients for central sampling, ~80 ms that Lambda never pays)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_TRACE")}
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": f"dr-{service}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "LAMBDA_TASK_ROOT": str(ROOT),
            "AWS_REGION": "us-east-2",
            "AWS_DEFAULT_REGION": "us-east-2",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
        }
    )
    return env


def import_ms(service: str, build: bool = False) -> float:
    """Cold import of a handler in a fresh interpreter, in a Lambda-like environment (what a
    Lambda cold start pays before the first event); `build`: plus building the service on first
    use (its AWS clients and wiring), the rest of the cold start."""
    built = f"; services.{service}.handler._service()" if build else ""
    code = (
        "import time; t = time.perf_counter(); "
        f"import services.{service}.handler{built}; print((time.perf_counter() - t) * 1000)"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                env=lambda_environment(service),
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for _ in range(3)
    ]
    return min(runs)


def run_size(estate: str, customers: int, launch: str, log: Path) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    started = time.perf_counter()
    with log.open("a") as stream:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.scenario",
                "--estate",
                estate,
                "--customers",
                str(customers),
                "--launch-seconds",
                launch,
                "--out",
                str(out),
            ],
            cwd=ROOT,
            stdout=stream,
            stderr=subprocess.STDOUT,
            check=True,
        )
    result: dict[str, Any] = json.loads(out.read_text())
    result["process_seconds"] = round(time.perf_counter() - started, 1)
    out.unlink()
    return result


def table(results: dict[str, Any]) -> str:
    rows = [
        "| servers | operations | completed | wall s | critical path s | overhead ratio | "
        "max wave boundary s | AWS calls/server | events/server | plan s (all) | "
        "peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        rows.append(
            f"| {run['servers']} | {run['operations']} | {run['completed']} "
            f"| {_num(run['wall_seconds'])} | {_num(run['critical_path_seconds'])} "
            f"| {_num(run['overhead_ratio'], 3)} | {_num(run['wave_boundary_seconds']['max'])} "
            f"| {_num(run['aws_calls_per_server'])} | {_num(run['events_per_server'])} "
            f"| {_num(run['plan_seconds_all'])} | {_num(run['peak_memory_mb'], 0)} |"
        )
    imports = ", ".join(
        f"{k} {v:.0f} ms" for k, v in results["handler_import_ms_by_service"].items()
    )
    return "\n".join(
        [
            f"Run {results['date']} on {results['machine']}; emulated DRS launches "
            f"{results['launch_seconds']} s. Handler import: {imports}.",
            "",
            *rows,
        ]
    )


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--estate", default=str(ROOT / "examples" / "estates" / "guiding-care.yaml")
    )
    parser.add_argument("--customers", default="1,5,20", help="customers per run (50 servers each)")
    parser.add_argument("--launch-seconds", default="20,40", help="emulated DRS launch range")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / "last-run.log"
    log.write_text("")
    runs = []
    for count in (int(c) for c in args.customers.split(",")):
        print(f"bench: {count} customer(s)…", flush=True)
        run = run_size(args.estate, count, args.launch_seconds, log)
        print(
            f"  {run['servers']} servers: wall {run['wall_seconds']:.1f} s, overhead ratio "
            f"{run['overhead_ratio']:.3f}, {run['aws_calls_per_server']:.2f} AWS calls/server",
            flush=True,
        )
        runs.append(run)
    imports = {service: round(import_ms(service), 1) for service in HANDLERS}
    cold = {service: round(import_ms(service, build=True), 1) for service in BUILT}
    largest = max(runs, key=lambda r: r["servers"])
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "launch_seconds": args.launch_seconds,
        "goals": GOALS,
        "servers": largest["servers"],
        "operations": largest["operations"],
        "overhead_ratio": largest["overhead_ratio"],
        "aws_calls_per_server": largest["aws_calls_per_server"],
        "events_per_server": largest["events_per_server"],
        "plan_seconds_all": largest["plan_seconds_all"],
        "handler_import_ms": max(imports.values()),
        "handler_import_ms_by_service": imports,
        "handler_import_and_build_ms_by_service": cold,
        "peak_memory_mb": largest["peak_memory_mb"],
        "runs": runs,
    }
    path = RESULTS / f"{results['date']}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = README.read_text()
    if TABLE_START in text and TABLE_END in text:
        head, rest = text.split(TABLE_START, 1)
        _, tail = rest.split(TABLE_END, 1)
        README.write_text(f"{head}{TABLE_START}\n{table(results)}\n{TABLE_END}{tail}")
    print(f"bench: wrote {path.relative_to(ROOT)} and the table in bench/README.md")


if __name__ == "__main__":
    main()
