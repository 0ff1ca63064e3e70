"""End to end in the sandbox: the coordinator's gates and controls through the real choreography.

- approval required (production default): a forged token, a scope mismatch and a reused token
  refused; the right token approves wave 1; wave 2 rejected -> CANCELLED; status shows who/when;
- a failing pre-wave hook (SSM Automation, emulated) pauses the operation; resume --retry-failed
  runs it again and the operation completes (post-wave hook too);
- a failed server pauses the operation; resume --skip-failed goes on; another one is fixed and
  resume --retry-failed recovers it (attempt 2);
- abort mid-wave: nothing new starts, in-flight launches finish and are recorded;
- a lost ResourceRecovered: the reconciler asks the owner to re-check (ResourceCheckRequested),
  drs publishes the result it kept again, the wave completes and the next one runs;
- a regional outage: every customer of the region failed over, one real operation each, started
  together (3 customers through put-events with customer `*`; 20 through `drctl failover
  --all-customers`, marked slow: about a minute here, mostly discovery and DRS throughput).

Each scenario has its own customers (seeded into the package's sandbox), so the scenarios and the
other end-to-end tests never share a server.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from drcore.state import read_operation
from events.schemas import DetailType, Source
from sandbox.daemon import Sandbox
from sandbox.estate import Estate, parse_estate
from sandbox.runtime import RuntimeFaults
from sandbox.seed import seed_estate
from services.coordinator.adapters import approval_topic_arn
from services.coordinator.hooks import RECONCILE_KIND, HookConfig, hook_parameter_name
from services.coordinator.views import read_details

from .test_failover_sandbox import admin, drctl

pytestmark = pytest.mark.sandbox

FAST = [0.2, 0.6]
REGIONAL_FAST, REGIONAL_SLOW = 3, 20


def _customer(name: str, account: str, env: str, body: str, region: str = "us-east-1") -> str:
    return f"""
  - name: {name}
    account: "{account}"
    region: {region}
    environments:
      - name: {env}
{body}"""


def _regional(count: int, region: str, first_account: int) -> str:
    return "".join(
        _customer(
            f"rc{region[:2]}{i:02d}",
            f"{first_account + i:012d}",
            "regional",
            "        production: false\n        generate: {servers: 1, waves: 1}",
            region=region,
        )
        for i in range(1, count + 1)
    )


ESTATE = f"""
regions: {{us-east-1: us-east-2, eu-west-1: eu-central-1}}
timing: {{drs_launch_seconds: {FAST}}}
customers:
{_customer("initrode", "310000000001", "production", "        generate: {servers: 3, waves: 2}")}
{
    _customer(
        "vandelay",
        "310000000002",
        "staging",
        '''        generate: {servers: 2, waves: 2}
        hooks:
          pre_wave: {outcomes: [Failed, Success], seconds: 0.3, message: "no backup in 24 h",
                     waves: [1]}
          post_wave: {seconds: 0.3, waves: [2]}''',
    )
}
{
    _customer(
        "wonka",
        "310000000003",
        "staging",
        '''        generate: {servers: 3, waves: 2}
        servers:
          - {name: wonka-stg-ad-01, replication: {state: STALLED}}''',
    )
}
{
    _customer(
        "soylent",
        "310000000004",
        "staging",
        '''        generate: {servers: 4, waves: 2}
        servers:
          - {name: soylent-stg-db-001, replication: {state: STALLED}}''',
    )
}
{_customer("tyrell", "310000000005", "staging", "        generate: {servers: 6, waves: 2}")}
{_customer("cyberdyne", "310000000006", "staging", "        generate: {servers: 2, waves: 2}")}
""" + _regional(REGIONAL_FAST, "eu-west-1", 320000000000)
REGIONAL_ESTATE = f"""
regions: {{ap-southeast-1: ap-southeast-2}}
timing: {{drs_launch_seconds: {FAST}}}
customers:
{_regional(REGIONAL_SLOW, "ap-southeast-1", 330000000000)}
"""


def _seed(sandbox: Sandbox, text: str, name: str) -> Estate:
    parsed = parse_estate(text, name)
    # Seeding creates the estate's hooks too (documents, emulated outcomes, configuration).
    summary = seed_estate(
        parsed, sandbox.url, orchestration_region=sandbox.settings.orchestration_region
    )
    sandbox.connect(summary.customers)
    admin(sandbox, "/_sandbox/config", {"drs_launch_seconds": FAST})
    return parsed


@pytest.fixture(scope="module")
def estate(sandbox: Sandbox) -> Estate:
    return _seed(sandbox, ESTATE, "coordinator-e2e.yaml")


@pytest.fixture
def fast(sandbox: Sandbox, estate: Estate) -> Iterator[None]:
    admin(sandbox, "/_sandbox/config", {"drs_launch_seconds": FAST})
    yield
    admin(sandbox, "/_sandbox/config", {"drs_launch_seconds": FAST})


# --- helpers ---------------------------------------------------------------------------------


def _aws(sandbox: Sandbox, service: str) -> Any:
    return boto3.client(service, endpoint_url=sandbox.url, region_name="us-east-2")


def _table(sandbox: Sandbox) -> Any:
    return boto3.resource("dynamodb", endpoint_url=sandbox.url, region_name="us-east-2").Table(
        sandbox.settings.operations_table
    )


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def state_of(sandbox: Sandbox, op: str) -> str | None:
    view = read_operation(_table(sandbox), op)
    return view.state if view else None


def wait_state(sandbox: Sandbox, op: str, *states: str, timeout: float = 60) -> Any:
    wait_for(f"{op} in {states}", lambda: state_of(sandbox, op) in states, timeout)
    return read_operation(_table(sandbox), op)


def start(sandbox: Sandbox, customer: str, env: str, *extra: str) -> str:
    started = drctl(sandbox, "failover", "-c", customer, "-e", env, "--yes", "-o", "json", *extra)
    assert started.returncode == 0, started.stderr
    return str(json.loads(started.stdout)["operation_id"])


def status(sandbox: Sandbox, op: str) -> dict[str, Any]:
    shown = drctl(sandbox, "status", op, "-o", "json")
    assert shown.returncode in (0, 1), shown.stderr
    return dict(json.loads(shown.stdout))


def probe(sandbox: Sandbox, name: str, pattern: dict[str, Any]) -> tuple[Any, str]:
    """A queue fed by a rule on the orchestration bus (what a watcher of the bus sees)."""
    sqs, events = _aws(sandbox, "sqs"), _aws(sandbox, "events")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    bus = sandbox.settings.bus_name
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "probe", "Arn": arn}])
    return sqs, url


def receive(sqs: Any, url: str, match: Callable[[dict[str, Any]], bool], timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            if match(body):
                return body
    raise AssertionError("expected message never arrived")


def wave_gaps(view: Any) -> list[float]:
    """Seconds from the last resource result of each wave to the start of the next wave."""
    gaps = []
    for earlier, later in zip(view.waves, view.waves[1:], strict=False):
        ends = [r.completed_at for r in view.resources if r.wave == earlier.number]
        if ends and all(ends) and later.started_at:
            gaps.append((later.started_at - max(ends)).total_seconds())
    return gaps


# --- scenarios ---------------------------------------------------------------------------------


def test_seeding_an_estate_creates_its_hooks(sandbox: Sandbox, estate: Estate) -> None:
    # Given the module's estate, seeded with seed_estate alone (what drctl sandbox seed/up runs)
    ssm = _aws(sandbox, "ssm")

    # Then vandelay/staging has its hook configuration, naming documents of its own account
    value = ssm.get_parameter(Name=hook_parameter_name("vandelay", "staging"))["Parameter"]
    config = HookConfig.model_validate_json(value["Value"])
    assert config.pre_wave is not None and config.post_wave is not None
    assert (config.pre_wave.document_name, config.pre_wave.waves) == (
        "vandelay-staging-pre-wave",
        [1],
    )
    assert (config.post_wave.document_name, config.post_wave.waves) == (
        "vandelay-staging-post-wave",
        [2],
    )
    workload = _workload(sandbox, "vandelay", "310000000002", "ssm", "us-east-2")
    document = workload.describe_document(Name="vandelay-staging-pre-wave")["Document"]
    assert document["DocumentType"] == "Automation"
    # and an environment without hooks has none
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=hook_parameter_name("initrode", "production"))


def test_approval_required_refuses_bad_tokens_approves_rejects_and_shows_who(
    sandbox: Sandbox, estate: Estate, fast: None
) -> None:
    # Given an approver subscribed to the approval topic
    sqs, sns = _aws(sandbox, "sqs"), _aws(sandbox, "sns")
    inbox = sqs.create_queue(QueueName="e2e-approver-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=approval_topic_arn(sandbox.settings), Protocol="sqs", Endpoint=arn)
    refusals, refused_url = probe(
        sandbox,
        "e2e-approval-refused",
        {"source": [Source.COORDINATOR.value], "detail-type": [DetailType.APPROVAL_REFUSED.value]},
    )

    # When a production failover starts without --approval
    op = start(sandbox, "initrode", "production")

    # Then wave 1 waits for approval and the approver is notified with a token
    def token_for(wave: int) -> str:
        note = receive(sqs, inbox, lambda b: f"wave {wave}" in b.get("Subject", ""))
        assert op in note["Message"] and "RTO target" in note["Message"]
        found = re.search(r"--token (\S+)", note["Message"])
        assert found is not None
        return found.group(1)

    first = token_for(1)
    view = wait_state(sandbox, op, "RUNNING")
    assert view.waves[0].state == "AWAITING_APPROVAL" and view.waves[1].state == "PENDING"
    plan = drctl(sandbox, "plan", "-c", "initrode", "-e", "production", "-o", "json")
    assert json.loads(plan.stdout)["approval_mode"] == "required"

    # A forged token is refused (exit 2, reason), and nothing moves
    forged = drctl(sandbox, "approve", op, "--wave", "1", "--token", "apv-forged-000", "-o", "json")
    assert forged.returncode == 2, forged.stderr
    assert json.loads(forged.stdout)["code"] == "TOKEN_MISMATCH"
    # A decision naming another scope (a plain put-events) is refused too
    _aws(sandbox, "events").put_events(
        Entries=[
            {
                "Source": Source.APPROVAL.value,
                "DetailType": DetailType.APPROVAL_GRANTED.value,
                "EventBusName": sandbox.settings.bus_name,
                "Detail": json.dumps(
                    {
                        "operation_id": op,
                        "customer": "wonka",
                        "environment": "production",
                        "operation": "failover",
                        "wave": 1,
                        "token": first,
                        "approver": "mallory@example.com",
                    }
                ),
            }
        ]
    )
    mismatch = receive(refusals, refused_url, lambda b: b["detail"]["approver"].startswith("mal"))
    assert mismatch["detail"]["code"] == "SCOPE_MISMATCH"
    assert read_operation(_table(sandbox), op).waves[0].state == "AWAITING_APPROVAL"  # type: ignore[union-attr]

    # The right token approves wave 1; used again, it is refused as reused
    approved = drctl(
        sandbox, "approve", op, "--wave", "1", "--token", first, "--by", "lead@example.com"
    )
    assert approved.returncode == 0, approved.stderr
    reused = drctl(sandbox, "approve", op, "--wave", "1", "--token", first, "-o", "json")
    assert reused.returncode == 2 and json.loads(reused.stdout)["code"] == "TOKEN_REUSED"

    # Wave 2 asks again with a new token; the approver rejects it: the operation is CANCELLED
    second = token_for(2)
    assert second != first
    rejected = drctl(
        sandbox,
        "reject",
        op,
        "--wave",
        "2",
        "--token",
        second,
        "--reason",
        "app team not ready",
        "--by",
        "cab@example.com",
    )
    assert rejected.returncode == 0, rejected.stderr
    wait_for("the cancellation announced", lambda: read_details(_table(sandbox), op).ended)  # type: ignore[union-attr]

    # Then status shows who approved and rejected what and when, and the refusals
    shown = status(sandbox, op)
    assert shown["state"] == "CANCELLED" and shown["cancelled_by"] == "cab@example.com"
    assert shown["approval_mode"] == "required"
    assert shown["approval_mode_chosen_by"] == "default: default for a production failover"
    [one, two] = shown["approvals"]
    assert (one["wave"], one["decision"], one["decided_by"]) == (1, "granted", "lead@example.com")
    assert (two["wave"], two["decision"], two["decided_by"]) == (2, "rejected", "cab@example.com")
    assert one["decided_at"] and two["decided_at"] > one["decided_at"]
    assert [r["code"] for r in one["refused"]] == ["TOKEN_MISMATCH", "TOKEN_REUSED"]
    assert [w["state"] for w in shown["waves"]] == ["COMPLETED", "CANCELLED"]
    text = drctl(sandbox, "status", op)
    assert "lead@example.com" in text.stdout and "Approvals" in text.stdout


def test_a_failing_pre_wave_hook_pauses_and_resume_retry_runs_it_again(
    sandbox: Sandbox, estate: Estate, fast: None
) -> None:
    # Given vandelay/staging, whose pre-wave hook fails on its first run
    op = start(sandbox, "vandelay", "staging")

    # Then wave 1 fails on its hook before anything recovers, and the operation pauses
    view = wait_state(sandbox, op, "PAUSED")
    assert view.waves[0].state == "FAILED" and view.waves[0].recovered == 0
    paused = status(sandbox, op)
    [pre] = paused["hooks"]
    assert (pre["phase"], pre["status"], pre["attempt"]) == ("pre-wave", "Failed", 1)
    assert pre["failure_message"] == "no backup in 24 h"
    assert "vandelay-staging-pre-wave" in view.reason

    # When the operator retries what failed
    resumed = drctl(sandbox, "resume", op, "--retry-failed", "-o", "json")
    assert resumed.returncode == 0, resumed.stderr

    # Then the hook runs again and succeeds, the waves recover, wave 2's post hook runs
    done = wait_state(sandbox, op, "COMPLETED", "FAILED", "PAUSED")
    assert done.state == "COMPLETED"
    hooks = status(sandbox, op)["hooks"]
    assert [(h["wave"], h["phase"], h["attempt"], h["status"]) for h in hooks] == [
        (1, "pre-wave", 2, "Success"),
        (2, "post-wave", 1, "Success"),
    ]
    assert {r.state for r in done.resources} == {"RECOVERED"}
    gaps = wave_gaps(done)
    print(f"\nvandelay: last result of a wave -> next wave started: {gaps} s")


def test_failed_servers_pause_then_skip_failed_and_retry_failed(
    sandbox: Sandbox, estate: Estate, fast: None
) -> None:
    # Given wonka, whose wave-1 server has stalled replication
    op = start(sandbox, "wonka", "staging")
    view = wait_state(sandbox, op, "PAUSED")
    [bad] = [r for r in view.resources if r.state == "FAILED"]
    assert bad.name == "wonka-stg-ad-01" and bad.error_code
    assert view.waves[1].state == "PENDING"

    # When the failure is accepted, the next wave runs and the operation completes
    skipped = drctl(sandbox, "resume", op, "--skip-failed", "--wait", "-o", "json")
    assert skipped.returncode == 0, skipped.stderr
    final = json.loads(skipped.stdout)
    assert final["state"] == "COMPLETED"
    assert [(w["recovered"], w["failed"]) for w in final["waves"]] == [(1, 1), (1, 0)]
    assert status(sandbox, op)["wave_runs"][0]["failures_accepted_by"]

    # Given soylent, whose wave-2 server is stalled: paused on wave 2
    op = start(sandbox, "soylent", "staging")
    view = wait_state(sandbox, op, "PAUSED")
    [bad] = [r for r in view.resources if r.state == "FAILED"]
    assert bad.wave == 2

    # When replication recovers (the agent reports again) and the operator retries what failed
    ec2 = _workload(sandbox, "soylent", "310000000004", "ec2", "us-east-1")
    [instance] = [
        i
        for r in ec2.describe_instances(
            Filters=[{"Name": "tag:Name", "Values": ["soylent-stg-db-001"]}]
        )["Reservations"]
        for i in r["Instances"]
    ]
    admin(
        sandbox,
        "/_sandbox/drs/source-servers",
        {
            "account": "310000000004",
            "region": "us-east-2",
            "source_servers": [
                {
                    "instance_id": instance["InstanceId"],
                    "hostname": "soylent-stg-db-001",
                    "private_ip": instance["PrivateIpAddress"],
                    "tags": {t["Key"]: t["Value"] for t in instance["Tags"]},
                    "replication_state": "CONTINUOUS",
                    "origin_region": "us-east-1",
                }
            ],
        },
    )
    retried = drctl(sandbox, "resume", op, "--retry-failed", "--wait", "-o", "json")
    assert retried.returncode == 0, retried.stderr

    # Then only that server ran again (attempt 2) and every server is recovered
    final = json.loads(retried.stdout)
    assert final["state"] == "COMPLETED"
    assert {r["state"] for r in final["resources"]} == {"RECOVERED"}
    assert [w["attempt"] for w in status(sandbox, op)["wave_runs"]] == [1, 2]


def test_abort_mid_wave_starts_nothing_new_and_records_what_was_in_flight(
    sandbox: Sandbox, estate: Estate, fast: None
) -> None:
    # Given tyrell's failover with slow launches, wave 1 in flight
    admin(sandbox, "/_sandbox/config", {"drs_launch_seconds": [2.0, 3.0]})
    op = start(sandbox, "tyrell", "staging")
    wait_for(
        "wave 1 launching",
        lambda: (
            (v := read_operation(_table(sandbox), op)) is not None
            and v.waves
            and v.waves[0].state == "RECOVERING"
        ),
    )

    # When the operator aborts
    aborted = drctl(sandbox, "abort", op, "--yes", "--reason", "primary is back", "-o", "json")
    assert aborted.returncode == 0, aborted.stderr
    assert json.loads(aborted.stdout)["state"] == "CANCELLED"

    # Then the launches in flight finish and are recorded, wave 2 never starts
    wait_for("the in-flight results", lambda: read_details(_table(sandbox), op).ended, 60)  # type: ignore[union-attr]
    view = read_operation(_table(sandbox), op)
    assert view is not None and view.state == "CANCELLED"
    first, second = view.waves
    assert first.recovered + first.failed == first.expected and first.state in (
        "COMPLETED",
        "FAILED",
    )
    assert second.state == "CANCELLED" and second.started_at is None
    assert {r.state for r in view.resources if r.wave == 2} == {"PENDING"}
    # and the environment is free again
    again = start(sandbox, "tyrell", "staging", "--dry-run")
    assert wait_state(sandbox, again, "COMPLETED", "FAILED").state == "COMPLETED"


def test_a_lost_resource_result_is_recovered_by_the_reconciler(
    sandbox: Sandbox, estate: Estate, fast: None
) -> None:
    sqs = _aws(sandbox, "sqs")
    watcher, url = probe(
        sandbox,
        "e2e-reconciler-probe",
        {
            "source": [Source.DRS.value, Source.COORDINATOR.value],
            "detail-type": [
                DetailType.RESOURCE_RECOVERED.value,
                DetailType.RESOURCE_CHECK_REQUESTED.value,
            ],
            "detail": {"customer": ["cyberdyne"]},
        },
    )
    # Given the first ResourceRecovered of cyberdyne's wave 1 never reaches the coordinator
    lost: list[dict[str, Any]] = []

    def drop(service: str, body: dict[str, Any]) -> bool:
        detail = body.get("detail") or {}
        if (
            not lost
            and service == "coordinator"
            and body.get("detail-type") == DetailType.RESOURCE_RECOVERED.value
            and detail.get("customer") == "cyberdyne"
        ):
            lost.append(body)
            return True
        return False

    sandbox.runtime.inject(RuntimeFaults(drop=drop))
    try:
        op = start(sandbox, "cyberdyne", "staging")
        wait_for("a result lost", lambda: lost)
    finally:
        sandbox.runtime.inject(RuntimeFaults())
    # Then wave 1 stalls on its missing result: nothing further starts
    time.sleep(1.0)
    view = read_operation(_table(sandbox), op)
    assert view is not None and view.state == "RUNNING"
    assert [w.state for w in view.waves] == ["RECOVERING", "PENDING"]
    assert [r.state for r in view.resources if r.wave == view.waves[0].number] == ["RECOVERING"]

    # When the reconciler runs (forced: the resource's RTO target is minutes away)
    sqs.send_message(
        QueueUrl=sandbox.deployed.queue_urls["coordinator"],
        MessageBody=json.dumps({"kind": RECONCILE_KIND, "operation_id": op, "force": True}),
    )

    # Then it asks drs to re-check the stuck resource, drs publishes the result it kept (the
    # same content), the wave completes and the next one runs to the end
    check = receive(watcher, url, lambda b: b["detail-type"] == "ResourceCheckRequested")
    assert check["detail"]["operation_id"] == op and check["detail"]["strategy"] == "drs"
    resource_id = lost[0]["detail"]["resource_id"]
    assert [r["resource_id"] for r in check["detail"]["resources"]] == [resource_id]
    again = receive(
        watcher,
        url,
        lambda b: (
            b["detail-type"] == "ResourceRecovered" and b["detail"]["resource_id"] == resource_id
        ),
    )
    assert again["detail"] == lost[0]["detail"]
    done = wait_state(sandbox, op, "COMPLETED", "FAILED", "PAUSED")
    assert done.state == "COMPLETED"
    assert [(w.state, w.recovered) for w in done.waves] == [("COMPLETED", 1), ("COMPLETED", 1)]
    assert sandbox.runtime.stats["coordinator"].dropped_records == 1
    # and drs launched each server once
    launches = [
        p for p in sandbox.app.drs.launch_plans() if p.get("tags", {}).get("dr:operation-id") == op
    ]
    assert len(launches) == 2


def assert_regional(sandbox: Sandbox, parent: dict[str, Any], customers: set[str]) -> None:
    """Every customer had its own operation, all completed, shown under the parent, accepted
    together before any of them began recovering."""
    assert (parent["customer"], parent["state"]) == ("*", "COMPLETED")
    shown = status(sandbox, parent["operation_id"])
    children = shown["children"]
    assert {c["customer"] for c in children} == customers
    assert {(c["state"], c["recovered"], c["failed"]) for c in children} == {("COMPLETED", 1, 0)}
    views = [read_operation(_table(sandbox), c["operation_id"]) for c in children]
    assert all(v is not None and v.customer in customers for v in views)
    accepted = max(v.created_at for v in views if v is not None and v.created_at)
    began = min(v.waves[0].started_at for v in views if v is not None and v.waves[0].started_at)
    assert accepted <= began
    for child in children:
        one = status(sandbox, child["operation_id"])
        assert one["parent_operation_id"] == parent["operation_id"] and one["waves"]


def test_a_regional_request_with_customer_star_fails_over_every_customer_of_the_region(
    sandbox: Sandbox, estate: Estate, fast: None
) -> None:
    # When an operator puts the regional request on the bus directly (customer `*`)
    parent_id = "op-e2e-regional-eu-west-1"
    _aws(sandbox, "events").put_events(
        Entries=[
            {
                "Source": Source.CLI.value,
                "DetailType": DetailType.OPERATION_REQUESTED.value,
                "EventBusName": sandbox.settings.bus_name,
                "Detail": json.dumps(
                    {
                        "operation_id": parent_id,
                        "customer": "*",
                        "environment": "regional",
                        "operation": "failover",
                        "requested_by": "oncall@example.com",
                        "region_map": {"eu-west-1": "eu-central-1"},
                        "reason": "eu-west-1 outage",
                    }
                ),
            }
        ]
    )

    # Then one operation per customer of the region ran, and the parent completed
    parent = wait_state(sandbox, parent_id, "COMPLETED", "FAILED", timeout=120)
    assert_regional(
        sandbox,
        parent.model_dump(mode="json"),
        {f"rceu{i:02d}" for i in range(1, REGIONAL_FAST + 1)},
    )


@pytest.mark.slow
def test_a_regional_outage_of_20_customers_through_drctl(sandbox: Sandbox) -> None:
    _seed(sandbox, REGIONAL_ESTATE, "regional-e2e.yaml")
    started = time.monotonic()
    result = drctl(
        sandbox,
        "failover",
        "--all-customers",
        "--region",
        "ap-southeast-1",
        "--yes",
        "--wait",
        "--timeout",
        "300",
        "-o",
        "json",
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert_regional(
        sandbox,
        json.loads(result.stdout),
        {f"rcap{i:02d}" for i in range(1, REGIONAL_SLOW + 1)},
    )
    print(f"\nregional failover of {REGIONAL_SLOW} customers: {elapsed:.1f} s")


def _workload(sandbox: Sandbox, customer: str, account: str, service: str, region: str) -> Any:
    creds = _aws(sandbox, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/dr-orchestrator-workload",
        RoleSessionName="e2e",
        ExternalId=f"dr-{customer}",
    )["Credentials"]
    return boto3.client(
        service,
        endpoint_url=sandbox.url,
        region_name=region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
