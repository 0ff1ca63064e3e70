"""The coordinator's other adapters under moto: round trips of the new item attributes, the
conditional writes approvals and hooks rely on, Parameter Store (registry, hook configuration),
SNS notifications and the delayed messages on its own queue."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from drcore.registry import parameter_name
from drcore.settings import Settings
from drcore.state import OperationState, read_operation
from events.schemas import ApprovalMode
from events.schemas.names import ApprovalDecision, ApprovalRefusalCode, HookPhase
from services.coordinator.adapters import (
    DynamoRepository,
    SnsNotifier,
    SqsSelfScheduler,
    SsmHookConfigs,
    SsmRegistry,
    approval_topic_arn,
)
from services.coordinator.approvals import Approval
from services.coordinator.domain import (
    ApprovalRefusal,
    FailedPhase,
    WavePhase,
    WaveRecord,
    record_from_request,
    resource_record,
)
from services.coordinator.hooks import (
    HookCheck,
    HookConfig,
    HookConfigInvalid,
    HookRef,
    HookRun,
    HookSpec,
    WorkloadTarget,
    hook_parameter_name,
)
from services.coordinator.regional import ChildOutcome, ChildPlan
from tests.unit.test_coordinator_domain import T0, entry, request, resource

OP = "op-000001"


@pytest.fixture
def repo(tables: dict[str, Any]) -> DynamoRepository:
    return DynamoRepository(tables["operations"], sleep=lambda _: None)


def test_given_rich_operation_and_wave_items_when_read_back_then_nothing_is_lost(
    repo: DynamoRepository, tables: dict[str, Any]
):
    # Given an operation with hooks, a workload target and children, and a wave mid-approval
    meta = record_from_request(
        request(approval_mode=ApprovalMode.REQUIRED),
        OperationState.RUNNING,
        T0,
        hooks=HookConfig(pre_wave=HookSpec(document_name="acme-pre", waves=[1, 3])),
        workload=WorkloadTarget(
            account="111111111111", region="us-east-2", role_name="r", external_id="x"
        ),
        children=(ChildPlan("op-child-01", "acme", "production", {"us-east-1": "us-east-2"}),),
    )
    assert repo.create_operation(meta)
    approval = Approval(requested_at=T0).issue("h1", T0, T0 + timedelta(hours=1))
    wave = WaveRecord(
        number=1,
        state=WavePhase.AWAITING_APPROVAL,
        expected=2,
        updated_at=T0,
        approval_required=True,
        approval=approval,
        pre_hook=HookRun(HookPhase.PRE_WAVE, 1, "acme-pre", "exec-1", T0, "Success", T0),
        failed_phase=FailedPhase.RESOURCES,
    )
    repo.put_plan_items(OP, [wave], [resource_record(resource("i-1", 1), 1)], overwrite=True)

    # Then both read back equal, and the CLI's read model still reads them
    assert repo.get_operation(OP) == meta
    assert repo.get_wave(OP, 1) == wave
    view = read_operation(tables["operations"], OP)
    assert view is not None and view.waves[0].state == "AWAITING_APPROVAL"


def test_given_where_conditions_when_updating_then_nested_and_absent_values_decide(
    repo: DynamoRepository,
):
    repo.create_operation(record_from_request(request(), OperationState.RUNNING, T0))
    approval = Approval(requested_at=T0)
    repo.put_plan_items(
        OP,
        [WaveRecord(1, WavePhase.AWAITING_APPROVAL, 1, T0, approval=approval)],
        [],
        overwrite=True,
    )
    expect = (WavePhase.AWAITING_APPROVAL,)
    issued = approval.issue("h1", T0, T0)
    # the notification count is the optimistic lock of an approval
    assert not repo.update_wave(OP, 1, expect, {"approval": issued}, {"approval.notifications": 3})
    assert repo.update_wave(OP, 1, expect, {"approval": issued}, {"approval.notifications": 0})
    # absent means attribute_not_exists
    assert repo.update_wave(
        OP, 1, expect, {"hook_execution_id": "e-1"}, {"hook_execution_id": None}
    )
    assert not repo.update_wave(
        OP, 1, expect, {"hook_execution_id": "e-2"}, {"hook_execution_id": None}
    )
    wave = repo.get_wave(OP, 1)
    assert wave is not None and wave.hook_execution_id == "e-1"
    assert wave.approval is not None and wave.approval.notifications == 1


def test_given_refusals_checks_child_outcomes_hook_refs_and_the_active_list_then_they_persist(
    repo: DynamoRepository,
):
    parent = record_from_request(
        request("op-parent1", customer="*", environment="all"),
        OperationState.RUNNING,
        T0,
        children=(ChildPlan("op-000001", "acme", "production", {}),),
    )
    repo.create_operation(parent)
    repo.record_child_outcome(
        "op-parent1", "op-000001", ChildOutcome(OperationState.COMPLETED, 2, 5, 1)
    )
    repo.record_child_outcome(
        "op-parent1", "op-000001", ChildOutcome(OperationState.COMPLETED, 2, 5, 1)
    )
    stored = repo.get_operation("op-parent1")
    assert stored is not None
    assert stored.child_outcomes == {"op-000001": ChildOutcome(OperationState.COMPLETED, 2, 5, 1)}

    repo.create_operation(record_from_request(request(), OperationState.RUNNING, T0))
    repo.put_plan_items(
        OP,
        [WaveRecord(1, WavePhase.RECOVERING, 1, T0)],
        [resource_record(resource("i-1", 1), 1)],
        overwrite=True,
    )
    refusal = ApprovalRefusal(
        T0, "mallory", ApprovalDecision.GRANTED, ApprovalRefusalCode.TOKEN_MISMATCH, "no", T0
    )
    repo.append_refusal(OP, 1, refusal)
    repo.append_refusal(OP, 1, refusal)
    assert repo.get_wave(OP, 1).refusals == (refusal, refusal)  # type: ignore[union-attr]
    repo.mark_checked(OP, ["i-1"], T0)
    repo.mark_checked(OP, ["i-1"], T0 + timedelta(minutes=5))
    item = repo.get_resource(OP, "i-1")
    assert item is not None and (item.checks, item.last_check_at) == (2, T0 + timedelta(minutes=5))

    ref = HookRef(OP, 1, HookPhase.POST_WAVE, 2)
    repo.put_hook_ref("exec-9", ref)
    assert repo.get_hook_ref("exec-9") == ref and repo.get_hook_ref("exec-0") is None

    repo.mark_active(OP, T0)
    repo.mark_active("op-000002", T0)
    repo.clear_active("op-000002")
    assert repo.list_active() == [(OP, T0)]


def test_given_parameters_when_read_then_registry_and_hook_configuration_parse(
    moto_aws: None, settings: Settings
):
    ssm = boto3.client("ssm", region_name=settings.orchestration_region)
    acme = entry()
    ssm.put_parameter(Name=parameter_name("acme"), Value=acme.model_dump_json(), Type="String")
    config = HookConfig(post_wave=HookSpec(document_name="acme-post", timeout_seconds=600))
    ssm.put_parameter(
        Name=hook_parameter_name("acme", "production"),
        Value=config.model_dump_json(),
        Type="String",
    )
    ssm.put_parameter(
        Name=hook_parameter_name("acme", "staging"),
        Value=json.dumps({"pre_wave": {"document": "typo"}}),
        Type="String",
    )

    registry, hooks = SsmRegistry(ssm), SsmHookConfigs(ssm)
    assert registry.customer("acme") == acme and registry.customer("nobody") is None
    assert [e.name for e in registry.customers()] == ["acme"]
    assert hooks.get("acme", "production") == config
    assert hooks.get("acme", "dev") is None
    with pytest.raises(HookConfigInvalid, match=r"pre_wave\.document_name"):
        hooks.get("acme", "staging")


def test_given_the_approval_topic_when_notified_then_subscribers_get_the_message(
    moto_aws: None, settings: Settings
):
    sns = boto3.client("sns", region_name=settings.orchestration_region)
    sqs = boto3.client("sqs", region_name=settings.orchestration_region)
    topic = sns.create_topic(Name=settings.approval_topic_name)["TopicArn"]
    assert topic == approval_topic_arn(settings)
    url = sqs.create_queue(QueueName="approvers")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)

    SnsNotifier(sns, topic).notify("Approve wave 1", "token: apv-1", {"wave": "1"})

    [message] = sqs.receive_message(QueueUrl=url)["Messages"]
    body = json.loads(message["Body"])
    assert (body["Subject"], body["Message"]) == ("Approve wave 1", "token: apv-1")
    assert body["MessageAttributes"]["wave"]["Value"] == "1"


def test_given_a_hook_check_when_scheduled_then_it_lands_on_the_coordinator_queue_delayed(
    moto_aws: None, settings: Settings
):
    sqs = boto3.client("sqs", region_name=settings.orchestration_region)
    url = sqs.create_queue(QueueName="dr-coordinator")["QueueUrl"]
    check = HookCheck(operation_id=OP, wave=2, execution_id="e" * 36, check=3)

    SqsSelfScheduler(sqs, "dr-coordinator").schedule(check, 40)
    SqsSelfScheduler(sqs, "dr-coordinator").schedule(check, 5000)  # capped at 15 minutes

    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []  # still delayed
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "2"


def test_given_an_operation_when_its_details_are_read_then_status_gets_approvals_and_hooks(
    repo: DynamoRepository, tables: dict[str, Any]
):
    from drcore.state import OperationView
    from services.coordinator.views import OperationDetails, read_details

    # Given a wave approved after a refused attempt, with its pre-wave hook run
    repo.create_operation(
        record_from_request(
            request(approval_mode=ApprovalMode.REQUIRED), OperationState.RUNNING, T0
        )
    )
    approval = (
        Approval(requested_at=T0)
        .issue("h1", T0, T0 + timedelta(hours=1))
        .decide(ApprovalDecision.GRANTED, "lead", T0 + timedelta(minutes=3), "h1", T0, "go")
    )
    wave = WaveRecord(
        1,
        WavePhase.RECOVERING,
        1,
        T0,
        approval_required=True,
        approval=approval,
        pre_hook=HookRun(HookPhase.PRE_WAVE, 1, "acme-pre", "exec-1", T0, "Success", T0),
    )
    repo.put_plan_items(OP, [wave], [], overwrite=True)
    repo.append_refusal(
        OP,
        1,
        ApprovalRefusal(
            T0, "mallory", ApprovalDecision.GRANTED, ApprovalRefusalCode.TOKEN_MISMATCH, "no", T0
        ),
    )

    details = read_details(tables["operations"], OP)

    # Then who decided what and when, what was refused, and the hook run are there
    assert details is not None and details.approval_mode == "required"
    [shown] = details.approvals
    assert (shown.decision, shown.decided_by, shown.decided_at, shown.comment) == (
        "granted",
        "lead",
        T0 + timedelta(minutes=3),
        "go",
    )
    assert [r.code for r in shown.refused] == ["TOKEN_MISMATCH"]
    assert [(h.phase, h.status) for h in details.hooks] == [("pre-wave", "Success")]
    assert read_details(tables["operations"], "op-missing") is None
    # and nothing in them shadows the status JSON they are merged into
    assert set(OperationDetails.model_fields) & set(OperationView.model_fields) == {"operation_id"}
