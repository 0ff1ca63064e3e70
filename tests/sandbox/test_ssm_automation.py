"""The SSM Automation emulator through a real boto3 `ssm` client (botocore's model is the truth),
next to moto's SSM for everything else; and the coordinator's hook runner against it."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox.emulators import Knobs
from sandbox.emulators.ssm_automation import (
    STATUS_DETAIL_TYPE,
    SsmAutomationEmulator,
    hook_document,
    parse_duration,
)

from .conftest import DR, Admin, ClientFactory, assume

pytestmark = pytest.mark.sandbox

ACCOUNT = "111111111111"
CONTEXT = ("OperationId", "Wave")


@pytest.fixture(autouse=True)
def _fresh(admin: Admin) -> None:
    admin.reset()


def document(ssm: Any, name: str = "acme-pre-wave", seconds: float = 1, **content: Any) -> str:
    body = hook_document(CONTEXT, seconds) | content
    ssm.create_document(
        Name=name, Content=json.dumps(body), DocumentType="Automation", DocumentFormat="JSON"
    )
    return name


def native_queue(client: ClientFactory, creds: Any) -> tuple[Any, str]:
    """A rule on the DEFAULT bus routing aws.ssm events to a queue."""
    sqs = client("sqs", creds=creds)
    url = sqs.create_queue(QueueName="ssm-native")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = client("events", creds=creds)
    events.put_rule(Name="ssm-native", EventPattern=json.dumps({"source": ["aws.ssm"]}))
    events.put_targets(Rule="ssm-native", Targets=[{"Id": "q", "Arn": arn}])
    return sqs, url


def drain(sqs: Any, url: str, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        for message in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def wait_status(ssm: Any, execution: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = ssm.get_automation_execution(AutomationExecutionId=execution)[
            "AutomationExecution"
        ]
        if current["AutomationExecutionStatus"] not in ("Pending", "InProgress"):
            return dict(current)
        assert time.monotonic() < deadline, current
        time.sleep(0.05)


def test_given_operations_then_only_automation_executions_are_emulated():
    emulator = SsmAutomationEmulator(Knobs())
    assert set(emulator.targets()) == {
        f"AmazonSSM.{op}"
        for op in (
            "StartAutomationExecution",
            "GetAutomationExecution",
            "StopAutomationExecution",
            "DescribeAutomationExecutions",
        )
    }
    assert parse_duration("PT1M30S") == 90 and parse_duration("PT0.2S") == 0.2
    assert parse_duration("soon") == 0


def test_given_an_automation_document_when_started_then_it_runs_its_sleep_and_tells_the_bus(
    client: ClientFactory,
):
    creds = assume(client, ACCOUNT)
    ssm = client("ssm", creds=creds)
    name = document(ssm, seconds=1)
    sqs, url = native_queue(client, creds)

    # When an execution starts with the document's parameters
    execution = ssm.start_automation_execution(
        DocumentName=name, Parameters={"OperationId": ["op-1"], "Wave": ["2"]}
    )["AutomationExecutionId"]

    # Then it runs (moto still answers the rest of SSM), ends Success after its aws:sleep
    assert ssm.get_parameters_by_path(Path="/").get("Parameters", []) == []
    running = ssm.get_automation_execution(AutomationExecutionId=execution)["AutomationExecution"]
    assert running["AutomationExecutionStatus"] == "InProgress"
    assert running["CurrentAction"] == "aws:sleep"
    done = wait_status(ssm, execution)
    assert done["AutomationExecutionStatus"] == "Success"
    assert done["Parameters"] == {"OperationId": ["op-1"], "Wave": ["2"]}
    assert (done["ExecutionEndTime"] - done["ExecutionStartTime"]).total_seconds() >= 0.9
    assert [s["StepStatus"] for s in done["StepExecutions"]] == ["Success"]

    # and the native status events reached the default bus (InProgress... then Success)
    events = drain(sqs, url, 3)
    assert {e["detail-type"] for e in events} == {STATUS_DETAIL_TYPE}
    assert [e["detail"]["Status"] for e in events][-1] == "Success"
    last = events[-1]
    assert last["source"] == "aws.ssm" and last["account"] == ACCOUNT and last["region"] == DR
    assert last["detail"]["ExecutionId"] == execution and last["detail"]["Definition"] == name
    assert last["resources"][0].endswith(f":automation-execution/{execution}")


def test_given_bad_requests_then_answered_as_ssm_does(client: ClientFactory):
    ssm = client("ssm", creds=assume(client, ACCOUNT))
    name = document(ssm)

    def code(**kwargs: Any) -> str:
        with pytest.raises(ClientError) as caught:
            ssm.start_automation_execution(**kwargs)
        return str(caught.value.response["Error"]["Code"])

    assert code(DocumentName="nope-doc") == "AutomationDefinitionNotFoundException"
    assert (
        code(DocumentName=name, DocumentVersion="7")
        == "AutomationDefinitionVersionNotFoundException"
    )
    assert (
        code(DocumentName=name, Parameters={"OperationId": ["x"], "Wave": ["1"], "Extra": ["y"]})
        == "InvalidAutomationExecutionParametersException"
    )
    assert (
        code(DocumentName=name, Parameters={"Wave": ["1"]})
        == "InvalidAutomationExecutionParametersException"
    )
    command = {"schemaVersion": "2.2", "mainSteps": []}
    ssm.create_document(Name="a-command", Content=json.dumps(command), DocumentType="Command")
    assert code(DocumentName="a-command") == "AutomationDefinitionNotFoundException"
    with pytest.raises(ClientError) as caught:
        ssm.get_automation_execution(AutomationExecutionId=str(uuid.uuid4()))
    assert caught.value.response["Error"]["Code"] == "AutomationExecutionNotFoundException"
    # the model's own constraints, e.g. the client token's pattern, are checked too
    raw = client("ssm", creds=assume(client, ACCOUNT), validate=False)
    with pytest.raises(ClientError) as caught:
        raw.start_automation_execution(DocumentName=name, ClientToken="not-a-uuid")
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_given_a_client_token_then_a_retried_start_returns_the_same_execution(
    client: ClientFactory,
):
    ssm = client("ssm", creds=assume(client, ACCOUNT))
    name = document(ssm)
    token = str(uuid.uuid4())
    params = {"OperationId": ["op-1"], "Wave": ["1"]}
    first = ssm.start_automation_execution(DocumentName=name, Parameters=params, ClientToken=token)
    again = ssm.start_automation_execution(DocumentName=name, Parameters=params, ClientToken=token)
    assert first["AutomationExecutionId"] == again["AutomationExecutionId"]
    with pytest.raises(ClientError) as caught:
        ssm.start_automation_execution(
            DocumentName=name, Parameters={**params, "Wave": ["2"]}, ClientToken=token
        )
    assert caught.value.response["Error"]["Code"] == "IdempotentParameterMismatch"


def test_given_behaviours_then_outcomes_follow_them_in_order_and_stop_cancels(
    client: ClientFactory, admin: Admin
):
    ssm = client("ssm", creds=assume(client, ACCOUNT))
    name = document(ssm, seconds=30)
    admin.post(
        "/_sandbox/ssm/automation",
        {
            "account": ACCOUNT,
            "region": DR,
            "documents": {
                name: {"outcomes": ["Failed", "Success"], "seconds": 0.1, "message": "x"}
            },
        },
    )
    params = {"OperationId": ["op-1"], "Wave": ["1"]}
    runs = [
        ssm.start_automation_execution(DocumentName=name, Parameters=params)[
            "AutomationExecutionId"
        ]
        for _ in range(3)
    ]
    results = [wait_status(ssm, run) for run in runs]
    assert [r["AutomationExecutionStatus"] for r in results] == ["Failed", "Success", "Success"]
    assert results[0]["FailureMessage"] == "x"
    listed = ssm.describe_automation_executions(
        Filters=[{"Key": "ExecutionStatus", "Values": ["Failed"]}]
    )["AutomationExecutionMetadataList"]
    assert [m["AutomationExecutionId"] for m in listed] == [runs[0]]

    slow = document(ssm, name="acme-slow", seconds=30)
    running = ssm.start_automation_execution(DocumentName=slow, Parameters=params)[
        "AutomationExecutionId"
    ]
    ssm.stop_automation_execution(AutomationExecutionId=running)
    assert wait_status(ssm, running)["AutomationExecutionStatus"] == "Cancelled"
    with pytest.raises(ClientError) as caught:
        ssm.stop_automation_execution(AutomationExecutionId=running)
    assert caught.value.response["Error"]["Code"] == "InvalidAutomationStatusUpdateException"
    status, body = admin.call("/_sandbox/ssm/automation", {"account": "1", "region": DR})
    assert status == 400 and "account" in body["message"]


def test_given_the_coordinators_hook_runner_then_it_starts_polls_and_stops_hooks(
    client: ClientFactory, endpoint: Any, monkeypatch: pytest.MonkeyPatch
):
    from drcore.aws import AwsClients
    from drcore.settings import Settings
    from services.coordinator.adapters import SsmHookRunner
    from services.coordinator.hooks import HookSpec, HookStartFailed, WorkloadTarget

    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.url)
    ssm = client("ssm", creds=assume(client, ACCOUNT, "dr-acme"))
    name = document(ssm, seconds=1)
    runner = SsmHookRunner(AwsClients(Settings()))
    target = WorkloadTarget(
        account=ACCOUNT, region=DR, role_name="dr-orchestrator-workload", external_id="dr-acme"
    )
    token = str(uuid.uuid4())
    params = {"OperationId": ["op-1"], "Wave": ["1"]}

    execution = runner.start(target, HookSpec(document_name=name), params, token)
    assert runner.start(target, HookSpec(document_name=name), params, token) == execution
    assert runner.status(target, execution).status == "InProgress"  # type: ignore[union-attr]
    runner.stop(target, execution)
    runner.stop(target, execution)  # already ended: quietly nothing
    stopped = runner.status(target, execution)
    assert stopped is not None and stopped.status == "Cancelled" and stopped.failure_message
    assert runner.status(target, str(uuid.uuid4())) is None
    with pytest.raises(HookStartFailed, match="AutomationDefinitionNotFound"):
        runner.start(target, HookSpec(document_name="missing-doc"), params, str(uuid.uuid4()))
