"""One benchmark run: a fresh in-process sandbox, N customers' failovers at once, measured.

`python -m bench.scenario --estate FILE --customers K --out FILE` writes one JSON object (the
handlers' logs go to stdout). `bench.run` calls it once per size, each in its own process:
clean state, and its own peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config


def admin(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


class CallsByHandler:
    """AWS API calls made by each service's handler, attributed by the runtime's worker thread
    (`runtime-<service>-<n>`). Counted in this process (one per API call and page, retries not
    counted): the sandbox's own count (`/_sandbox/stats`) is by caller only."""

    def __init__(self, by_function: bool = False) -> None:
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.functions: Counter[tuple[str, str, str]] = Counter()
        self._by_function = by_function
        self._lock = threading.Lock()

    def install(self) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        counter = self

        def counted(client: Any, operation: str, params: Any) -> Any:
            name = threading.current_thread().name
            runtime = "dr-runtime" in (client.meta.config.user_agent_extra or "")
            if name.startswith("runtime-") and name.count("-") >= 2 and not runtime:
                service = name.split("-")[1]
                where = counter._caller() if counter._by_function else ""
                with counter._lock:
                    counter.calls[(service, client.meta.service_model.service_name, operation)] += 1
                    if where:
                        counter.functions[(service, operation, where)] += 1
            return original(client, operation, params)

        BaseClient._make_api_call = counted

    @staticmethod
    def _caller() -> str:
        """The innermost service function on the stack (which code made the call)."""
        frame = sys._getframe(2)
        while frame is not None:
            path = frame.f_code.co_filename
            if "/services/" in path or "/drcore/" in path:
                module = path.rsplit("/", 2)
                return f"{module[-2]}/{module[-1]}:{frame.f_code.co_name}"
            frame = frame.f_back  # type: ignore[assignment]
        return "?"

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.functions.clear()

    def per_server(self, servers: int) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for (handler, service, operation), n in sorted(self.calls.items()):
            out[handler][f"{service}:{operation}"] = round(n / servers, 3)
        return dict(out)

    def functions_per_server(self, servers: int) -> list[tuple[str, str, str, float]]:
        return [
            (handler, operation, where, round(n / servers, 3))
            for (handler, operation, where), n in self.functions.most_common(60)
        ]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--estate", required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--launch-seconds", default="20,40")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument(
        "--reprotect-timeout",
        type=float,
        default=240,
        help="seconds to wait after the operations for re-protection to finish",
    )
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    parser.add_argument(
        "--calls-by-function",
        action="store_true",
        help="also attribute AWS calls to the service function that made them (slower)",
    )
    parser.add_argument(
        "--services",
        default="",
        help="comma-separated services the runtime runs (default: every one of the catalog); "
        "e.g. coordinator,discovery,drs,metrics to measure them without the others' load",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=5,
        help="concurrent batches per service's queue (Lambda's SQS poller starts with five)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="serve the sandbox endpoint (moto, emulators) in this process, sharing one "
        "interpreter with the handlers, instead of its own process",
    )
    parser.add_argument(
        "--strategies",
        default="",
        help="comma-separated recovery strategies to plan (default: the settings'); the critical "
        "path knows only DRS launch durations, so `drs` measures the orchestration alone",
    )
    args = parser.parse_args()
    low, high = (float(v) for v in args.launch_seconds.split(","))
    if args.strategies:
        os.environ["DR_ENABLED_STRATEGIES"] = json.dumps(args.strategies.split(","))

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    from drcore.aws import AwsClients
    from drcore.publisher import EventPublisher
    from drcore.state import META, OperationState, op_pk, read_operation
    from events.schemas import ApprovalMode, OperationRequested, OperationType, Source
    from sandbox.daemon import Sandbox
    from sandbox.endpoint import SandboxEndpoint
    from sandbox.estate import load_estate
    from sandbox.seed import seed_estate
    from services.discovery.app import build_plan_for

    by_handler = CallsByHandler(by_function=args.calls_by_function)
    by_handler.install()
    if args.services:
        from sandbox import daemon

        wanted = set(args.services.split(","))
        daemon.SERVICES = tuple(s for s in daemon.SERVICES if s.name in wanted)
    estate = load_estate(args.estate)
    estate = estate.model_copy(update={"customers": estate.customers[: args.customers]})
    sandbox = Sandbox.start(
        port=0, workers_per_service=args.workers, endpoint_process=not args.in_process
    )
    url = sandbox.url
    try:
        started = time.perf_counter()
        summary = seed_estate(
            estate, url, orchestration_region=sandbox.settings.orchestration_region
        )
        sandbox.connect(summary.customers)
        seed_seconds = time.perf_counter() - started
        admin(url, "/_sandbox/config", {"drs_launch_seconds": [low, high]})
        scopes = [(c.name, e.name) for c in estate.customers for e in c.environments]
        servers = len(estate.servers())

        operator = Config(user_agent_extra="drctl")
        clients = AwsClients(sandbox.settings, boto3.Session(), user_agent_extra="drctl")
        plan_seconds: dict[str, float] = {}
        for customer, environment in scopes:
            t0 = time.perf_counter()
            build_plan_for(customer, environment, OperationType.FAILOVER, clients, sandbox.settings)
            plan_seconds[f"{customer}/{environment}"] = time.perf_counter() - t0

        events = boto3.client(
            "events", region_name=sandbox.settings.orchestration_region, config=operator
        )
        archive_before = events.describe_archive(ArchiveName="dr-orchestration-archive")[
            "EventCount"
        ]
        admin(url, "/_sandbox/stats/reset", {})
        by_handler.reset()
        publisher = EventPublisher(events, sandbox.settings.bus_name)
        stamp = time.strftime("%H%M%S")
        requests = [
            OperationRequested(
                operation_id=f"op-bench-{stamp}-{i:03d}",
                customer=customer,
                environment=environment,
                operation=OperationType.FAILOVER,
                requested_by="bench",
                approval_mode=ApprovalMode.NONE,
                reason="benchmark",
            )
            for i, (customer, environment) in enumerate(scopes)
        ]
        cpu_before = {
            n: (len(s.cpu_per_record), s.records) for n, s in sandbox.runtime.stats.items()
        }
        run_started = time.time()
        publisher.publish(Source.CLI, requests)
        table = boto3.resource(
            "dynamodb", region_name=sandbox.settings.orchestration_region, config=operator
        ).Table(sandbox.settings.operations_table)
        views: dict[str, Any] = {}
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            for request in requests:
                if request.operation_id in views:
                    continue
                # The operation's state alone while it runs (reading all of its records every
                # second would load the endpoint the orchestration is measured on); all of it
                # once it has ended.
                meta = table.get_item(
                    Key={"pk": op_pk(request.operation_id), "sk": META}, ConsistentRead=True
                ).get("Item")
                if meta is None or not OperationState(meta["state"]).terminal:
                    continue
                view = read_operation(table, request.operation_id)
                if view is not None:
                    views[request.operation_id] = view
            if len(views) == len(requests) and all(v.terminal for v in views.values()):
                break
            time.sleep(1.0)
        # End to end includes what follows an operation: re-protection (ReverseReplication and
        # its progress reads) runs after OperationCompleted; wait for it (bounded).
        from services.drs.app import operation_records

        settle = time.monotonic() + args.reprotect_timeout
        while time.monotonic() < settle:
            states = [
                operation_records(clients, sandbox.settings.operations_table, r.operation_id)
                for r in requests
            ]
            if all(s.reprotect is not None and s.reprotect.state != "IN_PROGRESS" for s in states):
                break
            time.sleep(2.0)
        stats = admin(url, "/_sandbox/stats")
        handler_calls = by_handler.per_server(max(1, len(estate.servers())))
        function_calls = by_handler.functions_per_server(max(1, len(estate.servers())))
        launches = admin(url, "/_sandbox/drs/launches")
        archive_after = events.describe_archive(ArchiveName="dr-orchestration-archive")[
            "EventCount"
        ]

        runtime_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_memory = (
            {"runtime_and_endpoint": runtime_mb}
            if isinstance(sandbox.endpoint, SandboxEndpoint)
            else {"runtime": runtime_mb, "endpoint": sandbox.endpoint.peak_memory_mb()}
        )
        # Critical path per operation: sum over waves of the slowest emulated launch.
        slowest: dict[tuple[str, int], float] = defaultdict(float)
        first_launch: dict[tuple[str, int], datetime] = {}
        last_end: dict[tuple[str, int], datetime] = {}
        for launch in launches:
            tags = launch.get("tags", {})
            key = (tags.get("dr:operation-id", ""), int(tags.get("dr:wave", 0)))
            slowest[key] = max(slowest[key], launch["duration_seconds"])
            created = datetime.fromisoformat(launch["created_at"].replace("Z", "+00:00"))
            first_launch[key] = min(first_launch.get(key, created), created)
            ended = created + timedelta(seconds=launch["duration_seconds"])
            last_end[key] = max(last_end.get(key, ended), ended)
        operations = []
        boundaries: list[float] = []
        # The whole boundary: the wave's last emulated launch ends -> the next wave's first
        # launch (result latency + coordinator + the next part's preparation).
        launch_gaps: list[float] = []
        # From the wave's last launch end to the wave COMPLETED (reporting the last result).
        closing: list[float] = []
        # From the operation's request to its first launch (discovery, planning, wave 1).
        first_action: list[float] = []
        for request in requests:
            view = views.get(request.operation_id)
            if view is None:
                continue
            critical = sum(v for (op, _), v in slowest.items() if op == request.operation_id)
            duration = (
                (view.completed_at - view.created_at).total_seconds()
                if view.completed_at and view.created_at
                else None
            )
            for wave, following in zip(view.waves, view.waves[1:], strict=False):
                start_next = first_launch.get((request.operation_id, following.number))
                if wave.completed_at and start_next:
                    boundaries.append((start_next - wave.completed_at).total_seconds())
                last = last_end.get((request.operation_id, wave.number))
                if last and start_next:
                    launch_gaps.append((start_next - last).total_seconds())
            for wave in view.waves:
                last = last_end.get((request.operation_id, wave.number))
                if last and wave.completed_at:
                    closing.append((wave.completed_at - last).total_seconds())
            if view.waves and view.created_at:
                first = first_launch.get((request.operation_id, view.waves[0].number))
                if first:
                    first_action.append((first - view.created_at).total_seconds())
            operations.append(
                {
                    "operation_id": request.operation_id,
                    "scope": f"{request.customer}/{request.environment}",
                    "state": view.state,
                    "servers": len(view.resources),
                    "recovered": sum(r.state == "RECOVERED" for r in view.resources),
                    "duration_seconds": duration,
                    "critical_path_seconds": critical,
                    "overhead_ratio": duration / critical if duration and critical else None,
                }
            )
        ends = [v.completed_at.timestamp() for v in views.values() if v.completed_at]
        wall = (max(ends) - run_started) if ends else None
        critical_all = max((o["critical_path_seconds"] for o in operations), default=0)
        recovered = sum(o["recovered"] for o in operations)
        calls = stats["calls_by_caller"].get("services", {})
        calls_total = sum(sum(ops.values()) for ops in calls.values())
        cpu: dict[str, dict[str, float | None]] = {}
        for name, service_stats in sandbox.runtime.stats.items():
            samples = service_stats.cpu_per_record[cpu_before.get(name, (0, 0))[0] :]
            cpu[name] = {
                "p50_ms": (percentile(samples, 50) or 0) * 1000,
                "p95_ms": (percentile(samples, 95) or 0) * 1000,
                "records": service_stats.records - cpu_before.get(name, (0, 0))[1],
            }
        result = {
            "servers": servers,
            "operations": len(operations),
            "completed": sum(o["state"] == "COMPLETED" for o in operations),
            "recovered": recovered,
            "launch_seconds": [low, high],
            "seed_seconds": round(seed_seconds, 2),
            "plan_seconds_per_environment": {k: round(v, 3) for k, v in plan_seconds.items()},
            "plan_seconds_all": round(sum(plan_seconds.values()), 3),
            "wall_seconds": wall,
            "critical_path_seconds": critical_all,
            "overhead_ratio": wall / critical_all if wall and critical_all else None,
            "overhead_ratio_per_operation": {
                "max": max((o["overhead_ratio"] or 0 for o in operations), default=None),
                "median": statistics.median([o["overhead_ratio"] or 0 for o in operations])
                if operations
                else None,
            },
            "wave_boundary_seconds": {
                "p50": percentile(boundaries, 50),
                "p95": percentile(boundaries, 95),
                "max": max(boundaries, default=None),
            },
            "launch_end_to_next_launch_seconds": {
                "p50": percentile(launch_gaps, 50),
                "p95": percentile(launch_gaps, 95),
                "max": max(launch_gaps, default=None),
            },
            "last_launch_end_to_wave_completed_seconds": {
                "p50": percentile(closing, 50),
                "p95": percentile(closing, 95),
                "max": max(closing, default=None),
            },
            "request_to_first_launch_seconds": {
                "p50": percentile(first_action, 50),
                "max": max(first_action, default=None),
            },
            "aws_calls_per_server": calls_total / recovered if recovered else None,
            "aws_calls_per_server_by_operation": {
                f"{service}:{op}": round(n / recovered, 3)
                for service, ops in sorted(calls.items())
                for op, n in sorted(ops.items())
            }
            if recovered
            else {},
            "aws_calls_per_server_by_handler": handler_calls,
            "aws_calls_per_server_by_function": function_calls,
            "events_per_server": (archive_after - archive_before) / servers if servers else None,
            "handler_cpu_per_record": cpu,
            "peak_memory_mb": sum(v for v in peak_memory.values() if v is not None),
            "peak_memory_mb_by_process": peak_memory,
            "endpoint_in_process": args.in_process,
            "workers_per_service": args.workers,
            "runtime_errors": len(sandbox.runtime.errors),
            # The last lines of the first few tracebacks: enough to tell what went wrong.
            "runtime_error_samples": [
                error.strip().splitlines()[-3:] for error in sandbox.runtime.errors[:5]
            ],
            "operations_detail": operations,
        }
        with open(args.out, "w") as out:
            json.dump(result, out, default=str, indent=2)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
