"""Discovery adapters: the only AWS code of the service.

- `SsmRegistry`: the customer registry in SSM Parameter Store (orchestration account).
- `ResourceExplorerSearch`: `Search` on the aggregator index in the customer's DR region.
- `TaggingApiInventory`: `GetResources` in each primary region (fallback), every supported type.
- `Ec2Facts`: `DescribeInstances` in a primary region (private IP and state).
- `Ec2Inventory`, `DrsSourceServers`: what the inventory cache and the readiness report need
  (instances with platform and boot mode; DRS source servers with replication facts).
- `InventoryTable`: the DR-region inventory cache (DynamoDB, compressed snapshots).
AWS errors become `InventoryUnavailable` with the AWS error code in the message, and
`RegionUnavailable` when the region does not answer as during an outage (connection errors, 5xx).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from pydantic import ValidationError

from drcore import tags as T
from drcore.registry import PARAMETER_PREFIX, CustomerEntry, parameter_name
from drcore.tags import tag_list_to_dict

from .domain import (
    SEARCH_LIMIT,
    SUPPORTED_TYPES,
    DiscoveredResource,
    InstanceFacts,
    InventoryUnavailable,
    RegionUnavailable,
    SearchResult,
    parse_arn,
)
from .inventory import (
    CHUNK_BYTES,
    CacheStatus,
    InstanceRecord,
    ScopeSnapshot,
    SourceServerRecord,
    VersionManifest,
    chunked,
    parse_iso_duration,
    platform_of,
    unpack,
)

EC2_FILTER_VALUES = 200  # values per DescribeInstances filter
TAGS_PROPERTY = "tags"


class RegistryInvalid(ValueError):
    """A registry parameter does not hold a valid customer entry."""


REASON_CHARS = 300


# Error codes AWS answers with when a service (or the region) is unavailable.
_UNAVAILABLE_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def is_unavailable(error: Exception) -> bool:
    """Whether an AWS error looks like the region being down (connection errors, timeouts,
    5xx) rather than a refusal (access denied, validation) or throttling."""
    # Connection errors (refused, closed, connect timeout) and read timeouts.
    if isinstance(error, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = str(error.response.get("Error", {}).get("Code", ""))
        return int(status) >= 500 or code in _UNAVAILABLE_CODES or code.startswith("5")
    return False


def unavailable(error: Exception, where: str = "") -> InventoryUnavailable:
    """The adapter error for an AWS error: `RegionUnavailable` for an outage, else
    `InventoryUnavailable`; both carry the AWS reason."""
    kind = RegionUnavailable if is_unavailable(error) else InventoryUnavailable
    return kind(f"{where}{_reason(error)}")


def _reason(error: Exception) -> str:
    """The AWS error code and the start of its message (plans and events stay small)."""
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        reason = f"{err.get('Code', 'Unknown')}: {err.get('Message', '')}".strip()
    else:
        reason = f"{type(error).__name__}: {error}"
    return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"


class SsmRegistry:
    """Reads `/dr-orchestrator/customers/<name>` parameters (JSON `CustomerEntry`)."""

    def __init__(self, ssm: Any) -> None:
        self._ssm = ssm

    def get(self, customer: str) -> CustomerEntry | None:
        try:
            response = self._ssm.get_parameter(Name=parameter_name(customer))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return None
            raise
        return _entry(response["Parameter"])

    def names(self) -> list[str]:
        return sorted(entry_name for entry_name, _ in self._parameters())

    def all(self) -> list[CustomerEntry]:
        return [_entry(parameter) for _, parameter in self._parameters()]

    def _parameters(self) -> Iterator[tuple[str, dict[str, Any]]]:
        paginator = self._ssm.get_paginator("get_parameters_by_path")
        for page in paginator.paginate(Path=PARAMETER_PREFIX.rstrip("/"), Recursive=False):
            for parameter in page.get("Parameters", []):
                yield parameter["Name"].removeprefix(PARAMETER_PREFIX), parameter


def _entry(parameter: Mapping[str, Any]) -> CustomerEntry:
    try:
        return CustomerEntry.model_validate_json(parameter["Value"])
    except ValidationError as error:
        raise RegistryInvalid(
            f"{parameter['Name']} is not a valid customer entry: {error}"
        ) from error


class ResourceExplorerSearch:
    """`Search` with the default view; every page of one query (at most 1,000 matches)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls = 0

    def __call__(self, query: str) -> SearchResult:
        resources: list[DiscoveredResource] = []
        complete: bool | None = None
        kwargs: dict[str, Any] = {"QueryString": query, "MaxResults": SEARCH_LIMIT}
        try:
            while True:
                response = self._client.search(**kwargs)
                self.calls += 1
                count = response.get("Count") or {}
                if complete is None and "Complete" in count:
                    complete = bool(count["Complete"])
                resources += [self._resource(item) for item in response.get("Resources", [])]
                token = response.get("NextToken")
                if not token:
                    break
                kwargs["NextToken"] = token
        except (ClientError, BotoCoreError) as error:
            # No default view (UnauthorizedException), access denied, no index, endpoint down…
            raise InventoryUnavailable(_reason(error)) from error
        if complete is None:
            complete = len(resources) < SEARCH_LIMIT
        return SearchResult(resources=resources, complete=complete)

    @staticmethod
    def _resource(item: Mapping[str, Any]) -> DiscoveredResource:
        arn = item["Arn"]
        parts = parse_arn(arn)
        tags = _tags_property(item.get("Properties") or [])
        if tags is None:
            # Without the tags property every resource would fail validation: unusable view.
            raise InventoryUnavailable(
                "the Resource Explorer view does not include the 'tags' property"
            )
        return DiscoveredResource(
            arn=arn,
            resource_id=parts.resource_id,
            account=item.get("OwningAccountId") or parts.account,
            region=item.get("Region") or parts.region,
            tags=tags,
            # From the ARN: Resource Explorer's own `ResourceType` names ALB and NLB apart
            # (`elasticloadbalancing:loadbalancer/app|net`), the plan does not.
            resource_type=parts.resource_type,
        )


