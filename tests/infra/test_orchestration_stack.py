"""The orchestration stack builds what the sandbox runtime builds, from the same declarations."""

from __future__ import annotations

import json
import math
from typing import Any

from drcore.audit import ARCHIVE_NAME, AUDIT_RULE_NAME, audit_rule_pattern
from drcore.subscriptions import NOT_A_REPLAY
from drcore.tables import TABLES, table_name
from infra.access import SERVICE_ACCESS
from infra.orchestration import schedule_expression, settings_for
from infra.schemas import registry_schemas
from services.catalog import SERVICES

from .conftest import REPO_ROOT, Synth

STACK = "DrOrchestration"


def _by_name(synth: Synth, type_: str, key: str) -> dict[str, dict[str, Any]]:
    return {p[key]: p for p in synth.properties(STACK, type_) if key in p}


def _logical_id(ref: Any) -> str:
    """The logical id a `Ref` or `Fn::GetAtt` points at."""
    if "Ref" in ref:
        return str(ref["Ref"])
    return str(ref["Fn::GetAtt"][0])


def _queue_ids(synth: Synth) -> dict[str, str]:
    return {
        r["Properties"]["QueueName"]: logical_id
        for logical_id, r in synth.resources(STACK, "AWS::SQS::Queue").items()
    }


def test_given_the_services_when_synthesized_then_each_subscription_is_one_rule_with_its_pattern(
    synth: Synth,
) -> None:
    rules = _by_name(synth, "AWS::Events::Rule", "Name")
    queues = _queue_ids(synth)
    for service in SERVICES:
        for subscription in service.subscriptions:
            rule = rules[service.rule_name(subscription)]
            assert rule["EventPattern"] == subscription.pattern()
            assert rule["EventPattern"]["replay-name"] == NOT_A_REPLAY["replay-name"]
            [target] = rule["Targets"]
            assert _logical_id(target["Arn"]) == queues[service.queue_name()]
            assert _logical_id(target["DeadLetterConfig"]["Arn"]) == queues[service.dlq_name()]
    expected = {s.rule_name(sub) for s in SERVICES for sub in s.subscriptions}
    service_rules = {n for n in rules if n.startswith(tuple(f"dr-{s.name}-" for s in SERVICES))}
    assert service_rules == expected


def test_given_every_rule_on_the_bus_when_synthesized_then_only_the_audit_rule_sees_replays(
    synth: Synth,
) -> None:
    for name, rule in _by_name(synth, "AWS::Events::Rule", "Name").items():
        if name == AUDIT_RULE_NAME:
            assert rule["EventPattern"] == audit_rule_pattern()
        else:
            assert rule["EventPattern"]["replay-name"] == [{"exists": False}], name


def test_given_the_services_when_synthesized_then_each_has_a_queue_and_a_dlq_as_declared(
    synth: Synth,
) -> None:
    queues = _by_name(synth, "AWS::SQS::Queue", "QueueName")
    ids = _queue_ids(synth)
    for service in SERVICES:
        queue, dlq = queues[service.queue_name()], queues[service.dlq_name()]
        assert queue["VisibilityTimeout"] == service.visibility_timeout
        assert queue["RedrivePolicy"]["maxReceiveCount"] == service.max_receive_count
        assert _logical_id(queue["RedrivePolicy"]["deadLetterTargetArn"]) == ids[service.dlq_name()]
        assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_given_the_declared_tables_when_synthesized_then_they_have_pitr_kms_ttl_and_protection(
    synth: Synth,
) -> None:
    tables = _by_name(synth, "AWS::DynamoDB::Table", "TableName")
    assert len(tables) == len(TABLES)
    settings = settings_for(synth.config)
    for spec in TABLES:
        table = tables[table_name(spec, settings)]
        keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
        assert keys["HASH"] == spec.partition_key
        assert keys.get("RANGE") == spec.sort_key
        assert table["TimeToLiveSpecification"] == {
            "AttributeName": spec.ttl_attribute,
            "Enabled": True,
        }
        assert [i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])] == [
            i.name for i in spec.indexes
        ]
    for table in tables.values():
        assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert table["SSESpecification"]["SSEEnabled"] is True
        assert table["SSESpecification"]["SSEType"] == "KMS"
        assert "KMSMasterKeyId" in table["SSESpecification"]
        assert table["DeletionProtectionEnabled"] is True
        assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert synth.resources(STACK, "AWS::Backup::BackupSelection")


