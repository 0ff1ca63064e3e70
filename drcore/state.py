"""Shared state in the operations table: key layout, stored plans, and the operation read model.

The coordinator owns the writes of operation, wave, resource and lock items
(`services/coordinator/adapters.py`); discovery stores plans; `drctl` reads everything here.
Item layout (DESIGN §4):
  pk=OP#<id>  sk=META        the operation
  pk=OP#<id>  sk=WAVE#0001   one wave (expected / recovered / failed counters)
  pk=OP#<id>  sk=RES#<rid>   one resource
  pk=OP#<id>  sk=PLAN#0000   the stored plan, compressed, split into chunks
  pk=LOCK#<customer>#<env>  sk=LOCK   the one-active-operation lock
"""

from __future__ import annotations

import base64
import zlib
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from .plan import Plan

META = "META"
PLAN_CHUNK_BYTES = 300 * 1024  # DynamoDB items are capped at 400 KB


def op_pk(operation_id: str) -> str:
    return f"OP#{operation_id}"


def wave_sk(number: int) -> str:
    return f"WAVE#{number:04d}"


def resource_sk(resource_id: str) -> str:
    return f"RES#{resource_id}"


def lock_pk(customer: str, environment: str) -> str:
    return f"LOCK#{customer}#{environment}"


def scope(customer: str, environment: str) -> str:
    return f"{customer}#{environment}"


class OperationState(StrEnum):
    REQUESTED = "REQUESTED"
    DISCOVERING = "DISCOVERING"
    PLANNED = "PLANNED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED)


class WaveState(StrEnum):
    PENDING = "PENDING"
    RECOVERING = "RECOVERING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ResourceState(StrEnum):
    PENDING = "PENDING"
    RECOVERING = "RECOVERING"
    RECOVERED = "RECOVERED"
    FAILED = "FAILED"


# --- stored plans (claim check) ----------------------------------------------------------------


class PlanStore:
    def __init__(self, table: Any) -> None:
        self._table = table

    def put(self, operation_id: str, plan: Plan) -> str:
        blob = base64.b64encode(zlib.compress(plan.model_dump_json().encode(), 6)).decode()
        chunks = [blob[i : i + PLAN_CHUNK_BYTES] for i in range(0, len(blob), PLAN_CHUNK_BYTES)]
        with self._table.batch_writer() as batch:
            for index, chunk in enumerate(chunks):
                batch.put_item(
                    Item={
                        "pk": op_pk(operation_id),
                        "sk": f"PLAN#{index:04d}",
                        "chunk": chunk,
                        "chunks": len(chunks),
                    }
                )
        return op_pk(operation_id)

    def get(self, operation_id: str) -> Plan | None:
        from boto3.dynamodb.conditions import Key

        items = _query_all(
            self._table,
            KeyConditionExpression=Key("pk").eq(op_pk(operation_id))
            & Key("sk").begins_with("PLAN#"),
            ConsistentRead=True,
        )
        if not items or len(items) != int(items[0]["chunks"]):
            return None
        blob = "".join(item["chunk"] for item in sorted(items, key=lambda i: i["sk"]))
        return Plan.model_validate_json(zlib.decompress(base64.b64decode(blob)))


# --- read model ------------------------------------------------------------------------------


class ResourceView(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    resource_id: str
    strategy: str
    wave: int
    state: str
    private_ip: str | None = None
    dr_resource_id: str | None = None
    dr_private_ip: str | None = None
    error: str | None = None
    error_code: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class WaveView(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    state: str
    expected: int
    recovered: int
    failed: int
    started_at: datetime | None = None
    completed_at: datetime | None = None
    rto_target_minutes: int | None = None


class OperationView(BaseModel):
    model_config = ConfigDict(frozen=True)

    operation_id: str
    operation: str
    customer: str
    environment: str
    state: str
    requested_by: str | None = None
    reason: str | None = None
    error_code: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    current_wave: int | None = None
    waves: list[WaveView] = []
    resources: list[ResourceView] = []

    @property
    def terminal(self) -> bool:
        return OperationState(self.state).terminal


def read_operation(table: Any, operation_id: str) -> OperationView | None:
    """The operation with its waves and resources, or None when unknown."""
    from boto3.dynamodb.conditions import Key

    items = _query_all(
        table, KeyConditionExpression=Key("pk").eq(op_pk(operation_id)), ConsistentRead=True
    )
    meta = next((i for i in items if i["sk"] == META), None)
    if meta is None:
        return None
    waves = [
        WaveView.model_validate(_plain(i) | {"number": int(i["wave"])})
        for i in items
        if i["sk"].startswith("WAVE#")
    ]
    resources = [
        ResourceView.model_validate(_plain(i)) for i in items if i["sk"].startswith("RES#")
    ]
    return OperationView.model_validate(
        _plain(meta)
        | {
            "waves": sorted(waves, key=lambda w: w.number),
            "resources": sorted(resources, key=lambda r: (r.wave, r.name)),
        }
    )


def list_operations(
    table: Any, customer: str, environment: str, limit: int = 20
) -> list[dict[str, Any]]:
    from boto3.dynamodb.conditions import Key

    response = table.query(
        IndexName="by-scope",
        KeyConditionExpression=Key("scope").eq(scope(customer, environment)),
        ScanIndexForward=False,
        Limit=limit,
    )
    return [_plain(i) for i in response.get("Items", [])]


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB numbers come back as Decimal: make them ints for the models."""
    from decimal import Decimal

    return {k: int(v) if isinstance(v, Decimal) else v for k, v in item.items()}


def _query_all(table: Any, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        response = table.query(**kwargs)
        items.extend(response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
