"""DynamoDB tables: declared once, built by the sandbox runtime and the CDK app alike."""

from __future__ import annotations

from dataclasses import dataclass, field

from .settings import Settings


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str | None = None


@dataclass(frozen=True)
class TableSpec:
    logical_name: str
    partition_key: str
    sort_key: str | None = None
    ttl_attribute: str | None = None
    indexes: tuple[Index, ...] = field(default_factory=tuple)


# Operations table: operation items, wave items, resource items, locks, stored plans.
#   pk = OP#<operation_id>        sk = META | WAVE#0001 | RES#<resource_id> | PLAN#0000
#   pk = LOCK#<customer>#<env>    sk = LOCK
# GSI "by-scope" lists operations per customer + environment, newest first.
OPERATIONS = TableSpec(
    logical_name="operations",
    partition_key="pk",
    sort_key="sk",
    ttl_attribute="expires_at",
    indexes=(Index("by-scope", "scope", "created_at"),),
)
# Powertools idempotency records.
IDEMPOTENCY = TableSpec(logical_name="idempotency", partition_key="id", ttl_attribute="expiration")

# DR-region inventory cache (services/discovery/inventory.py), compressed snapshots:
#   pk = SCOPE#<customer>#<env>   sk = CURRENT#<chunk>            the latest snapshot, no TTL
#   pk = SCOPE#<customer>#<env>   sk = V#<version>#<chunk>        history, TTL 24 h
#   pk = VERSION                  sk = <version>                  manifest + checks, TTL 24 h
#   pk = STATUS                   sk = STATUS                     last attempt / success, no TTL
INVENTORY = TableSpec(
    logical_name="inventory", partition_key="pk", sort_key="sk", ttl_attribute="expires_at"
)

TABLES = (OPERATIONS, IDEMPOTENCY, INVENTORY)


def table_name(spec: TableSpec, settings: Settings) -> str:
    return {
        "operations": settings.operations_table,
        "idempotency": settings.idempotency_table,
        "inventory": settings.inventory_table,
    }[spec.logical_name]


def create_table(dynamodb_client: object, spec: TableSpec, name: str) -> None:
    """Create one table as declared (on-demand billing); used by the sandbox and by tests."""
    attributes = {spec.partition_key}
    keys = [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
    if spec.sort_key:
        attributes.add(spec.sort_key)
        keys.append({"AttributeName": spec.sort_key, "KeyType": "RANGE"})
    indexes = []
    for index in spec.indexes:
        attributes.add(index.partition_key)
        index_keys = [{"AttributeName": index.partition_key, "KeyType": "HASH"}]
        if index.sort_key:
            attributes.add(index.sort_key)
            index_keys.append({"AttributeName": index.sort_key, "KeyType": "RANGE"})
        indexes.append(
            {
                "IndexName": index.name,
                "KeySchema": index_keys,
                "Projection": {"ProjectionType": "ALL"},
            }
        )
    kwargs: dict[str, object] = {
        "TableName": name,
        "KeySchema": keys,
        "AttributeDefinitions": [
            {"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if indexes:
        kwargs["GlobalSecondaryIndexes"] = indexes
    dynamodb_client.create_table(**kwargs)  # type: ignore[attr-defined]
    if spec.ttl_attribute:
        dynamodb_client.update_time_to_live(  # type: ignore[attr-defined]
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
        )
