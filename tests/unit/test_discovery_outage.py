"""Telling a regional outage apart from other AWS errors, and enrichment letting an outage through
(so the plan comes from the DR-region cache) while it still skips other EC2 failures."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from services.discovery.adapters import is_unavailable, unavailable
from services.discovery.domain import (
    ENRICHMENT_SKIPPED,
    DiscoveredResource,
    InstanceFacts,
    InventoryUnavailable,
    RegionUnavailable,
    enrich,
)


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "DescribeInstances",
    )


@pytest.mark.parametrize(
    "error",
    [
        client_error("503", 503),
        client_error("ServiceUnavailable", 503),
        client_error("InternalError", 500),
        client_error("Unavailable", 503),
        EndpointConnectionError(endpoint_url="https://ec2.us-east-1.amazonaws.com"),
        ConnectTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com"),
    ],
    ids=[
        "503",
        "ServiceUnavailable",
        "InternalError",
        "Unavailable",
        "connection",
        "connect-timeout",
        "read-timeout",
    ],
)
def test_connection_errors_timeouts_and_5xx_are_an_outage(error: Exception) -> None:
    assert is_unavailable(error)
    assert isinstance(unavailable(error, "us-east-1: "), RegionUnavailable)


@pytest.mark.parametrize(
    "error",
    [
        client_error("AccessDenied", 403),
        client_error("UnauthorizedOperation", 403),
        client_error("ThrottlingException", 400),
        client_error("ValidationException", 400),
    ],
)
def test_refusals_and_throttling_are_not_an_outage(error: Exception) -> None:
    assert not is_unavailable(error)
    found = unavailable(error)
    assert type(found) is InventoryUnavailable


def resource(instance_id: str, region: str) -> DiscoveredResource:
    return DiscoveredResource(
        arn=f"arn:aws:ec2:{region}:111111111111:instance/{instance_id}",
        resource_id=instance_id,
        account="111111111111",
        region=region,
    )


def test_given_a_primary_region_down_when_enriching_then_the_outage_propagates() -> None:
    def lookup(region: str, ids: list[str]) -> dict[str, InstanceFacts]:
        raise RegionUnavailable(f"{region}: 503")

    with pytest.raises(RegionUnavailable, match="us-east-1"):
        enrich([resource("i-1", "us-east-1")], lookup)


def test_given_ec2_refusing_when_enriching_then_the_region_is_skipped_with_a_warning() -> None:
    def lookup(region: str, ids: list[str]) -> dict[str, InstanceFacts]:
        if region == "us-east-1":
            raise InventoryUnavailable("AccessDenied: no")
        return {i: InstanceFacts(private_ip="10.2.0.1", state="running") for i in ids}

    enriched, notes = enrich([resource("i-1", "us-east-1"), resource("i-2", "us-west-2")], lookup)

    assert [n.code for n in notes] == [ENRICHMENT_SKIPPED]
    assert {r.resource_id: r.private_ip for r in enriched} == {"i-1": None, "i-2": "10.2.0.1"}
