"""The coordinator's AWS side (the only code here that calls AWS): the DynamoDB repository, the
customer registry and hook configuration in Parameter Store, SSM Automation hooks in workload
accounts, SNS approval notifications, delayed messages to its own queue, EMF metrics.

Items (key layout from `drcore.state`; timestamps ISO-8601 UTC, millisecond precision):
  OP#<id>/META        operation_id, operation, customer, environment, scope, state, requested_by,
                      created_at, updated_at, started_at, completed_at, current_wave, reason,
                      error_code, request_reason, ticket, approval_mode, approval_mode_chosen_by,
                      wave_filter, dry_run, allow_data_loss, use_cached_inventory, region_map,
                      wave_count, resource_count, hooks (map), workload (map), paused_wave,
                      cancelled_by, parent_operation_id, children (list), child_outcomes (map),
                      announced, resumed_by_request
  OP#<id>/WAVE#0001   wave, state, expected, recovered, failed, remaining, rto_target_minutes,
                      started_at,
                      recovery_started_at, completed_at, updated_at, announced, failed_resources
                      (string set), attempt, retry_resources (string set), failed_phase,
                      failures_accepted_by, approval_required, approval (map), refusals (list),
                      pre_hook / post_hook (maps), hook_execution_id
  OP#<id>/RES#<rid>   resource_id, name, arn, account, region, dr_region, strategy, wave, state,
                      priority, rto_target_minutes, rpo_target_minutes, private_ip,
                      dr_resource_id, dr_private_ip, error, error_code, started_at, completed_at,
                      attempt, attempt_started_at, checks, last_check_at, resource_type
  LOCK#<c>#<e>/LOCK   customer, environment, operation_id, operation, acquired_at
  HOOK#<execution>/HOOK  operation_id, wave, phase, attempt, expires_at (TTL)
  ACTIVE/OP#<id>      operation_id, listed_at  (what the reconciler looks at)
Absent optional values are not stored (None removes an attribute on update).
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import boto3
from aws_lambda_powertools.metrics import single_metric
from boto3.dynamodb.conditions import Key
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from drcore.aws import AccountAccess, AwsClients
from drcore.observability import METRICS_NAMESPACE
from drcore.plan import Plan
from drcore.publisher import EventPublisher
from drcore.registry import PARAMETER_PREFIX, CustomerEntry, parameter_name
from drcore.settings import Settings
from drcore.state import (
    META,
    OperationState,
    PlanStore,
    ResourceState,
    lock_pk,
    op_pk,
    resource_sk,
    scope,
    wave_sk,
)
from events.schemas import ApprovalMode, OperationRequested, OperationType, Priority, Strategy
from events.schemas.names import ApprovalDecision, ApprovalRefusalCode, HookPhase

from .approvals import Approval, IssuedToken
from .domain import (
    ApprovalRefusal,
    Coordinator,
    FailedPhase,
    LockRecord,
    LogSink,
    OperationRecord,
    Policy,
    ResourceRecord,
    ResourceResult,
    ResultOutcome,
    RetryLater,
    WavePhase,
    WaveRecord,
)
from .hooks import (
    HookConfig,
    HookConfigInvalid,
    HookRef,
    HookRun,
    HookSpec,
    HookStartFailed,
    HookStatus,
    WorkloadTarget,
    hook_parameter_name,
)
from .regional import ChildOutcome, ChildPlan
from .subscriptions import SERVICE

LOCK_SK = "LOCK"
HOOK_SK = "HOOK"
ACTIVE_PK = "ACTIVE"
HOOK_REF_DAYS = 30
CONFLICT_ATTEMPTS = 6
# TransactWriteItems takes at most 100 items (here: 99 resources and their wave).
MAX_TRANSACTION_ITEMS = 100
CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELED = "TransactionCanceledException"
PARAMETER_NOT_FOUND = "ParameterNotFound"
# SSM's answers that mean the hook cannot start (as opposed to "try again").
HOOK_REFUSALS = frozenset(
    {
        "AutomationDefinitionNotFoundException",
        "AutomationDefinitionVersionNotFoundException",
        "InvalidAutomationExecutionParametersException",
        "IdempotentParameterMismatch",
        "InvalidTarget",
    }
)
EXECUTION_NOT_FOUND = "AutomationExecutionNotFoundException"


def operations_table(settings: Settings) -> Any:
    """The operations table as a boto3 Table, with botocore's retry mode from settings."""
    config = Config(retries={"mode": settings.retry_mode, "max_attempts": settings.max_attempts})
    resource = boto3.resource("dynamodb", region_name=settings.orchestration_region, config=config)
    return resource.Table(settings.operations_table)