def test_given_the_services_when_synthesized_then_each_lambda_is_arm64_python_with_partial_batches(
    synth: Synth,
) -> None:
    functions = _by_name(synth, "AWS::Lambda::Function", "FunctionName")
    mappings = {
        _logical_id(m["FunctionName"]): m
        for m in synth.properties(STACK, "AWS::Lambda::EventSourceMapping")
    }
    function_ids = {
        r["Properties"]["FunctionName"]: logical_id
        for logical_id, r in synth.resources(STACK, "AWS::Lambda::Function").items()
    }
    for service in SERVICES:
        name = f"dr-{service.name}"
        function = functions[name]
        assert function["Architectures"] == ["arm64"]
        assert function["Runtime"].startswith("python3.")
        assert int(function["Runtime"].split(".")[1]) >= 11
        module, _, handler = service.handler.partition(":")
        assert function["Handler"] == f"{module}.{handler}"
        assert function["Timeout"] <= service.visibility_timeout
        assert function["TracingConfig"] == {"Mode": "Active"}
        assert function["ReservedConcurrentExecutions"] >= 2
        assert any("AWSLambdaPowertoolsPythonV3" in str(layer) for layer in function["Layers"])
        assert function["Environment"]["Variables"]["DR_BUS_NAME"] == "dr-orchestration"
        mapping = mappings[function_ids[name]]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["BatchSize"] == service.batch_size
        window = math.ceil(service.batching_window_seconds)
        assert mapping.get("MaximumBatchingWindowInSeconds", 0) == window


def test_given_service_schedules_when_synthesized_then_each_sends_its_message_to_its_queue(
    synth: Synth,
) -> None:
    schedules = _by_name(synth, "AWS::Scheduler::Schedule", "Name")
    queues = _queue_ids(synth)
    expected = {f"dr-{s.name}-{sch.name}": (s, sch) for s in SERVICES for sch in s.schedules}
    assert set(schedules) == set(expected)
    for name, (service, schedule) in expected.items():
        target = schedules[name]["Target"]
        assert _logical_id(target["Arn"]) == queues[service.queue_name()]
        assert json.loads(target["Input"]) == schedule.message
        assert schedules[name]["ScheduleExpression"] == schedule_expression(schedule.rate_seconds)


def test_given_the_stack_when_synthesized_then_bus_archive_queues_topics_and_logs_use_the_cmk(
    synth: Synth,
) -> None:
    [key_id] = synth.resources(STACK, "AWS::KMS::Key")
    [bus] = synth.properties(STACK, "AWS::Events::EventBus")
    [archive] = synth.properties(STACK, "AWS::Events::Archive")
    assert key_id in json.dumps(bus["KmsKeyIdentifier"])
    assert archive["ArchiveName"] == ARCHIVE_NAME
    assert archive["RetentionDays"] == synth.config.orchestration.archive_retention_days > 365
    assert "EventPattern" not in archive  # every event, as the sandbox archives them
    assert key_id in json.dumps(archive["KmsKeyIdentifier"])
    for type_, field in (
        ("AWS::SQS::Queue", "KmsMasterKeyId"),
        ("AWS::SNS::Topic", "KmsMasterKeyId"),
        ("AWS::Logs::LogGroup", "KmsKeyId"),
    ):
        for properties in synth.properties(STACK, type_):
            assert key_id in json.dumps(properties[field]), (type_, properties)


def test_given_the_stack_when_synthesized_then_queues_and_topics_refuse_plain_http(
    synth: Synth,
) -> None:
    for type_, key in (("AWS::SQS::QueuePolicy", "Queues"), ("AWS::SNS::TopicPolicy", "Topics")):
        for policy in synth.properties(STACK, type_):
            statements = policy["PolicyDocument"]["Statement"]
            assert any(
                s["Effect"] == "Deny"
                and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
                for s in statements
            ), policy[key]


def test_given_the_contract_schemas_when_synthesized_then_each_is_in_the_registry(
    synth: Synth,
) -> None:
    schemas = _by_name(synth, "AWS::EventSchemas::Schema", "SchemaName")
    expected = {s.name: s for s in registry_schemas()}
    assert set(schemas) == set(expected)
    assert len(expected) == len(list((REPO_ROOT / "events" / "schemas" / "json").glob("*.json")))
    for name, schema in schemas.items():
        assert schema["Type"] == "JSONSchemaDraft4"
        assert json.loads(schema["Content"]) == expected[name].content


