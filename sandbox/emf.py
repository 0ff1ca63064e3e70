"""Embedded Metric Format to CloudWatch metrics, as CloudWatch Logs does it for Lambda in AWS.

Handlers publish metrics the Lambda way: Powertools prints EMF JSON lines and, in AWS, CloudWatch
Logs turns them into metrics. The sandbox has no log pipeline, so while the bridge is installed
every EMF line Powertools prints is also parsed here and sent to the emulated CloudWatch with
PutMetricData (batched by a background thread). The line is still printed as before.
"""

from __future__ import annotations

import builtins
import json
import queue
import threading
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

# Powertools' modules that print EMF lines (single metrics and flushed metric sets).
EMF_MODULES = (
    "aws_lambda_powertools.metrics.base",
    "aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch",
)
MAX_DATUMS_PER_CALL = 1000


def parse_emf(line: str) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, MetricDatum) pairs from one EMF document; [] when it is not one."""
    try:
        document = json.loads(line)
    except (TypeError, ValueError):
        return []
    if not isinstance(document, dict) or "_aws" not in document:
        return []
    meta = document["_aws"]
    timestamp = datetime.fromtimestamp(meta.get("Timestamp", 0) / 1000, tz=UTC)
    out: list[tuple[str, dict[str, Any]]] = []
    for directive in meta.get("CloudWatchMetrics", []):
        for dimension_set in directive.get("Dimensions", [[]]):
            dimensions = [
                {"Name": name, "Value": str(document[name])}
                for name in dimension_set
                if name in document
            ]
            for metric in directive.get("Metrics", []):
                raw = document.get(metric["Name"])
                values = raw if isinstance(raw, list) else [raw]
                datum: dict[str, Any] = {
                    "MetricName": metric["Name"],
                    "Dimensions": dimensions,
                    "Values": [float(v) for v in values if v is not None],
                    "Timestamp": timestamp,
                }
                if metric.get("Unit"):
                    datum["Unit"] = metric["Unit"]
                if datum["Values"]:
                    out.append((directive["Namespace"], datum))
    return out


class EmfBridge:
    def __init__(self, endpoint_url: str, region: str) -> None:
        self._cloudwatch = boto3.client(
            "cloudwatch",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(user_agent_extra="dr-runtime", retries={"mode": "standard"}),
        )
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._modules: list[Any] = []
        self.sent = 0
        self.errors: list[str] = []

    def install(self) -> None:
        import importlib

        for name in EMF_MODULES:
            module = importlib.import_module(name)
            module.print = self._print  # type: ignore[attr-defined]
            self._modules.append(module)
        self._thread = threading.Thread(target=self._flush_loop, name="emf-bridge", daemon=True)
        self._thread.start()

    def uninstall(self) -> None:
        for module in self._modules:
            if getattr(module, "print", None) == self._print:
                del module.print
        self._modules.clear()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _print(self, *args: Any, **kwargs: Any) -> None:
        builtins.print(*args, **kwargs)
        if len(args) == 1 and isinstance(args[0], str):
            for item in parse_emf(args[0]):
                self._queue.put(item)

    def _flush_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < MAX_DATUMS_PER_CALL:
                try:
                    more = self._queue.get(timeout=0.2)
                except queue.Empty:
                    break
                if more is None:
                    self._send(batch)
                    return
                batch.append(more)
            self._send(batch)

    def _send(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for namespace, datum in batch:
            by_namespace.setdefault(namespace, []).append(datum)
        for namespace, data in by_namespace.items():
            for start in range(0, len(data), MAX_DATUMS_PER_CALL):
                try:
                    self._cloudwatch.put_metric_data(
                        Namespace=namespace, MetricData=data[start : start + MAX_DATUMS_PER_CALL]
                    )
                    self.sent += len(data[start : start + MAX_DATUMS_PER_CALL])
                except Exception as error:  # the metrics must never stop the runtime
                    self.errors.append(repr(error))