def policy_from(settings: Settings) -> Policy:
    return Policy(
        approval_ttl=timedelta(seconds=settings.approval_token_ttl_seconds),
        escalate_after=timedelta(seconds=settings.approval_escalation_seconds),
        hook_timeout=timedelta(seconds=settings.hook_timeout_seconds),
        hook_poll_backoff=settings.hook_poll_backoff,
        recheck_every=timedelta(seconds=settings.reconcile_recheck_seconds),
    )


def build_coordinator(
    logger: LogSink | None = None, settings: Settings | None = None
) -> Coordinator:
    """The coordinator wired to DynamoDB, EventBridge, SSM, SNS, SQS and EMF (one per process)."""
    settings = settings or Settings()
    clients = AwsClients(settings)
    ssm = clients.client("ssm")
    return Coordinator(
        DynamoRepository(operations_table(settings)),
        EventPublisher(clients.client("events"), settings.bus_name),
        part_size=settings.wave_part_size,
        metrics=EmfMetrics(),
        logger=logger,
        registry=SsmRegistry(ssm),
        hook_configs=SsmHookConfigs(ssm),
        hooks=SsmHookRunner(clients),
        notifier=SnsNotifier(clients.client("sns"), approval_topic_arn(settings)),
        scheduler=SqsSelfScheduler(clients.client("sqs"), SERVICE.queue_name()),
        policy=policy_from(settings),
    )


def approval_topic_arn(settings: Settings) -> str:
    return (
        f"arn:aws:sns:{settings.orchestration_region}:{settings.orchestration_account}:"
        f"{settings.approval_topic_name}"
    )


# --- conversions -----------------------------------------------------------------------------


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _attr(value: Any) -> Any:
    """A domain value as a DynamoDB attribute (boto3 resource types)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return _attr(value.model_dump(mode="json", exclude_none=True))
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _attr(getattr(value, f.name))
            for f in fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, tuple | list):
        return [_attr(v) for v in value]
    if isinstance(value, frozenset | set):
        return {_attr(v) for v in value}
    if isinstance(value, Mapping):
        return {str(k): _attr(v) for k, v in value.items()}
    return value


def _item(record: Any, **keys: Any) -> dict[str, Any]:
    item = dict(keys)
    for f in fields(record):
        value = getattr(record, f.name)
        if value is None or (isinstance(value, frozenset | set) and not value):
            continue
        item[f.name] = _attr(value)
    return item


def _plain(value: Any) -> Any:
    """DynamoDB numbers (Decimal) back to ints, recursively."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, Decimal | int) else None


def _operation(item: Mapping[str, Any]) -> OperationRecord:
    wave_filter = item.get("wave_filter")
    announced = item.get("announced")
    hooks = item.get("hooks")
    workload = item.get("workload")
    return OperationRecord(
        operation_id=item["operation_id"],
        operation=OperationType(item["operation"]),
        customer=item["customer"],
        environment=item["environment"],
        state=OperationState(item["state"]),
        requested_by=item["requested_by"],
        created_at=datetime.fromisoformat(item["created_at"]),
        updated_at=datetime.fromisoformat(item["updated_at"]),
        started_at=_time(item.get("started_at")),
        completed_at=_time(item.get("completed_at")),
        current_wave=_int(item.get("current_wave")),
        reason=item.get("reason"),
        error_code=item.get("error_code"),
        request_reason=item.get("request_reason"),
        ticket=item.get("ticket"),
        approval_mode=ApprovalMode(item.get("approval_mode", ApprovalMode.NONE.value)),
        approval_mode_chosen_by=item.get("approval_mode_chosen_by"),
        wave_filter=tuple(int(n) for n in wave_filter) if wave_filter is not None else None,
        dry_run=bool(item.get("dry_run", False)),
        allow_data_loss=bool(item.get("allow_data_loss", False)),
        use_cached_inventory=bool(item.get("use_cached_inventory", False)),
        region_map=dict(item.get("region_map", {})),
        wave_count=_int(item.get("wave_count")),
        resource_count=_int(item.get("resource_count")),
        hooks=HookConfig.model_validate(_plain(hooks)) if hooks else None,
        workload=WorkloadTarget.model_validate(_plain(workload)) if workload else None,
        paused_wave=_int(item.get("paused_wave")),
        resumed_by_request=item.get("resumed_by_request"),
        cancelled_by=item.get("cancelled_by"),
        parent_operation_id=item.get("parent_operation_id"),
        children=tuple(
            ChildPlan(
                operation_id=c["operation_id"],
                customer=c["customer"],
                environment=c["environment"],
                region_map=dict(c.get("region_map", {})),
            )
            for c in item.get("children", [])
        ),
        child_outcomes={
            child: ChildOutcome(
                state=OperationState(o["state"]),
                waves=int(o.get("waves", 0)),
                recovered=int(o.get("recovered", 0)),
                failed=int(o.get("failed", 0)),
            )
            for child, o in item.get("child_outcomes", {}).items()
        },
        request=OperationRequested.model_validate(_plain(item["request"]))
        if item.get("request")
        else None,
        announced=OperationState(announced) if announced else None,
    )


