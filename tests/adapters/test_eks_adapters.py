"""eks adapters under moto: EKS reads, Route 53 failover records and health checks, the DynamoDB
ledger (one flip claim, stored results) and the Kubernetes IAM token."""

from __future__ import annotations

import base64
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from drcore.settings import Settings
from events.schemas import OperationType, ResourceRecovered, Strategy
from services.eks.adapters import DynamoLedger, EksClusters, Route53Dns, kubernetes_token

REGION = "us-east-2"


@pytest.fixture
def eks(moto_aws: None) -> Any:
    client = boto3.client("eks", region_name=REGION)
    client.create_cluster(
        name="c1",
        roleArn="arn:aws:iam::123456789012:role/eks",
        resourcesVpcConfig={},
        tags={"Customer": "acme"},
    )
    client.create_nodegroup(
        clusterName="c1",
        nodegroupName="workers",
        nodeRole="arn:aws:iam::123456789012:role/node",
        subnets=["subnet-1"],
        scalingConfig={"minSize": 1, "maxSize": 4, "desiredSize": 3},
    )
    return client


def test_given_a_cluster_then_it_is_read_with_tags_and_node_groups(eks: Any) -> None:
    api = EksClusters(eks)
    cluster = api.cluster("c1")
    assert (
        cluster is not None and cluster.status == "ACTIVE" and cluster.tags == {"Customer": "acme"}
    )
    assert cluster.endpoint and cluster.certificate_authority
    assert api.cluster("missing") is None
    [group] = api.nodegroups("c1")
    assert (group.name, group.status, group.desired_size) == ("workers", "ACTIVE", 3)
    assert [c.name for c in api.clusters()] == ["c1"]


def _zone(r53: Any) -> tuple[str, str]:
    zone = r53.create_hosted_zone(Name="acme.example", CallerReference="z")["HostedZone"]["Id"]
    check = r53.create_health_check(
        CallerReference="hc",
        HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": "p.example", "Port": 443},
    )["HealthCheck"]["Id"]
    changes = []
    for name in ("a.acme.example.", "app.acme.example.", "b.acme.example."):
        for role in ("PRIMARY", "SECONDARY"):
            record: dict[str, Any] = {
                "Name": name,
                "Type": "CNAME",
                "SetIdentifier": f"{name}-{role}",
                "Failover": role,
                "TTL": 60,
                "ResourceRecords": [{"Value": f"{role.lower()}.elb"}],
            }
            if role == "PRIMARY":
                record["HealthCheckId"] = check
            changes.append({"Action": "CREATE", "ResourceRecordSet": record})
    simple = {"Name": "app.acme.example.", "Type": "TXT", "TTL": 60,
              "ResourceRecords": [{"Value": '"v=1"'}]}  # fmt: skip
    changes.append({"Action": "CREATE", "ResourceRecordSet": simple})
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    return zone.split("/")[-1], check


def test_given_failover_records_then_only_that_names_pair_is_read(moto_aws: None) -> None:
    r53 = boto3.client("route53", region_name="us-east-1")
    zone, check = _zone(r53)
    sets = Route53Dns(r53).record_sets(zone, "app.acme.example.")
    assert {(s.name, s.role, s.values) for s in sets} == {
        ("app.acme.example.", "PRIMARY", ("primary.elb",)),
        ("app.acme.example.", "SECONDARY", ("secondary.elb",)),
    }
    assert {s.health_check_id for s in sets if s.role == "PRIMARY"} == {check}


def test_given_a_health_check_when_inverted_then_route53_has_it_inverted(moto_aws: None) -> None:
    r53 = boto3.client("route53", region_name="us-east-1")
    _, check_id = _zone(r53)
    dns = Route53Dns(r53)
    check = dns.health_check(check_id)
    assert check is not None and not check.inverted and not check.disabled
    dns.set_inverted(check, True)
    assert r53.get_health_check(HealthCheckId=check_id)["HealthCheck"]["HealthCheckConfig"][
        "Inverted"
    ]
    assert dns.health_check("00000000-0000-0000-0000-000000000000") is None


def test_given_the_ledger_then_a_flip_is_claimed_once_and_results_round_trip(
    tables: dict[str, Any], settings: Settings
) -> None:
    ledger = DynamoLedger(
        boto3.client("dynamodb", region_name=settings.orchestration_region),
        settings.operations_table,
    )
    assert ledger.load("op-eks-0001", "c1") is None
    assert ledger.claim_flip("op-eks-0001#1", "c1", 2_000_000_000) is True
    assert ledger.claim_flip("op-eks-0001#1", "c1", 2_000_000_000) is False
    ledger.flipped("op-eks-0001#1", "c1", ["hc-1"])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    detail = ResourceRecovered(
        operation_id="op-eks-0001",
        customer="acme",
        environment="production",
        operation=OperationType.FAILOVER,
        resource_id="c1",
        wave=1,
        strategy=Strategy.EKS_DNS,
        dr_resource_id="c1-dr",
        dr_region=REGION,
        started_at=now,
        completed_at=now,
        details={"dns:app CNAME": "dr.elb"},
    )
    ledger.save_result("op-eks-0001", "c1", 1, detail, 2_000_000_000)
    record = ledger.load("op-eks-0001", "c1")
    assert record is not None and record.result_type == "ResourceRecovered"
    assert record.result_attempt == 1
    assert ResourceRecovered.model_validate(record.result) == detail


def test_kubernetes_token_is_a_presigned_get_caller_identity_for_the_cluster(
    moto_aws: None,
) -> None:
    sts = boto3.client("sts", region_name=REGION)
    token = kubernetes_token(sts, "c1")
    assert token.startswith("k8s-aws-v1.") and "=" not in token
    encoded = token.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).query))
    assert query["Action"] == "GetCallerIdentity"
    assert query["X-Amz-Expires"] == "60"
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"].split(";")
    assert query["X-Amz-Credential"].split("/")[3] == "sts"
    # The hooks are registered once per client: a second token is made the same way.
    assert kubernetes_token(sts, "c2").startswith("k8s-aws-v1.")