def _tags_property(properties: Sequence[Mapping[str, Any]]) -> dict[str, str] | None:
    for prop in properties:
        if prop.get("Name") == TAGS_PROPERTY:
            data = prop.get("Data") or []
            if isinstance(data, Mapping):
                return {str(k): str(v) for k, v in data.items()}
            return tag_list_to_dict(list(data))
    return None


class TaggingApiInventory:
    """`GetResources` for the scope's resources of every supported type in each primary region
    (`ResourceTypeFilters` `service:type`; `elasticloadbalancing:loadbalancer` covers classic
    load balancers, ALBs and NLBs)."""

    def __init__(self, clients_by_region: Mapping[str, Any]) -> None:
        self._clients = clients_by_region

    def resources(self, customer: str, environment: str) -> list[DiscoveredResource]:
        found: list[DiscoveredResource] = []
        for region, client in sorted(self._clients.items()):
            try:
                found += self._region(client, customer, environment)
            except (ClientError, BotoCoreError) as error:
                raise unavailable(error, f"{region}: ") from error
        return found

    @staticmethod
    def _region(client: Any, customer: str, environment: str) -> list[DiscoveredResource]:
        paginator = client.get_paginator("get_resources")
        found: list[DiscoveredResource] = []
        pages = paginator.paginate(
            TagFilters=[
                {"Key": T.ENABLED, "Values": ["true", "True", "TRUE"]},
                {"Key": T.CUSTOMER, "Values": [customer]},
                {"Key": T.ENVIRONMENT, "Values": [environment]},
            ],
            ResourceTypeFilters=list(SUPPORTED_TYPES),
            ResourcesPerPage=100,
        )
        for page in pages:
            for mapping in page.get("ResourceTagMappingList", []):
                arn = mapping["ResourceARN"]
                parts = parse_arn(arn)
                found.append(
                    DiscoveredResource(
                        arn=arn,
                        resource_id=parts.resource_id,
                        account=parts.account,
                        region=parts.region,
                        tags=tag_list_to_dict(mapping.get("Tags")),
                        resource_type=parts.resource_type,
                    )
                )
        return found