def _approval(value: Mapping[str, Any] | None) -> Approval | None:
    if not value:
        return None
    decision = value.get("decision")
    return Approval(
        requested_at=datetime.fromisoformat(value["requested_at"]),
        tokens=tuple(
            IssuedToken(t["token_hash"], datetime.fromisoformat(t["expires_at"]))
            for t in value.get("tokens", [])
        ),
        notified_at=_time(value.get("notified_at")),
        notifications=int(value.get("notifications", 0)),
        decision=ApprovalDecision(decision) if decision else None,
        decided_by=value.get("decided_by"),
        decided_at=_time(value.get("decided_at")),
        comment=value.get("comment"),
        decision_event_at=_time(value.get("decision_event_at")),
        used_token_hash=value.get("used_token_hash"),
    )


def _hook_run(value: Mapping[str, Any] | None) -> HookRun | None:
    if not value:
        return None
    return HookRun(
        phase=HookPhase(value["phase"]),
        attempt=int(value["attempt"]),
        document_name=value["document_name"],
        execution_id=value.get("execution_id"),
        started_at=_time(value.get("started_at")),
        status=value.get("status"),
        ended_at=_time(value.get("ended_at")),
        failure_message=value.get("failure_message"),
    )


def _wave(item: Mapping[str, Any]) -> WaveRecord:
    announced = item.get("announced")
    failed_phase = item.get("failed_phase")
    return WaveRecord(
        number=int(item["wave"]),
        state=WavePhase(item["state"]),
        expected=int(item["expected"]),
        recovered=int(item.get("recovered", 0)),
        failed=int(item.get("failed", 0)),
        remaining=_int(item.get("remaining")),
        rto_target_minutes=_int(item.get("rto_target_minutes")),
        started_at=_time(item.get("started_at")),
        recovery_started_at=_time(item.get("recovery_started_at")),
        completed_at=_time(item.get("completed_at")),
        updated_at=datetime.fromisoformat(item["updated_at"]),
        failed_resources=frozenset(item.get("failed_resources", ())),
        attempt=int(item.get("attempt", 1)),
        retry_resources=frozenset(item.get("retry_resources", ())),
        failed_phase=FailedPhase(failed_phase) if failed_phase else None,
        failures_accepted_by=item.get("failures_accepted_by"),
        approval_required=bool(item.get("approval_required", False)),
        approval=_approval(item.get("approval")),
        refusals=tuple(
            ApprovalRefusal(
                at=datetime.fromisoformat(r["at"]),
                approver=r["approver"],
                decision=ApprovalDecision(r["decision"]),
                code=ApprovalRefusalCode(r["code"]),
                reason=r["reason"],
                event_at=datetime.fromisoformat(r["event_at"]),
            )
            for r in item.get("refusals", [])
        ),
        pre_hook=_hook_run(item.get("pre_hook")),
        post_hook=_hook_run(item.get("post_hook")),
        hook_execution_id=item.get("hook_execution_id"),
        announced=WavePhase(announced) if announced else None,
    )


def _resource(item: Mapping[str, Any]) -> ResourceRecord:
    return ResourceRecord(
        resource_id=item["resource_id"],
        name=item["name"],
        arn=item["arn"],
        account=item["account"],
        region=item["region"],
        dr_region=item["dr_region"],
        strategy=Strategy(item["strategy"]),
        wave=int(item["wave"]),
        state=ResourceState(item["state"]),
        priority=Priority(item["priority"]),
        rto_target_minutes=int(item["rto_target_minutes"]),
        rpo_target_minutes=int(item["rpo_target_minutes"]),
        private_ip=item.get("private_ip"),
        dr_resource_id=item.get("dr_resource_id"),
        dr_private_ip=item.get("dr_private_ip"),
        error=item.get("error"),
        error_code=item.get("error_code"),
        started_at=_time(item.get("started_at")),
        completed_at=_time(item.get("completed_at")),
        attempt=int(item.get("attempt", 1)),
        attempt_started_at=_time(item.get("attempt_started_at")),
        checks=int(item.get("checks", 0)),
        last_check_at=_time(item.get("last_check_at")),
        resource_type=item.get("resource_type", "ec2:instance"),
    )


