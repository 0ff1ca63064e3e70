"""DynamoDB repository of the coordinator (the only code here that calls AWS) and its metrics sink.

Items (key layout from `drcore.state`; timestamps ISO-8601 UTC, millisecond precision):
  OP#<id>/META        operation_id, operation, customer, environment, scope, state, requested_by,
                      created_at, updated_at, started_at, completed_at, current_wave, reason,
                      error_code, request_reason, ticket, approval_mode, wave_filter, dry_run,
                      allow_data_loss, use_cached_inventory, region_map, wave_count,
                      resource_count, announced
  OP#<id>/WAVE#0001   wave, state, expected, recovered, failed, rto_target_minutes, started_at,
                      completed_at, updated_at, announced, failed_resources (string set)
  OP#<id>/RES#<rid>   resource_id, name, arn, account, region, dr_region, strategy, wave, state,
                      priority, rto_target_minutes, rpo_target_minutes, private_ip,
                      dr_resource_id, dr_private_ip, error, error_code, started_at, completed_at
  LOCK#<c>#<e>/LOCK   customer, environment, operation_id, operation, acquired_at
Absent optional values are not stored (None removes an attribute on update).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import boto3
from aws_lambda_powertools.metrics import single_metric
from boto3.dynamodb.conditions import Key
from botocore.config import Config
from botocore.exceptions import ClientError

from drcore.aws import AwsClients
from drcore.observability import METRICS_NAMESPACE
from drcore.plan import Plan
from drcore.publisher import EventPublisher
from drcore.settings import Settings
from drcore.state import (
    META,
    OperationState,
    PlanStore,
    ResourceState,
    WaveState,
    lock_pk,
    op_pk,
    resource_sk,
    scope,
    wave_sk,
)
from events.schemas import ApprovalMode, OperationType, Priority, Strategy

from .domain import (
    Coordinator,
    LockRecord,
    LogSink,
    OperationRecord,
    ResourceRecord,
    ResourceResult,
    ResultOutcome,
    RetryLater,
    WaveRecord,
)

LOCK_SK = "LOCK"
CONFLICT_ATTEMPTS = 6
CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELED = "TransactionCanceledException"


def operations_table(settings: Settings) -> Any:
    """The operations table as a boto3 Table, with botocore's retry mode from settings."""
    config = Config(retries={"mode": settings.retry_mode, "max_attempts": settings.max_attempts})
    resource = boto3.resource("dynamodb", region_name=settings.orchestration_region, config=config)
    return resource.Table(settings.operations_table)


def build_coordinator(
    logger: LogSink | None = None, settings: Settings | None = None
) -> Coordinator:
    """The coordinator wired to DynamoDB, EventBridge and EMF metrics (one per process)."""
    settings = settings or Settings()
    return Coordinator(
        DynamoRepository(operations_table(settings)),
        EventPublisher(AwsClients(settings).client("events"), settings.bus_name),
        part_size=settings.wave_part_size,
        metrics=EmfMetrics(),
        logger=logger,
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


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, Decimal | int) else None


def _operation(item: Mapping[str, Any]) -> OperationRecord:
    wave_filter = item.get("wave_filter")
    announced = item.get("announced")
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
        wave_filter=tuple(int(n) for n in wave_filter) if wave_filter is not None else None,
        dry_run=bool(item.get("dry_run", False)),
        allow_data_loss=bool(item.get("allow_data_loss", False)),
        use_cached_inventory=bool(item.get("use_cached_inventory", False)),
        region_map=dict(item.get("region_map", {})),
        wave_count=_int(item.get("wave_count")),
        resource_count=_int(item.get("resource_count")),
        announced=OperationState(announced) if announced else None,
    )


def _wave(item: Mapping[str, Any]) -> WaveRecord:
    announced = item.get("announced")
    return WaveRecord(
        number=int(item["wave"]),
        state=WaveState(item["state"]),
        expected=int(item["expected"]),
        recovered=int(item.get("recovered", 0)),
        failed=int(item.get("failed", 0)),
        rto_target_minutes=_int(item.get("rto_target_minutes")),
        started_at=_time(item.get("started_at")),
        completed_at=_time(item.get("completed_at")),
        updated_at=datetime.fromisoformat(item["updated_at"]),
        failed_resources=frozenset(item.get("failed_resources", ())),
        announced=WaveState(announced) if announced else None,
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
        placeholder = f"#a{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = _attr(value)
        return placeholder

    def set(self, changes: Mapping[str, Any]) -> _Expression:
        for attribute, value in changes.items():
            if value is None:
                self._remove.append(self.name(attribute))
            else:
                self._set.append(f"{self.name(attribute)} = {self.value(value)}")
        return self

    def add(self, attribute: str, value: Any) -> _Expression:
        self._add.append(f"{self.name(attribute)} {self.value(value)}")
        return self

    def state_in(self, states: Iterable[Enum]) -> str:
        options = ", ".join(self.value(s) for s in states)
        return f"attribute_exists(pk) AND {self.name('state')} IN ({options})"

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
        self, operation_id: str, expect: Iterable[OperationState], changes: Mapping[str, Any]
    ) -> bool:
        expression = _Expression().set(changes)
        return self._conditional(
            self._table.update_item,
            Key={"pk": op_pk(operation_id), "sk": META},
            **expression.kwargs(expression.state_in(expect)),
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
        expect: Iterable[WaveState],
        changes: Mapping[str, Any],
    ) -> bool:
        expression = _Expression().set(changes)
        return self._conditional(
            self._table.update_item,
            Key={"pk": op_pk(operation_id), "sk": wave_sk(number)},
            **expression.kwargs(expression.state_in(expect)),
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

    def record_result(self, result: ResourceResult) -> ResultOutcome:
        pk = op_pk(result.operation_id)
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
        resource_condition = (
            resource.state_in([ResourceState.PENDING, ResourceState.RECOVERING])
            + f" AND {resource.name('wave')} = {resource.value(result.wave)}"
            + f" AND {resource.name('strategy')} = {resource.value(result.strategy)}"
        )
        wave = _Expression()
        if result.recovered:
            wave.add("recovered", 1)
        else:
            wave.add("failed", 1).add("failed_resources", {result.resource_id})
        transaction = [
            {
                "Update": {
                    "TableName": self._table.name,
                    "Key": {"pk": pk, "sk": resource_sk(result.resource_id)},
                    **resource.kwargs(resource_condition),
                }
            },
            {
                "Update": {
                    "TableName": self._table.name,
                    "Key": {"pk": pk, "sk": wave_sk(result.wave)},
                    **wave.kwargs(wave.state_in([WaveState.RECOVERING])),
                }
            },
        ]
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=transaction)
                return ResultOutcome.APPLIED
            except ClientError as error:
                if _code(error) != TRANSACTION_CANCELED:
                    raise
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    return self._classify(result)
                if attempt == CONFLICT_ATTEMPTS - 1:
                    raise RetryLater(
                        f"result for {result.resource_id} kept conflicting: {reasons}"
                    ) from error
                # Concurrent results on the same wave counter: try again shortly.
                self._sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")

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