def test_given_the_configuration_when_synthesized_then_alarms_cover_dlqs_failures_and_rto(
    synth: Synth,
) -> None:
    alarms = _by_name(synth, "AWS::CloudWatch::Alarm", "AlarmName")
    for service in SERVICES:
        assert f"dr-{service.name}-dlq-not-empty" in alarms
        assert f"dr-{service.name}-queue-stalled" in alarms
        assert f"dr-{service.name}-function-errors" in alarms
    for customer in synth.config.customers:
        failed = alarms[f"dr-{customer.name}-operation-failed"]
        assert "OperationsFailed" in json.dumps(failed["Metrics"])
        assert f"Customer = '{customer.name}'" in json.dumps(failed["Metrics"])
        assert "WaveOverRtoTarget" in json.dumps(alarms[f"dr-{customer.name}-wave-over-rto"])
        lag = json.dumps(alarms[f"dr-{customer.name}-replication-lag-over-rpo"]["Metrics"])
        assert "ReadinessFindings" in lag and "LAG_OVER_RPO" in lag
    assert f"{synth.config.orchestration.bus_name}-bus-dlq-not-empty" in alarms
    stale = alarms["dr-inventory-stale"]
    assert "InventoryAgeSeconds" in json.dumps(stale["Metrics"])
    assert stale["Threshold"] == 30 * 60
    assert stale["TreatMissingData"] == "breaching"  # no refresh at all is stale too
    for alarm in alarms.values():
        assert alarm["AlarmActions"], alarm["AlarmName"]
    dashboards = _by_name(synth, "AWS::CloudWatch::Dashboard", "DashboardName")
    assert "dr-orchestration" in dashboards
    for customer in synth.config.customers:
        assert f"dr-customer-{customer.name}" in dashboards


def test_given_the_metrics_service_when_events_arrive_then_it_emits_what_alarms_watch() -> None:
    from events.schemas import MODEL_BY_DETAIL_TYPE, DetailType
    from services.metrics.domain import metrics_for

    golden = REPO_ROOT / "events" / "schemas" / "golden"
    emitted = set()
    for detail_type in (DetailType.OPERATION_FAILED, DetailType.WAVE_COMPLETED):
        event = json.loads((golden / f"{detail_type.value}.v1.json").read_text())
        detail = MODEL_BY_DETAIL_TYPE[detail_type].model_validate(event["detail"])
        emitted |= {point.name for point in metrics_for(detail)}
    assert {"OperationsFailed", "WaveOverRtoTarget"} <= emitted


def test_given_the_bus_policy_when_synthesized_then_only_operators_and_approvers_speak_for_people(
    synth: Synth,
) -> None:
    statements = {
        p["StatementId"]: p["Statement"]
        for p in synth.properties(STACK, "AWS::Events::EventBusPolicy")
    }
    roles = {
        r["Properties"]["RoleName"]: logical_id
        for logical_id, r in synth.resources(STACK, "AWS::IAM::Role").items()
        if isinstance(r["Properties"].get("RoleName"), str)
    }
    for sid, source, role in (
        ("OnlyOperatorsStartOperations", "dr.cli", synth.config.access.operator_role_name),
        ("OnlyApproversApprove", "dr.approval", synth.config.access.approver_role_name),
    ):
        statement = statements[sid]
        assert statement["Effect"] == "Deny"
        assert statement["Principal"] == "*"
        assert statement["Condition"]["StringEquals"] == {"events:source": source}
        principal = statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
        assert _logical_id(principal) == roles[role]


def test_given_the_services_when_synthesized_then_each_publishes_only_its_own_source(
    synth: Synth,
) -> None:
    policies = {
        p["ManagedPolicyName"]: p["PolicyDocument"]["Statement"]
        for p in synth.properties(STACK, "AWS::IAM::ManagedPolicy")
    }
    for service in SERVICES:
        statements = policies[f"dr-{service.name}-function"]
        puts = [s for s in statements if "events:PutEvents" in json.dumps(s["Action"])]
        sources = [s["Condition"]["StringEquals"]["events:source"] for s in puts]
        assert sources == (
            [[s.value for s in SERVICE_ACCESS[service.name].publishes]] if puts else []
        )


def test_given_the_coordinator_when_synthesized_then_it_may_notify_approvers_and_nobody_else(
    synth: Synth,
) -> None:
    policies = {
        p["ManagedPolicyName"]: json.dumps(p["PolicyDocument"])
        for p in synth.properties(STACK, "AWS::IAM::ManagedPolicy")
    }
    [approvals] = [
        logical_id
        for logical_id, r in synth.resources(STACK, "AWS::SNS::Topic").items()
        if r["Properties"]["TopicName"] == "dr-approvals"
    ]
    for name, document in policies.items():
        publishes = "sns:Publish" in document
        assert publishes == (name == "dr-coordinator-function"), name
    assert approvals in policies["dr-coordinator-function"]


def test_given_the_customers_when_synthesized_then_the_registry_holds_exactly_their_entries(
    synth: Synth,
) -> None:
    parameters = _by_name(synth, "AWS::SSM::Parameter", "Name")
    for customer in synth.config.customers:
        value = json.loads(parameters[f"/dr-orchestrator/customers/{customer.name}"]["Value"])
        assert value == customer.registry_entry().model_dump(mode="json")
        assert "rto_target_minutes" not in json.dumps(value)