class _Expression:
    """Builds SET/REMOVE/ADD update expressions with placeholder names and values."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._set: list[str] = []
        self._remove: list[str] = []
        self._add: list[str] = []

    def name(self, attribute: str) -> str:
        """A placeholder path for `attribute` (dotted: a path into maps)."""
        parts = []
        for part in attribute.split("."):
            placeholder = f"#a{len(self.names)}"
            self.names[placeholder] = part
            parts.append(placeholder)
        return ".".join(parts)

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = _attr(value)
        return placeholder

    def set(self, changes: Mapping[str, Any]) -> _Expression:
        for attribute, value in changes.items():
            if value is None or (isinstance(value, frozenset | set) and not value):
                self._remove.append(self.name(attribute))
            else:
                self._set.append(f"{self.name(attribute)} = {self.value(value)}")
        return self

    def set_raw(self, attribute: str, expression: str) -> _Expression:
        self._set.append(f"{self.name(attribute)} = {expression}")
        return self

    def add(self, attribute: str, value: Any) -> _Expression:
        self._add.append(f"{self.name(attribute)} {self.value(value)}")
        return self

    def state_in(self, states: Iterable[Enum]) -> str:
        options = ", ".join(self.value(s) for s in states)
        return f"attribute_exists(pk) AND {self.name('state')} IN ({options})"

    def where(self, conditions: Mapping[str, Any] | None) -> str:
        parts = []
        for attribute, value in (conditions or {}).items():
            if value is None:
                parts.append(f"attribute_not_exists({self.name(attribute)})")
            else:
                parts.append(f"{self.name(attribute)} = {self.value(value)}")
        return "".join(f" AND {p}" for p in parts)

    def update(self) -> str:
        parts = []
        if self._set:
            parts.append("SET " + ", ".join(self._set))
        if self._remove:
            parts.append("REMOVE " + ", ".join(self._remove))
        if self._add:
            parts.append("ADD " + ", ".join(self._add))
        return " ".join(parts)

    def kwargs(self, condition: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "UpdateExpression": self.update(),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": self.names,
        }
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        return out


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# --- the repository --------------------------------------------------------------------------


class DynamoRepository:
    """`domain.Repository` on the operations table (boto3 Table resource)."""

    def __init__(
        self,
        table: Any,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._client = table.meta.client
        self._plans = PlanStore(table)
        self._sleep = sleep

    # operation

    def get_operation(self, operation_id: str) -> OperationRecord | None:
        item = self._get(op_pk(operation_id), META)
        return _operation(item) if item else None

    def create_operation(self, record: OperationRecord) -> bool:
        item = _item(
            record,
            pk=op_pk(record.operation_id),
            sk=META,
            scope=scope(record.customer, record.environment),
        )
        return self._conditional(
            self._table.put_item, Item=item, ConditionExpression="attribute_not_exists(pk)"
        )

    def update_operation(
        self,
        operation_id: str,
        expect: Iterable[OperationState],
        changes: Mapping[str, Any],
        where: Mapping[str, Any] | None = None,
    ) -> bool:
        expression = _Expression().set(changes)
        condition = expression.state_in(expect) + expression.where(where)
        return self._conditional(
            self._table.update_item,
            Key={"pk": op_pk(operation_id), "sk": META},
            **expression.kwargs(condition),
        )

    def record_child_outcome(self, parent_id: str, child_id: str, outcome: ChildOutcome) -> None:
        expression = _Expression().set({f"child_outcomes.{child_id}": outcome})
        self._conditional(
            self._table.update_item,
            Key={"pk": op_pk(parent_id), "sk": META},
            **expression.kwargs(f"attribute_exists({expression.name('child_outcomes')})"),
        )

    # lock

    def acquire_lock(self, lock: LockRecord) -> LockRecord:
        key = {"pk": lock_pk(lock.customer, lock.environment), "sk": LOCK_SK}
        for _ in range(3):
            taken = self._conditional(
                self._table.put_item,
                Item=_item(lock, **key),
                ConditionExpression="attribute_not_exists(pk) OR operation_id = :id",
                ExpressionAttributeValues={":id": lock.operation_id},
            )
            if taken:
                return lock
            holder = self._get(key["pk"], LOCK_SK)
            if holder is not None:  # else released meanwhile: try again
                return LockRecord(
                    customer=holder["customer"],
                    environment=holder["environment"],
                    operation_id=holder["operation_id"],
                    operation=OperationType(holder["operation"]),
                    acquired_at=datetime.fromisoformat(holder["acquired_at"]),
                )
        raise RetryLater(f"lock {key['pk']} keeps changing hands")

    def release_lock(self, customer: str, environment: str, operation_id: str) -> bool:
        return self._conditional(
            self._table.delete_item,
            Key={"pk": lock_pk(customer, environment), "sk": LOCK_SK},
            ConditionExpression="operation_id = :id",
            ExpressionAttributeValues={":id": operation_id},
        )

    # active operations (what the reconciler looks at)

    def mark_active(self, operation_id: str, at: datetime) -> None:
        self._table.put_item(
            Item={
                "pk": ACTIVE_PK,
                "sk": op_pk(operation_id),
                "operation_id": operation_id,
                "listed_at": iso(at),
            }
        )

    def clear_active(self, operation_id: str) -> None:
        self._table.delete_item(Key={"pk": ACTIVE_PK, "sk": op_pk(operation_id)})

    def list_active(self) -> list[tuple[str, datetime]]:
        items = self._query(KeyConditionExpression=Key("pk").eq(ACTIVE_PK), ConsistentRead=True)
        return [(i["operation_id"], datetime.fromisoformat(i["listed_at"])) for i in items]

    # hooks

    def put_hook_ref(self, execution_id: str, ref: HookRef) -> None:
        expires = int(time.time()) + HOOK_REF_DAYS * 86400
        self._table.put_item(
            Item=_item(ref, pk=f"HOOK#{execution_id}", sk=HOOK_SK, expires_at=expires)
        )

    def get_hook_ref(self, execution_id: str) -> HookRef | None:
        item = self._get(f"HOOK#{execution_id}", HOOK_SK)
        if item is None:
            return None
        return HookRef(
            operation_id=item["operation_id"],
            wave=int(item["wave"]),
            phase=HookPhase(item["phase"]),
            attempt=int(item["attempt"]),
        )

    # plan, waves, resources

    def load_plan(self, operation_id: str) -> Plan | None:
        return self._plans.get(operation_id)

    def put_plan_items(
        self,
        operation_id: str,
        waves: Sequence[WaveRecord],
        resources: Sequence[ResourceRecord],
        overwrite: bool,
    ) -> None:
        pk = op_pk(operation_id)
        items = [_item(w, pk=pk, sk=wave_sk(w.number), wave=w.number) for w in waves]
        items += [_item(r, pk=pk, sk=resource_sk(r.resource_id)) for r in resources]
        for item in items:
            item.pop("number", None)
        if overwrite:
            self._batch_put(items)
            return
        for item in items:
            self._conditional(
                self._table.put_item, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )

    def list_waves(self, operation_id: str) -> list[WaveRecord]:
        items = self._query(
            KeyConditionExpression=Key("pk").eq(op_pk(operation_id))
            & Key("sk").begins_with("WAVE#"),
            ConsistentRead=True,
        )
        return sorted((_wave(i) for i in items), key=lambda w: w.number)

    def get_wave(self, operation_id: str, number: int) -> WaveRecord | None:
        item = self._get(op_pk(operation_id), wave_sk(number))
        return _wave(item) if item else None

    def update_wave(
        self,
        operation_id: str,
        number: int,
        expect: Iterable[WavePhase],
        changes: Mapping[str, Any],
        where: Mapping[str, Any] | None = None,
    ) -> bool:
        expression = _Expression().set(changes)
        condition = expression.state_in(expect) + expression.where(where)
        return self._conditional(
            self._table.update_item,
            Key={"pk": op_pk(operation_id), "sk": wave_sk(number)},
            **expression.kwargs(condition),
        )

    def append_refusal(self, operation_id: str, number: int, refusal: ApprovalRefusal) -> None:
        expression = _Expression()
        path = expression.name("refusals")
        empty, entry = expression.value([]), expression.value([refusal])
        expression.set_raw("refusals", f"list_append(if_not_exists({path}, {empty}), {entry})")
        self._conditional(
            self._table.update_item,
            Key={"pk": op_pk(operation_id), "sk": wave_sk(number)},
            **expression.kwargs("attribute_exists(pk)"),
        )

    def get_resource(self, operation_id: str, resource_id: str) -> ResourceRecord | None:
        item = self._get(op_pk(operation_id), resource_sk(resource_id))
        return _resource(item) if item else None

    def list_resources(self, operation_id: str) -> list[ResourceRecord]:
        items = self._query(
            KeyConditionExpression=Key("pk").eq(op_pk(operation_id))
            & Key("sk").begins_with("RES#"),
            ConsistentRead=True,
        )
        return [_resource(i) for i in items]

    def put_resources(self, operation_id: str, resources: Sequence[ResourceRecord]) -> None:
        pk = op_pk(operation_id)
        self._batch_put([_item(r, pk=pk, sk=resource_sk(r.resource_id)) for r in resources])

    def start_resources(
        self, operation_id: str, resource_ids: Sequence[str], started_at: datetime
    ) -> None:
        for resource_id in resource_ids:
            expression = _Expression().set(
                {"state": ResourceState.RECOVERING, "started_at": started_at}
            )
            self._conditional(
                self._table.update_item,
                Key={"pk": op_pk(operation_id), "sk": resource_sk(resource_id)},
                **expression.kwargs(expression.state_in([ResourceState.PENDING])),
            )

    def retry_resources(
        self, operation_id: str, resource_ids: Sequence[str], attempt: int, started_at: datetime
    ) -> None:
        for resource_id in resource_ids:
            expression = _Expression().set(
                {
                    "state": ResourceState.RECOVERING,
                    "attempt": attempt,
                    "attempt_started_at": started_at,
                    "started_at": started_at,
                    "completed_at": None,
                    "error": None,
                    "error_code": None,
                    "dr_resource_id": None,
                    "dr_private_ip": None,
                }
            )
            condition = (
                expression.state_in([ResourceState.FAILED])
                + f" AND (attribute_not_exists({expression.name('attempt')})"
                + f" OR {expression.name('attempt')} < {expression.value(attempt)})"
            )
            self._conditional(
                self._table.update_item,
                Key={"pk": op_pk(operation_id), "sk": resource_sk(resource_id)},
                **expression.kwargs(condition),
            )

    def mark_checked(self, operation_id: str, resource_ids: Sequence[str], at: datetime) -> None:
        for resource_id in resource_ids:
            expression = _Expression().set({"last_check_at": at}).add("checks", 1)
            self._conditional(
                self._table.update_item,
                Key={"pk": op_pk(operation_id), "sk": resource_sk(resource_id)},
                **expression.kwargs("attribute_exists(pk)"),
            )

    def record_result(self, result: ResourceResult) -> ResultOutcome:
        return self.record_results([result])[0]

    def record_results(self, results: Sequence[ResourceResult]) -> list[ResultOutcome]:
        """Per operation + wave, one transaction for up to 99 results: each resource's
        conditional transition and the wave's counters (the sum of what the transaction moves).
        A resource whose condition fails is left out (and classified) and the rest tried again;
        a wave that is not RECOVERING takes none. A second result for the same resource in the
        same call is classified after the first one is applied."""
        outcomes: list[ResultOutcome | None] = [None] * len(results)
        groups: dict[tuple[str, int], list[int]] = {}
        seen: set[tuple[str, str]] = set()
        later: list[int] = []
        for index, result in enumerate(results):
            key = (result.operation_id, result.resource_id)
            if key in seen:
                later.append(index)
                continue
            seen.add(key)
            groups.setdefault((result.operation_id, result.wave), []).append(index)
        for indexes in groups.values():
            for start in range(0, len(indexes), MAX_TRANSACTION_ITEMS - 1):
                chunk = indexes[start : start + MAX_TRANSACTION_ITEMS - 1]
                for index, outcome in self._apply(results, chunk).items():
                    outcomes[index] = outcome
        for index in later:
            outcomes[index] = self._classify(results[index])
        return [o or ResultOutcome.UNKNOWN for o in outcomes]

    def _apply(
        self, results: Sequence[ResourceResult], indexes: list[int]
    ) -> dict[int, ResultOutcome]:
        done: dict[int, ResultOutcome] = {}
        pending = list(indexes)
        conflicts = 0
        # First with the condition that results remain after these (then none of them ends
        # the wave: no read needed); if that is what fails, without it (these may end it).
        strict = True
        while pending:
            chosen = [results[i] for i in pending]
            transaction = [self._resource_update(r) for r in chosen] + [
                self._wave_update(chosen, strict)
            ]
            try:
                self._client.transact_write_items(TransactItems=transaction)
            except ClientError as error:
                if _code(error) != TRANSACTION_CANCELED:
                    raise
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                refused = [
                    i
                    for i, code in zip(pending, reasons[: len(pending)], strict=False)
                    if code == "ConditionalCheckFailed"
                ]
                wave_refused = len(reasons) > len(pending) and reasons[len(pending)] == (
                    "ConditionalCheckFailed"
                )
                if refused:  # duplicates or stale results: out, the others again
                    for i in refused:
                        done[i] = self._classify(results[i])
                    pending = [i for i in pending if i not in done]
                    continue
                if wave_refused and strict:
                    strict = False  # the wave's last results (or not RECOVERING): look again
                    continue
                if wave_refused:  # the wave is not RECOVERING: none of them counts
                    for i in pending:
                        done[i] = self._classify(results[i])
                    pending = []
                    continue
                conflicts += 1
                if conflicts >= CONFLICT_ATTEMPTS:
                    raise RetryLater(
                        f"{len(pending)} result(s) of wave {chosen[0].wave} kept conflicting: "
                        f"{reasons}"
                    ) from error
                # Concurrent results on the same wave counter: try again shortly.
                self._sleep(random.uniform(0.01, 0.05) * conflicts)
                continue
            outcome = ResultOutcome.APPLIED if strict else ResultOutcome.COMPLETING
            done.update({i: outcome for i in pending})
            pending = []
        return done

    def _resource_update(self, result: ResourceResult) -> dict[str, Any]:
        resource = _Expression().set(
            {
                "state": ResourceState.RECOVERED if result.recovered else ResourceState.FAILED,
                "completed_at": result.completed_at,
            }
            | {
                name: value
                for name, value in (
                    ("started_at", result.started_at),
                    ("dr_resource_id", result.dr_resource_id),
                    ("dr_private_ip", result.dr_private_ip),
                    ("error", result.error),
                    ("error_code", result.error_code),
                )
                if value is not None
            }
        )
        attempt_started = resource.name("attempt_started_at")
        condition = (
            resource.state_in([ResourceState.PENDING, ResourceState.RECOVERING])
            + f" AND {resource.name('wave')} = {resource.value(result.wave)}"
            + f" AND {resource.name('strategy')} = {resource.value(result.strategy)}"
            # A result older than the resource's current attempt belongs to an earlier one.
            + f" AND (attribute_not_exists({attempt_started})"
            + f" OR {attempt_started} <= {resource.value(result.completed_at)})"
        )
        return {
            "Update": {
                "TableName": self._table.name,
                "Key": {"pk": op_pk(result.operation_id), "sk": resource_sk(result.resource_id)},
                **resource.kwargs(condition),
            }
        }

    def _wave_update(self, results: Sequence[ResourceResult], strict: bool) -> dict[str, Any]:
        """The wave's counters + what the results add (`remaining` - their number); `strict`:
        only if results remain after them."""
        wave = _Expression()
        recovered = sum(r.recovered for r in results)
        failed = {r.resource_id for r in results if not r.recovered}
        if recovered:
            wave.add("recovered", recovered)
        if failed:
            wave.add("failed", len(failed)).add("failed_resources", failed)
        remaining = wave.name("remaining")
        count = wave.value(len(results))
        wave.set_raw("remaining", f"if_not_exists({remaining}, {wave.value(0)}) - {count}")
        condition = wave.state_in([WavePhase.RECOVERING])
        if strict:
            condition += f" AND {remaining} > {count}"
        first = results[0]
        return {
            "Update": {
                "TableName": self._table.name,
                "Key": {"pk": op_pk(first.operation_id), "sk": wave_sk(first.wave)},
                **wave.kwargs(condition),
            }
        }

    def _classify(self, result: ResourceResult) -> ResultOutcome:
        current = self.get_resource(result.operation_id, result.resource_id)
        if current is None:
            return ResultOutcome.UNKNOWN
        if current.state in (ResourceState.RECOVERED, ResourceState.FAILED):
            return ResultOutcome.DUPLICATE
        return ResultOutcome.REJECTED

    # helpers

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._table.get_item(
            Key={"pk": pk, "sk": sk}, ConsistentRead=True
        ).get("Item")
        return item

    def _query(self, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            response = self._table.query(**kwargs)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _batch_put(self, items: Sequence[dict[str, Any]]) -> None:
        with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for item in items:
                batch.put_item(Item=item)

    @staticmethod
    def _conditional(call: Callable[..., Any], **kwargs: Any) -> bool:
        try:
            call(**kwargs)
        except ClientError as error:
            if _code(error) == CONDITION_FAILED:
                return False
            raise
        return True


# --- Parameter Store: the registry and hook configuration --------------------------------


class SsmRegistry:
    """The customer registry (`drcore.registry`) as the coordinator reads it."""

    def __init__(self, ssm: Any) -> None:
        self._ssm = ssm

    def customer(self, name: str) -> CustomerEntry | None:
        try:
            value = self._ssm.get_parameter(Name=parameter_name(name))["Parameter"]["Value"]
        except ClientError as error:
            if _code(error) == PARAMETER_NOT_FOUND:
                return None
            raise
        return CustomerEntry.model_validate_json(value)

    def customers(self) -> list[CustomerEntry]:
        entries = []
        for page in self._ssm.get_paginator("get_parameters_by_path").paginate(
            Path=PARAMETER_PREFIX, Recursive=True
        ):
            entries += [CustomerEntry.model_validate_json(p["Value"]) for p in page["Parameters"]]
        return entries


class SsmHookConfigs:
    def __init__(self, ssm: Any) -> None:
        self._ssm = ssm

    def get(self, customer: str, environment: str) -> HookConfig | None:
        name = hook_parameter_name(customer, environment)
        try:
            value = self._ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except ClientError as error:
            if _code(error) == PARAMETER_NOT_FOUND:
                return None
            raise
        try:
            return HookConfig.model_validate_json(value)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise HookConfigInvalid(
                f"hook configuration {name} is invalid: {where}: {first['msg']}"
            ) from None


# --- SSM Automation in workload accounts ------------------------------------------------


class SsmHookRunner:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def _ssm(self, target: WorkloadTarget) -> Any:
        access = AccountAccess(target.account, target.role_name, target.external_id)
        return self._clients.workload_client("ssm", target.region, access)

    def start(
        self,
        target: WorkloadTarget,
        spec: HookSpec,
        parameters: Mapping[str, list[str]],
        token: str,
    ) -> str:
        kwargs: dict[str, Any] = {
            "DocumentName": spec.document_name,
            "Parameters": {k: list(v) for k, v in parameters.items()},
            "ClientToken": token,
        }
        if spec.document_version:
            kwargs["DocumentVersion"] = spec.document_version
        try:
            response = self._ssm(target).start_automation_execution(**kwargs)
        except ClientError as error:
            if _code(error) in HOOK_REFUSALS:
                message = error.response.get("Error", {}).get("Message", "")
                raise HookStartFailed(f"{_code(error)}: {message}") from None
            raise
        return str(response["AutomationExecutionId"])

    def status(self, target: WorkloadTarget, execution_id: str) -> HookStatus | None:
        try:
            execution = self._ssm(target).get_automation_execution(
                AutomationExecutionId=execution_id
            )["AutomationExecution"]
        except ClientError as error:
            if _code(error) == EXECUTION_NOT_FOUND:
                return None
            raise
        return HookStatus(
            status=execution["AutomationExecutionStatus"],
            failure_message=execution.get("FailureMessage"),
            started_at=execution.get("ExecutionStartTime"),
            ended_at=execution.get("ExecutionEndTime"),
        )

    def stop(self, target: WorkloadTarget, execution_id: str) -> None:
        with contextlib.suppress(ClientError):  # already ended: nothing to stop
            self._ssm(target).stop_automation_execution(
                AutomationExecutionId=execution_id, Type="Cancel"
            )


# --- SNS, SQS --------------------------------------------------------------------------


class SnsNotifier:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def notify(self, subject: str, message: str, attributes: Mapping[str, str]) -> None:
        self._sns.publish(
            TopicArn=self._topic_arn,
            Subject=subject,
            Message=message,
            MessageAttributes={
                key: {"DataType": "String", "StringValue": value}
                for key, value in attributes.items()
            },
        )


class SqsSelfScheduler:
    """Delayed messages on the coordinator's own queue (at most 15 minutes ahead)."""

    def __init__(self, sqs: Any, queue_name: str) -> None:
        self._sqs = sqs
        self._queue_name = queue_name
        self._url: str | None = None

    def schedule(self, message: BaseModel, delay_seconds: int) -> None:
        if self._url is None:
            self._url = str(self._sqs.get_queue_url(QueueName=self._queue_name)["QueueUrl"])
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=json.dumps(message.model_dump(mode="json")),
            DelaySeconds=min(max(int(delay_seconds), 0), 900),
        )


# --- metrics ---------------------------------------------------------------------------------


class EmfMetrics:
    """Metrics as CloudWatch EMF lines, each with its own dimensions (one operation's wave)."""

    def __init__(self, namespace: str = METRICS_NAMESPACE) -> None:
        self._namespace = namespace

    def record(self, name: str, unit: str, value: float, dimensions: Mapping[str, str]) -> None:
        with single_metric(
            name=name,
            unit=unit,  # type: ignore[arg-type]
            value=value,
            namespace=self._namespace,
            default_dimensions=dict(dimensions),
        ):
            pass
