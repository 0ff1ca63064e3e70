"""End to end in the sandbox: EKS failover, the reconciler's re-check, failback, a drill that
flips nothing, and an unhealthy DR side that fails clearly and flips nothing.

The estate (`estates/eks.yaml`) gives each scenario its own customer. Operations are started with
`drctl` as an operator would; discovery plans the clusters, the coordinator runs the waves and the
eks service recovers them against the emulated EKS add-ons, Kubernetes API and Route 53
`TestDNSAnswer` (moto for the rest).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from drcore.aws import AccountAccess, AwsClients
from drcore.publisher import EventPublisher
from drcore.state import OperationView, read_operation
from events.schemas import DetailType, OperationRequested, OperationType, Source, Strategy
from sandbox.daemon import Sandbox
from sandbox.estate import Estate, load_estate
from sandbox.estate_eks import EksCluster
from sandbox.seed_eks import ingress, zone_name
from services.eks import domain as D

pytestmark = pytest.mark.sandbox

ESTATE = Path(__file__).parent / "estates" / "eks.yaml"
PRIMARY, DR = "us-east-1", "us-east-2"


@pytest.fixture(scope="module")
def estate(sandbox: Sandbox) -> Estate:
    from sandbox.seed import seed_estate

    loaded = load_estate(ESTATE)
    summary = seed_estate(loaded, sandbox.url, orchestration_region=DR)
    sandbox.connect(summary.customers)
    return loaded


@pytest.fixture(scope="module")
def results(sandbox: Sandbox, estate: Estate) -> Iterator[Callable[..., dict[str, Any]]]:
    """`results(customer, resource_id, kind)`: the next eks result seen on the bus."""
    sqs = boto3.client("sqs", endpoint_url=sandbox.url, region_name=DR)
    events = boto3.client("events", endpoint_url=sandbox.url, region_name=DR)
    name = "e2e-eks-results"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    bus = sandbox.settings.bus_name
    pattern = {"source": [Source.EKS.value]}
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "probe", "Arn": arn}])
    seen: list[dict[str, Any]] = []

    def next_result(customer: str, resource_id: str, after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            matching = [
                e
                for e in seen
                if e["detail"]["customer"] == customer and e["detail"]["resource_id"] == resource_id
            ]
            if len(matching) > after:
                return matching[after]
            for message in sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                seen.append(json.loads(message["Body"]))
        raise AssertionError(f"no eks result #{after + 1} for {customer}/{resource_id}")

    yield next_result
    events.remove_targets(Rule=name, EventBusName=bus, Ids=["probe"])
    events.delete_rule(Name=name, EventBusName=bus)


def drctl(sandbox: Sandbox, *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "--endpoint-url", sandbox.url, *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"drctl {args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        ) from None


def request(sandbox: Sandbox, estate: Estate, operation: OperationType, customer: str) -> str:
    """Start an operation the documented way without drctl: `OperationRequested` on the bus."""
    found = estate.customer(customer)
    assert found is not None
    detail = OperationRequested(
        operation_id=f"op-e2e-{customer}-{operation.value}-{uuid.uuid4().hex[:6]}",
        customer=customer,
        environment="staging",
        operation=operation,
        requested_by="e2e",
        region_map=dict(estate.regions),
    )
    events = boto3.client("events", endpoint_url=sandbox.url, region_name=DR)
    EventPublisher(events, sandbox.settings.bus_name).publish(Source.CLI, [detail])
    return detail.operation_id


def wait_state(sandbox: Sandbox, operation_id: str, *states: str) -> OperationView:
    table = boto3.resource("dynamodb", endpoint_url=sandbox.url, region_name=DR).Table(
        sandbox.settings.operations_table
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        view = read_operation(table, operation_id)
        if view is not None and view.state in states:
            return view
        time.sleep(0.3)
    raise AssertionError(f"{operation_id} never reached {states}")


def route53(sandbox: Sandbox, estate: Estate, customer: str) -> Any:
    found = estate.customer(customer)
    assert found is not None
    access = AccountAccess(found.account, "dr-orchestrator-workload", f"dr-{customer}")
    return AwsClients(sandbox.settings).workload_client("route53", PRIMARY, access)


def primary_check(r53: Any, cluster: str) -> dict[str, Any]:
    """The PRIMARY record's health check of the cluster's `app` record, as Route 53 has it."""
    zone = r53.list_hosted_zones_by_name(DNSName=zone_name_of(cluster), MaxItems="1")
    zone_id = zone["HostedZones"][0]["Id"]
    sets = r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    check_id = next(s["HealthCheckId"] for s in sets if s.get("Failover") == "PRIMARY")
    check: dict[str, Any] = r53.get_health_check(HealthCheckId=check_id)["HealthCheck"]
    return check


def zone_name_of(cluster: str) -> str:
    return zone_name(EksCluster(name=cluster, wave=1))


def answer(r53: Any, cluster: str, label: str = "app") -> list[str]:
    zone = r53.list_hosted_zones_by_name(DNSName=zone_name_of(cluster), MaxItems="1")
    zone_id = zone["HostedZones"][0]["Id"].split("/")[-1]
    data: list[str] = r53.test_dns_answer(
        HostedZoneId=zone_id, RecordName=f"{label}.{zone_name_of(cluster)}", RecordType="CNAME"
    )["RecordData"]
    return data


def test_failover_then_reconciler_recheck_then_failback(
    sandbox: Sandbox, estate: Estate, results: Callable[..., dict[str, Any]]
) -> None:
    r53 = route53(sandbox, estate, "eks-alpha")
    assert answer(r53, "alpha-stg-eks") == [ingress("alpha-stg-eks", PRIMARY)]

    # When the environment fails over
    code, status = drctl(sandbox, "failover", "-c", "eks-alpha", "-e", "staging", "--yes", "--wait")

    # Then the cluster is recovered onto its DR twin, the primary's health check is inverted and
    # Route 53 answers both names with the DR ingress
    assert code == 0 and status["state"] == "COMPLETED", status
    [resource] = status["resources"]
    assert resource["strategy"] == Strategy.EKS_DNS.value and resource["state"] == "RECOVERED"
    assert resource["dr_resource_id"] == "alpha-stg-eks-dr"
    assert primary_check(r53, "alpha-stg-eks")["HealthCheckConfig"]["Inverted"] is True
    dr_ingress = ingress("alpha-stg-eks-dr", DR)
    assert answer(r53, "alpha-stg-eks") == [dr_ingress]
    assert answer(r53, "alpha-stg-eks", "api.internal") == [dr_ingress]
    first = results("eks-alpha", "alpha-stg-eks")
    assert first["detail-type"] == DetailType.RESOURCE_RECOVERED.value
    details = first["detail"]["details"]
    assert details["dns:app.alpha-stg-eks.sandbox.example CNAME"] == dr_ingress
    assert details["deployments_available"] == "2/2" and details["pods_ready"] == "4/4"
    assert details["addons"] == "coredns=ACTIVE kube-proxy=ACTIVE vpc-cni=ACTIVE"

    # When the reconciler asks again about the resource
    version = primary_check(r53, "alpha-stg-eks")["HealthCheckVersion"]
    detail = first["detail"]
    check = {
        k: detail[k] for k in ("operation_id", "customer", "environment", "operation", "wave")
    } | {
        "strategy": Strategy.EKS_DNS.value,
        "part": 1,
        "part_count": 1,
        "resources": [_ref(estate, "eks-alpha", "alpha-stg-eks")],
        "in_flight_since": datetime.now(UTC).isoformat(),
        "reason": "e2e re-check",
    }
    events = boto3.client("events", endpoint_url=sandbox.url, region_name=DR)
    events.put_events(
        Entries=[
            {
                "Source": Source.COORDINATOR.value,
                "DetailType": DetailType.RESOURCE_CHECK_REQUESTED.value,
                "Detail": json.dumps(check),
                "EventBusName": sandbox.settings.bus_name,
            }
        ]
    )
    # Then the same result is published again and nothing was changed
    again = results("eks-alpha", "alpha-stg-eks", after=1)
    assert again["detail"] == first["detail"]
    assert primary_check(r53, "alpha-stg-eks")["HealthCheckVersion"] == version

    # When it fails back (requested on the bus: `drctl failback` checks DRS servers first and
    # refuses an environment without any)
    op = request(sandbox, estate, OperationType.FAILBACK, "eks-alpha")
    back = wait_state(sandbox, op, "COMPLETED", "PAUSED", "FAILED")

    # Then the check is no longer inverted and Route 53 answers with the primary ingress again
    assert back.state == "COMPLETED", back
    assert back.resources[0].dr_resource_id == "alpha-stg-eks"
    assert primary_check(r53, "alpha-stg-eks")["HealthCheckConfig"]["Inverted"] is False
    assert answer(r53, "alpha-stg-eks") == [ingress("alpha-stg-eks", PRIMARY)]


def test_a_drill_validates_the_dr_cluster_and_flips_nothing(
    sandbox: Sandbox, estate: Estate, results: Callable[..., dict[str, Any]]
) -> None:
    r53 = route53(sandbox, estate, "eks-bravo")
    before = primary_check(r53, "bravo-stg-eks")

    code, status = drctl(sandbox, "drill", "-c", "eks-bravo", "-e", "staging", "--wait")

    assert code == 0 and status["state"] == "COMPLETED", status
    assert status["resources"][0]["state"] == "RECOVERED"
    result = results("eks-bravo", "bravo-stg-eks")["detail"]
    assert result["details"]["flipped"] == "nothing (drill)"
    assert result["details"]["deployments_available"] == "2/2"
    assert result["details"]["pods_ready"] == "5/5"
    # Nothing flipped: the health check is exactly as it was, DNS still answers the primary
    assert primary_check(r53, "bravo-stg-eks") == before
    assert answer(r53, "bravo-stg-eks") == [ingress("bravo-stg-eks", PRIMARY)]


def test_an_unhealthy_dr_side_fails_clearly_and_flips_nothing(
    sandbox: Sandbox, estate: Estate, results: Callable[..., dict[str, Any]]
) -> None:
    # Given DR clusters with a degraded node group and an unavailable deployment
    r53 = route53(sandbox, estate, "eks-charlie")
    before = {c: primary_check(r53, c) for c in ("charlie-stg-eks", "charlie-stg-eks-b")}

    op = request(sandbox, estate, OperationType.FAILOVER, "eks-charlie")
    status = wait_state(sandbox, op, "PAUSED", "FAILED", "COMPLETED")

    # Then the wave pauses on two failed resources with clear reason codes
    assert status.state == "PAUSED", status
    by_id = {r.resource_id: r for r in status.resources}
    assert by_id["charlie-stg-eks"].state == "FAILED"
    assert by_id["charlie-stg-eks"].error_code == D.NODEGROUP_NOT_READY
    assert "DEGRADED" in (by_id["charlie-stg-eks"].error or "")
    assert by_id["charlie-stg-eks-b"].error_code == D.WORKLOAD_UNAVAILABLE
    assert "default/web" in (by_id["charlie-stg-eks-b"].error or "")
    failed = results("eks-charlie", "charlie-stg-eks")
    assert failed["detail-type"] == DetailType.RESOURCE_RECOVERY_FAILED.value
    # Nothing flipped: both health checks untouched, DNS still answers the primary ingress
    for cluster, check in before.items():
        assert primary_check(r53, cluster) == check
        assert answer(r53, cluster) == [ingress(cluster, PRIMARY)]
    drctl(sandbox, "abort", op, "--yes")


def _ref(estate: Estate, customer: str, cluster: str) -> dict[str, Any]:
    found = estate.customer(customer)
    assert found is not None
    return {
        "resource_id": cluster,
        "arn": f"arn:aws:eks:{PRIMARY}:{found.account}:cluster/{cluster}",
        "resource_type": "eks:cluster",
        "name": cluster,
        "account": found.account,
        "region": PRIMARY,
        "dr_region": DR,
        "rto_target_minutes": 60,
        "rpo_target_minutes": 15,
    }
