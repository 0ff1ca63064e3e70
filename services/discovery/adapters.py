"""Discovery adapters: the only AWS code of the service.

- `SsmRegistry`: the customer registry in SSM Parameter Store (orchestration account).
- `ResourceExplorerSearch`: `Search` on the aggregator index in the customer's DR region.
- `TaggingApiInventory`: `GetResources` in each primary region (fallback).
- `Ec2Facts`: `DescribeInstances` in a primary region (private IP and state).
AWS errors become `InventoryUnavailable` with the AWS error code in the message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from drcore import tags as T
from drcore.registry import PARAMETER_PREFIX, CustomerEntry, parameter_name
from drcore.tags import tag_list_to_dict

from .domain import (
    SEARCH_LIMIT,
    DiscoveredResource,
    InstanceFacts,
    InventoryUnavailable,
    SearchResult,
    parse_arn,
)

EC2_FILTER_VALUES = 200  # values per DescribeInstances filter
TAGS_PROPERTY = "tags"


class RegistryInvalid(ValueError):
    """A registry parameter does not hold a valid customer entry."""


REASON_CHARS = 300


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
        region, account, resource_id = parse_arn(arn)
        tags = _tags_property(item.get("Properties") or [])
        if tags is None:
            # Without the tags property every resource would fail validation: unusable view.
            raise InventoryUnavailable(
                "the Resource Explorer view does not include the 'tags' property"
            )
        return DiscoveredResource(
            arn=arn,
            resource_id=resource_id,
            account=item.get("OwningAccountId") or account,
            region=item.get("Region") or region,
            tags=tags,
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
    """`GetResources` for the scope's EC2 instances in each primary region."""

    def __init__(self, clients_by_region: Mapping[str, Any]) -> None:
        self._clients = clients_by_region

    def resources(self, customer: str, environment: str) -> list[DiscoveredResource]:
        found: list[DiscoveredResource] = []
        for region, client in sorted(self._clients.items()):
            try:
                found += self._region(client, customer, environment)
            except (ClientError, BotoCoreError) as error:
                raise InventoryUnavailable(f"{region}: {_reason(error)}") from error
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
            ResourceTypeFilters=["ec2:instance"],
            ResourcesPerPage=100,
        )
        for page in pages:
            for mapping in page.get("ResourceTagMappingList", []):
                arn = mapping["ResourceARN"]
                region, account, resource_id = parse_arn(arn)
                found.append(
                    DiscoveredResource(
                        arn=arn,
                        resource_id=resource_id,
                        account=account,
                        region=region,
                        tags=tag_list_to_dict(mapping.get("Tags")),
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
            raise InventoryUnavailable(_reason(error)) from error
        return facts
