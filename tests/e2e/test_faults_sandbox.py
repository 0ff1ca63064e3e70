"""Fault injection: the invariants hold whatever the delivery and the APIs do.

Each scenario fails over its own small environment with faults injected (duplicated and late
deliveries, worker crashes mid-batch, dropped native DRS events, API throttling) and checks:
every resource ends RECOVERED or FAILED with a reason, no server was launched twice, every wave
closed with its counts adding up, and the operation ended (no wave stalls).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from sandbox.daemon import Sandbox
from sandbox.estate import parse_estate
from sandbox.runtime import RuntimeFaults
from sandbox.seed import seed_estate

pytestmark = pytest.mark.sandbox

ESTATE = """
regions: {{us-east-1: us-east-2}}
timing: {{drs_launch_seconds: [0.3, 1.0]}}
customers:
  - name: {name}
    account: "{account}"
    region: us-east-1
    environments:
      - name: staging
        generate: {{servers: 12, waves: 3}}
"""


def admin(sandbox: Sandbox, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        sandbox.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


@pytest.fixture
def faults(sandbox: Sandbox) -> Iterator[Sandbox]:
    yield sandbox
    sandbox.runtime.inject(RuntimeFaults())
    admin(sandbox, "/_sandbox/config", {"throttle_rate": 0.0, "drop_native_event_rate": 0.0})


def run_scenario(sandbox: Sandbox, name: str, account: str) -> dict[str, Any]:
    estate = parse_estate(ESTATE.format(name=name, account=account), f"{name}.yaml")
    summary = seed_estate(
        estate, sandbox.url, orchestration_region=sandbox.settings.orchestration_region
    )
    sandbox.connect(summary.customers)
    command = [sys.executable, "-m", "cli.main", "--endpoint-url", sandbox.url]
    # A staging environment: no confirmation, no approval gate by default.
    started = subprocess.run(
        [*command, "failover", "-c", name, "-e", "staging", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    operation_id = json.loads(started.stdout)["operation_id"]
    watched = subprocess.run(
        [*command, "watch", operation_id, "-o", "json", "--timeout", "180"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert watched.stdout, (
        f"drctl watch printed nothing (exit {watched.returncode}): {watched.stderr}"
    )
    status: dict[str, Any] = json.loads(watched.stdout)
    status["jobs"] = _jobs(sandbox, account, operation_id)
    return status


def _jobs(sandbox: Sandbox, account: str, operation_id: str) -> list[dict[str, Any]]:
    creds = boto3.client("sts", endpoint_url=sandbox.url, region_name="us-east-2").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/dr-orchestrator-workload",
        RoleSessionName="e2e-faults",
    )["Credentials"]
    drs = boto3.client(
        "drs",
        endpoint_url=sandbox.url,
        region_name="us-east-2",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    return [
        job
        for page in drs.get_paginator("describe_jobs").paginate(filters={})
        for job in page["items"]
        if job.get("tags", {}).get("dr:operation-id") == operation_id
    ]


def assert_invariants(status: dict[str, Any]) -> None:
    # The operation ended: no wave stalled.
    assert status["state"] in ("COMPLETED", "FAILED", "CANCELLED"), status["state"]
    # Every resource accounted for, failures with a reason.
    assert len(status["resources"]) == 12
    for resource in status["resources"]:
        assert resource["state"] in ("RECOVERED", "FAILED"), resource
        if resource["state"] == "FAILED":
            assert resource["error_code"] and resource["error"], resource
    # Each wave's counts add up to what it expected.
    for wave in status["waves"]:
        assert wave["recovered"] + wave["failed"] == wave["expected"], wave
    # No server launched twice for the operation.
    launches = Counter(
        server["sourceServerID"] for job in status["jobs"] for server in job["participatingServers"]
    )
    assert launches and max(launches.values()) == 1, launches


def test_given_duplicated_and_late_deliveries_then_nothing_counts_twice(faults: Sandbox) -> None:
    faults.runtime.inject(RuntimeFaults(duplicate_rate=0.3, delay_rate=0.2, seed=11))
    status = run_scenario(faults, "fault-dup", "555555555501")
    assert_invariants(status)
    assert status["state"] == "COMPLETED"


def test_given_workers_crashing_mid_batch_then_redelivery_finishes_the_job(faults: Sandbox) -> None:
    faults.runtime.inject(RuntimeFaults(crash_rate=0.25, seed=5))
    status = run_scenario(faults, "fault-crash", "555555555502")
    assert_invariants(status)
    assert status["state"] == "COMPLETED"
    assert sum(s.crashes for s in faults.runtime.stats.values()) > 0


def test_given_every_native_drs_event_dropped_then_polling_recovers_everything(
    faults: Sandbox,
) -> None:
    admin(faults, "/_sandbox/config", {"drop_native_event_rate": 1.0})
    status = run_scenario(faults, "fault-drop", "555555555503")
    assert_invariants(status)
    assert status["state"] == "COMPLETED"


@pytest.mark.slow
def test_given_drs_throttling_then_retries_absorb_it(faults: Sandbox) -> None:
    admin(faults, "/_sandbox/config", {"throttle_rate": 0.3})
    status = run_scenario(faults, "fault-throttle", "555555555504")
    assert_invariants(status)


@pytest.mark.slow
def test_given_every_fault_at_once_then_the_invariants_still_hold(faults: Sandbox) -> None:
    admin(faults, "/_sandbox/config", {"throttle_rate": 0.2, "drop_native_event_rate": 0.5})
    faults.runtime.inject(
        RuntimeFaults(duplicate_rate=0.3, delay_rate=0.2, crash_rate=0.15, seed=23)
    )
    status = run_scenario(faults, "fault-all", "555555555505")
    assert_invariants(status)