class Ec2Facts:
    """Primary private IP and state of instances, `DescribeInstances` in batches of 200 ids."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __call__(self, instance_ids: list[str]) -> dict[str, InstanceFacts]:
        facts: dict[str, InstanceFacts] = {}
        paginator = self._client.get_paginator("describe_instances")
        try:
            for start in range(0, len(instance_ids), EC2_FILTER_VALUES):
                chunk = instance_ids[start : start + EC2_FILTER_VALUES]
                # A filter, not InstanceIds: an id that no longer exists must not fail the batch.
                pages = paginator.paginate(Filters=[{"Name": "instance-id", "Values": chunk}])
                for page in pages:
                    for reservation in page.get("Reservations", []):
                        for instance in reservation.get("Instances", []):
                            facts[instance["InstanceId"]] = InstanceFacts(
                                private_ip=instance.get("PrivateIpAddress"),
                                state=(instance.get("State") or {}).get("Name"),
                            )
        except (ClientError, BotoCoreError) as error:
            raise unavailable(error) from error
        return facts


# --- inventory cache and readiness ----------------------------------------------------------------

# Instances that still exist (terminated ones are gone; twins must be launchable).
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


class Ec2Inventory:
    """EC2 instances of one region with what twin matching compares: IP, platform, boot mode
    (the instance's own, else its image's), architecture, tags."""

    def __init__(self, client: Any, region: str) -> None:
        self._client = client
        self._region = region

    def by_ids(self, instance_ids: Iterable[str]) -> dict[str, InstanceRecord]:
        ids = sorted(set(instance_ids))
        filters = [
            [{"Name": "instance-id", "Values": ids[i : i + EC2_FILTER_VALUES]}]
            for i in range(0, len(ids), EC2_FILTER_VALUES)
        ]
        return {r.instance_id: r for r in self._describe(filters)}

    def of_customer(self, customer: str) -> list[InstanceRecord]:
        """The live instances tagged `Customer=<customer>` (twin candidates; the caller re-checks
        the scope tags)."""
        return self._describe(
            [
                [
                    {"Name": f"tag:{T.CUSTOMER}", "Values": [customer]},
                    {"Name": "instance-state-name", "Values": LIVE_STATES},
                ]
            ]
        )

    def _describe(self, filter_sets: list[list[dict[str, Any]]]) -> list[InstanceRecord]:
        raw: list[dict[str, Any]] = []
        paginator = self._client.get_paginator("describe_instances")
        try:
            for filters in filter_sets:
                for page in paginator.paginate(Filters=filters):
                    for reservation in page.get("Reservations", []):
                        raw += reservation.get("Instances", [])
            images = self._boot_modes(
                {i["ImageId"] for i in raw if i.get("ImageId") and not _boot_mode(i)}
            )
        except (ClientError, BotoCoreError) as error:
            raise unavailable(error, f"{self._region}: ") from error
        return [self._record(item, images) for item in raw]

    def _boot_modes(self, image_ids: set[str]) -> dict[str, str]:
        ids = sorted(image_ids)
        modes: dict[str, str] = {}
        for start in range(0, len(ids), EC2_FILTER_VALUES):
            # A filter, not ImageIds: a deregistered image must not fail the call.
            response = self._client.describe_images(
                Filters=[{"Name": "image-id", "Values": ids[start : start + EC2_FILTER_VALUES]}]
            )
            modes.update(
                {
                    i["ImageId"]: i["BootMode"]
                    for i in response.get("Images", [])
                    if i.get("BootMode")
                }
            )
        return modes

    def _record(self, item: Mapping[str, Any], images: Mapping[str, str]) -> InstanceRecord:
        return InstanceRecord(
            instance_id=item["InstanceId"],
            region=self._region,
            tags=tag_list_to_dict(item.get("Tags")),
            private_ip=item.get("PrivateIpAddress"),
            state=(item.get("State") or {}).get("Name"),
            platform=platform_of(item.get("Platform") or item.get("PlatformDetails") or "Linux"),
            boot_mode=_boot_mode(item) or images.get(item.get("ImageId") or ""),
            architecture=item.get("Architecture"),
            image_id=item.get("ImageId"),
        )


def _boot_mode(instance: Mapping[str, Any]) -> str | None:
    mode = instance.get("CurrentInstanceBootMode") or instance.get("BootMode")
    return str(mode) if mode else None


class DrsSourceServers:
    """Every (not archived) DRS source server of the account in one DR region."""

    def __init__(self, client: Any, region: str) -> None:
        self._client = client
        self._region = region

    def all(self) -> list[SourceServerRecord]:
        servers: list[SourceServerRecord] = []
        try:
            for page in self._client.get_paginator("describe_source_servers").paginate(filters={}):
                servers += [
                    self._record(item)
                    for item in page.get("items", [])
                    if not item.get("isArchived")
                ]
        except (ClientError, BotoCoreError) as error:
            raise unavailable(error, f"{self._region}: ") from error
        return servers

    def _record(self, item: Mapping[str, Any]) -> SourceServerRecord:
        props = item.get("sourceProperties") or {}
        hints = props.get("identificationHints") or {}
        replication = item.get("dataReplicationInfo") or {}
        cloud = item.get("sourceCloudProperties") or {}
        return SourceServerRecord(
            source_server_id=item["sourceServerID"],
            region=self._region,
            instance_id=hints.get("awsInstanceID"),
            origin_region=cloud.get("originRegion"),
            tags=dict(item.get("tags") or {}),
            replication_state=replication.get("dataReplicationState"),
            lag_seconds=parse_iso_duration(replication.get("lagDuration")),
            os=(props.get("os") or {}).get("fullString"),
            primary_ip=_primary_ip(props.get("networkInterfaces") or []),
        )


def _primary_ip(interfaces: Sequence[Mapping[str, Any]]) -> str | None:
    for nic in sorted(interfaces, key=lambda n: not n.get("isPrimary")):
        for ip in nic.get("ips") or []:
            if "." in ip:
                return str(ip)
    return None


# Keys of the inventory table (see drcore/tables.py).
SCOPE_PREFIX = "SCOPE#"
CURRENT_PREFIX = "CURRENT#"
VERSION_PK = "VERSION"
STATUS_KEY = "STATUS"
BATCH_WRITE = 25


def scope_pk(customer: str, environment: str) -> str:
    return f"{SCOPE_PREFIX}{customer}#{environment}"


class InventoryTable:
    """The inventory cache table (low-level client: snapshots are Binary, compressed).

    The current snapshot of a scope (`CURRENT#<chunk>`, no TTL) is replaced as a whole (one
    transaction); each version is also kept as history (`V#<version>#<chunk>`) and a manifest
    (`VERSION`), both with a TTL. A reader only accepts a current snapshot whose chunks all carry
    the same version."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- writing

    def put_snapshot(
        self,
        snapshot: ScopeSnapshot,
        data: bytes,
        expires_at: int,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        pk = scope_pk(snapshot.customer, snapshot.environment)
        pieces = chunked(data, chunk_bytes)
        common = {
            "pk": {"S": pk},
            "version": {"S": snapshot.version},
            "captured_at": {"S": snapshot.captured_at.isoformat()},
            "resources": {"N": str(len(snapshot.resources))},
            "chunks": {"N": str(len(pieces))},
        }
        current = [
            {**common, "sk": {"S": f"{CURRENT_PREFIX}{i:04d}"}, "data": {"B": piece}}
            for i, piece in enumerate(pieces)
        ]
        history = [
            {
                **common,
                "sk": {"S": f"V#{snapshot.version}#{i:04d}"},
                "data": {"B": piece},
                "expires_at": {"N": str(expires_at)},
            }
            for i, piece in enumerate(pieces)
        ]
        self._batch_put(history)
        if len(current) == 1:
            self._client.put_item(TableName=self._table, Item=current[0])
        else:
            self._client.transact_write_items(
                TransactItems=[{"Put": {"TableName": self._table, "Item": i}} for i in current]
            )

    def put_manifest(self, manifest: VersionManifest, expires_at: int) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": VERSION_PK},
                "sk": {"S": manifest.version},
                "data": {"B": zlib.compress(manifest.model_dump_json().encode(), 9)},
                "expires_at": {"N": str(expires_at)},
            },
        )

    def _batch_put(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), BATCH_WRITE):
            requests = [{"PutRequest": {"Item": i}} for i in items[start : start + BATCH_WRITE]]
            pending: dict[str, Any] = {self._table: requests}
            while pending:
                response = self._client.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}

    # -- reading

    def current(self, customer: str, environment: str) -> ScopeSnapshot | None:
        """The current snapshot of a scope, or None (never cached, or caught mid-write).
        Raises `InventoryUnavailable` when the table cannot be read."""
        try:
            return self._current(customer, environment)
        except (ClientError, BotoCoreError) as error:
            raise unavailable(error, "inventory cache: ") from error

    def _current(self, customer: str, environment: str) -> ScopeSnapshot | None:
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": scope_pk(customer, environment)},
                ":prefix": {"S": CURRENT_PREFIX},
            },
        )
        if not items:
            return None
        items.sort(key=lambda i: i["sk"]["S"])
        count = int(items[0]["chunks"]["N"])
        version = items[0]["version"]["S"]
        chunks = items[:count]
        if len(chunks) != count or any(i["version"]["S"] != version for i in chunks):
            return None
        return unpack(b"".join(bytes(i["data"]["B"]) for i in chunks))

    def current_summary(self, customer: str, environment: str) -> tuple[str, datetime, int] | None:
        """(version, captured_at, resources) of a scope's current snapshot, without its data."""
        response = self._client.get_item(
            TableName=self._table,
            Key={
                "pk": {"S": scope_pk(customer, environment)},
                "sk": {"S": f"{CURRENT_PREFIX}0000"},
            },
            ProjectionExpression="version, captured_at, resources",
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            return None
        return (
            item["version"]["S"],
            datetime.fromisoformat(item["captured_at"]["S"]),
            int(item["resources"]["N"]),
        )

    def manifests(self, limit: int | None = None) -> list[VersionManifest]:
        """Versions still kept, newest first."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": VERSION_PK}},
            "ScanIndexForward": False,
        }
        items = self._query(limit=limit, **kwargs)
        return [
            VersionManifest.model_validate_json(zlib.decompress(bytes(i["data"]["B"])))
            for i in items
        ]

    def status(self) -> CacheStatus:
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": STATUS_KEY}, "sk": {"S": STATUS_KEY}},
            ConsistentRead=True,
        )
        item = response.get("Item") or {}
        return CacheStatus.model_validate(
            {k: v.get("S") for k, v in item.items() if k not in ("pk", "sk") and "S" in v}
        )

    # -- the refresh lease: one refresh at a time, whoever triggers it

    def begin_refresh(self, now: datetime, lease_seconds: int, request_id: str | None) -> bool:
        """Take the refresh lease (and record the attempt); False when another refresh holds it."""
        epoch = int(now.timestamp())
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": STATUS_KEY}, "sk": {"S": STATUS_KEY}},
                UpdateExpression="SET lease_until = :until, last_attempt_at = :at"
                + (", last_request_id = :rid" if request_id else ""),
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now",
                ExpressionAttributeValues={
                    ":until": {"N": str(epoch + lease_seconds)},
                    ":at": {"S": now.isoformat()},
                    ":now": {"N": str(epoch)},
                    **({":rid": {"S": request_id}} if request_id else {}),
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def end_refresh(self, manifest: VersionManifest | None, error: str | None) -> None:
        """Release the lease and record the outcome."""
        names = ["lease_until = :zero", "last_outcome = :outcome"]
        values: dict[str, Any] = {
            ":zero": {"N": "0"},
            ":outcome": {"S": manifest.outcome if manifest else "failed"},
        }
        if manifest is not None and manifest.outcome != "failed":
            names += ["last_success_at = :success", "last_version = :version"]
            values[":success"] = {"S": manifest.captured_at.isoformat()}
            values[":version"] = {"S": manifest.version}
        if error:
            names.append("last_error = :error")
            values[":error"] = {"S": error[:1000]}
        update = "SET " + ", ".join(names) + ("" if error else " REMOVE last_error")
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": STATUS_KEY}, "sk": {"S": STATUS_KEY}},
            UpdateExpression=update,
            ExpressionAttributeValues=values,
        )

    def _query(self, limit: int | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs = {"TableName": self._table, "ConsistentRead": True, **kwargs}
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(items)
            response = self._client.query(**kwargs)
            items += response.get("Items", [])
            if "LastEvaluatedKey" not in response or (limit is not None and len(items) >= limit):
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
