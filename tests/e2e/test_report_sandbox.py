"""Report, audit and metrics from a real sandbox failover with one failed resource.

Given a small staging estate where one wave-2 twin no longer allows DRS to launch into it, when
it is failed over, then `drctl report` tells the outcome per wave against the RTO targets with
the failure's cause (JSON, Markdown, HTML with a timeline), `drctl audit` rebuilds the same
report from the replayed archive alone, a tampered live record is caught by the audit, and the
metrics service's figures are in (emulated) CloudWatch.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from drcore.state import op_pk, resource_sk
from sandbox.daemon import Sandbox
from sandbox.estate import load_estate
from sandbox.seed import seed_estate

pytestmark = pytest.mark.sandbox

ESTATE = Path(__file__).parent / "estates" / "report.yaml"
ACCOUNT, DR_REGION = "444444444444", "us-east-2"
BROKEN_TWIN = "umbrella-stg-db-003"


def drctl(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "--endpoint-url", sandbox.url, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def customer_ec2(sandbox: Sandbox) -> Any:
    creds = boto3.client("sts", endpoint_url=sandbox.url, region_name="us-east-2").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/dr-orchestrator-workload",
        RoleSessionName="e2e-report",
        ExternalId="dr-umbrella",
    )["Credentials"]
    return boto3.client(
        "ec2",
        endpoint_url=sandbox.url,
        region_name=DR_REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


@pytest.fixture(scope="module")
def failed_over(sandbox: Sandbox) -> str:
    summary = seed_estate(
        load_estate(ESTATE), sandbox.url, orchestration_region=sandbox.settings.orchestration_region
    )
    sandbox.connect(summary.customers)
    ec2 = customer_ec2(sandbox)
    twin = ec2.describe_instances(
        Filters=[
            {"Name": "tag:Name", "Values": [BROKEN_TWIN]},
            {"Name": "tag:AWSDRS", "Values": ["AllowLaunchingIntoThisInstance"]},
        ]
    )["Reservations"][0]["Instances"][0]
    ec2.delete_tags(Resources=[twin["InstanceId"]], Tags=[{"Key": "AWSDRS"}])

    started = drctl(sandbox, "failover", "-c", "umbrella", "-e", "staging", "-o", "json")
    assert started.returncode == 0, started.stderr
    operation_id: str = json.loads(started.stdout)["operation_id"]
    watched = drctl(sandbox, "watch", operation_id, "-o", "json", "--timeout", "120")
    state = json.loads(watched.stdout)["state"]
    if state == "PAUSED":  # a wave with failures pauses: the operator ends it
        _cancel(sandbox, operation_id)
        watched = drctl(sandbox, "watch", operation_id, "-o", "json", "--timeout", "60")
    assert json.loads(watched.stdout)["state"] in ("FAILED", "CANCELLED"), watched.stdout
    return operation_id


def _cancel(sandbox: Sandbox, operation_id: str) -> None:
    from drcore.publisher import EventPublisher
    from events.schemas import OperationCancelRequested, OperationType, Source

    events = boto3.client("events", endpoint_url=sandbox.url, region_name="us-east-2")
    EventPublisher(events, sandbox.settings.bus_name).publish(
        Source.CLI,
        [
            OperationCancelRequested(
                operation_id=operation_id,
                customer="umbrella",
                environment="staging",
                operation=OperationType.FAILOVER,
                requested_by="e2e",
                reason="end the scenario",
            )
        ],
    )


def test_report_json_tells_each_wave_against_its_rto_and_the_failure_cause(
    sandbox: Sandbox, failed_over: str
) -> None:
    result = drctl(sandbox, "report", failed_over, "-f", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["operation_id"] == failed_over
    assert (report["customer"], report["environment"]) == ("umbrella", "staging")
    assert report["requested_by"]
    waves = {w["number"]: w for w in report["waves"]}
    assert waves[1]["state"] == "COMPLETED" and waves[1]["rto_met"] is True
    assert waves[1]["rto_target_minutes"] == 15
    assert waves[2]["state"] == "FAILED" and waves[2]["failed"] == 1
    assert waves[2]["rto_met"] is False
    failed = [r for r in report["resources"] if r["state"] == "FAILED"]
    assert [r["name"] for r in failed] == [BROKEN_TWIN]
    assert failed[0]["error_code"] and failed[0]["error"]
    assert report["recovered"] == 7 and report["failed"] == 1


def test_report_markdown_and_html_are_ready_to_hand_over(
    sandbox: Sandbox, failed_over: str, tmp_path: Path
) -> None:
    markdown = drctl(sandbox, "report", failed_over)
    assert markdown.returncode == 0
    assert "## Waves: RTO achieved vs target" in markdown.stdout
    assert BROKEN_TWIN in markdown.stdout.split("## Failures")[1]

    page = tmp_path / "report.html"
    html = drctl(sandbox, "report", failed_over, "-f", "html", "--out", str(page))
    assert html.returncode == 0, html.stderr
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "<script" not in text
    svg = re.search(r"<svg[^>]*class=\"timeline\".*?</svg>", text, re.S)
    assert svg, "no timeline chart"
    assert len(re.findall(r'class="wave"', svg.group(0))) == 2
    assert len(re.findall(r'class="resource"', svg.group(0))) == 8
    assert "RTO target 15 min" in svg.group(0)


def test_audit_rebuilds_the_same_report_from_the_replayed_events(
    sandbox: Sandbox, failed_over: str, tmp_path: Path
) -> None:
    kept = tmp_path / "events.jsonl"
    result = drctl(sandbox, "audit", failed_over, "-o", "json", "--out", str(kept))
    assert result.returncode == 0, result.stdout + result.stderr
    audit = json.loads(result.stdout)
    assert audit["equal"] is True and audit["differences"] == []
    assert audit["events"] >= 8  # at least one result per resource
    assert audit["report"]["failed"] == 1
    lines = [json.loads(line) for line in kept.read_text().splitlines()]
    assert lines and all(e["replay-name"] == audit["replay_name"] for e in lines)


def test_audit_detects_a_tampered_live_record(sandbox: Sandbox, failed_over: str) -> None:
    table = boto3.resource("dynamodb", endpoint_url=sandbox.url, region_name="us-east-2").Table(
        sandbox.settings.operations_table
    )
    status = json.loads(drctl(sandbox, "status", failed_over, "-o", "json").stdout)
    victim = next(r for r in status["resources"] if r["state"] == "RECOVERED")
    table.update_item(
        Key={"pk": op_pk(failed_over), "sk": resource_sk(victim["resource_id"])},
        UpdateExpression="SET dr_private_ip = :ip",
        ExpressionAttributeValues={":ip": "10.9.9.9"},
    )
    try:
        result = drctl(sandbox, "audit", failed_over)
        assert result.returncode == 1
        assert victim["resource_id"] in result.stdout and "dr_private_ip" in result.stdout
        assert "10.9.9.9" in result.stdout
    finally:
        table.update_item(
            Key={"pk": op_pk(failed_over), "sk": resource_sk(victim["resource_id"])},
            UpdateExpression="SET dr_private_ip = :ip",
            ExpressionAttributeValues={":ip": victim["dr_private_ip"]},
        )


def test_metrics_from_the_event_stream_land_in_cloudwatch(
    sandbox: Sandbox, failed_over: str
) -> None:
    cloudwatch = boto3.client("cloudwatch", endpoint_url=sandbox.url, region_name="us-east-2")
    dimensions = [
        {"Name": "Customer", "Value": "umbrella"},
        {"Name": "Environment", "Value": "staging"},
        {"Name": "Operation", "Value": "failover"},
    ]

    def total(name: str) -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace="DrOrchestrator",
            MetricName=name,
            Dimensions=dimensions,
            StartTime=time.time() - 3600,
            EndTime=time.time() + 60,
            Period=3600,
            Statistics=["Sum"],
        )["Datapoints"]
        return sum(p["Sum"] for p in points)

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and total("ResourcesFailed") < 1:
        time.sleep(0.5)
    # Duplicated deliveries may add to the counts, never take away.
    assert total("ResourcesRecovered") >= 7
    assert total("ResourcesFailed") >= 1
    assert total("WavesCompleted") >= 1
    assert total("WaveDurationSeconds") > 0
