"""The Service Quotas emulator through a real boto3 `service-quotas` client (json protocol,
validated against botocore's model), and the values DRS is held to."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox.emulators import Knobs
from sandbox.emulators.service_quotas import QuotaError, QuotaStore, QuotaValuesRequest

from .conftest import DEFAULT_ACCOUNT, DR, Admin, ClientFactory, assume

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def _fresh(admin: Admin) -> None:
    admin.reset()


def quotas(client: Any, operation: str, **kwargs: Any) -> dict[str, dict[str, Any]]:
    pages = client.get_paginator(operation).paginate(ServiceCode="drs", **kwargs)
    return {q["QuotaName"]: q for page in pages for q in page["Quotas"]}


def test_given_no_applied_value_then_defaults_are_listed_and_applied_ones_are_not(
    client: ClientFactory,
) -> None:
    sq = client("service-quotas")
    defaults = quotas(sq, "list_aws_default_service_quotas")
    assert defaults["Max concurrent Jobs in progress"]["Value"] == 20.0
    assert defaults["Max source servers in a single Drill or Recovery job"]["Value"] == 100.0
    assert defaults["Max source servers in all Drill or Recovery jobs"]["Value"] == 500.0
    quota = defaults["Max concurrent Jobs in progress"]
    assert quota["ServiceName"] == "AWS Elastic Disaster Recovery"
    assert quota["QuotaArn"].startswith(f"arn:aws:servicequotas:{DR}:{DEFAULT_ACCOUNT}:drs/")
    # ListServiceQuotas answers applied values only
    assert quotas(sq, "list_service_quotas") == {}


def test_given_applied_values_then_they_are_per_account_and_region(
    admin: Admin, client: ClientFactory
) -> None:
    admin.post(
        "/_sandbox/service-quotas",
        {
            "account": "111111111111",
            "region": DR,
            "quotas": {
                "MaxConcurrentJobs": 2,
                "Max source servers in all Drill or Recovery jobs": 8,
            },
        },
    )
    creds = assume(client, "111111111111")
    applied = quotas(client("service-quotas", creds=creds), "list_service_quotas")
    assert {n: q["Value"] for n, q in applied.items()} == {
        "Max concurrent Jobs in progress": 2.0,
        "Max source servers in all Drill or Recovery jobs": 8.0,
    }
    got = client("service-quotas", creds=creds).get_service_quota(
        ServiceCode="drs", QuotaCode="MaxConcurrentJobs"
    )
    assert got["Quota"]["Value"] == 2.0
    # another account, another region: nothing applied
    assert quotas(client("service-quotas"), "list_service_quotas") == {}
    assert (
        quotas(client("service-quotas", region="us-east-1", creds=creds), "list_service_quotas")
        == {}
    )


def test_given_the_applied_quota_then_drs_holds_the_account_to_it(
    admin: Admin, client: ClientFactory
) -> None:
    admin.post(
        "/_sandbox/service-quotas",
        {"account": DEFAULT_ACCOUNT, "region": DR, "quotas": {"MaxSourceServersInJob": 1}},
    )
    servers = [
        {"instance_id": f"i-{n:017x}", "hostname": f"h{n}", "private_ip": f"10.1.0.{n + 10}"}
        for n in range(2)
    ]
    ids = admin.post(
        "/_sandbox/drs/source-servers",
        {"account": DEFAULT_ACCOUNT, "region": DR, "source_servers": servers},
    )["source_server_ids"]
    with pytest.raises(ClientError) as refused:
        client("drs").start_recovery(sourceServers=[{"sourceServerID": s} for s in ids])
    error = refused.value.response
    assert error["Error"]["Code"] == "ServiceQuotaExceededException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 402


def test_bad_requests_answer_modelled_errors(client: ClientFactory) -> None:
    sq = client("service-quotas")
    with pytest.raises(ClientError) as unknown:
        sq.list_service_quotas(ServiceCode="nosuchservice")
    assert unknown.value.response["Error"]["Code"] == "NoSuchResourceException"
    with pytest.raises(ClientError) as quota:
        sq.get_aws_default_service_quota(ServiceCode="drs", QuotaCode="L-NOPE")
    assert quota.value.response["Error"]["Code"] == "NoSuchResourceException"
    with pytest.raises(ClientError) as token:
        sq.list_aws_default_service_quotas(ServiceCode="drs", NextToken="bm90LWEtbnVtYmVy")
    assert token.value.response["Error"]["Code"] == "InvalidPaginationTokenException"
    raw = client("service-quotas", validate=False)
    with pytest.raises(ClientError) as invalid:
        raw.list_service_quotas(ServiceCode="drs", MaxResults=1000)
    assert invalid.value.response["Error"]["Code"] == "ValidationException"
    assert "MaxResults" in invalid.value.response["Error"]["Message"]


def test_pages_follow_max_results(client: ClientFactory) -> None:
    sq = client("service-quotas")
    first = sq.list_aws_default_service_quotas(ServiceCode="drs", MaxResults=2)
    assert len(first["Quotas"]) == 2 and first["NextToken"]
    rest = quotas(sq, "list_aws_default_service_quotas", PaginationConfig={"PageSize": 2})
    assert len(rest) == 5


def test_throttling_is_too_many_requests_that_botocore_retries(
    admin: Admin, client: ClientFactory
) -> None:
    admin.post("/_sandbox/config", {"throttle_rate": 1.0})
    with pytest.raises(ClientError) as throttled:
        client("service-quotas", retries=1).list_services()
    assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"


def test_a_bad_admin_payload_names_the_bad_value(admin: Admin) -> None:
    status, body = admin.call(
        "/_sandbox/service-quotas",
        {"account": DEFAULT_ACCOUNT, "region": DR, "quotas": {"MaxJobsEver": 3}},
    )
    assert status == 400 and "MaxJobsEver" in body["message"]
    store = QuotaStore()
    with pytest.raises(QuotaError, match="nosuch"):
        store.apply(QuotaValuesRequest(account=DEFAULT_ACCOUNT, region=DR, service_code="nosuch"))


def test_the_emulator_handles_only_modelled_operations() -> None:
    from sandbox.emulators.service_quotas import ServiceQuotasEmulator

    emulator = ServiceQuotasEmulator(Knobs())
    assert set(emulator.operations) <= set(emulator.codec.model.operation_names)
    assert "ListServiceQuotas" in emulator.operations
