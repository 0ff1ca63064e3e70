"""The sandbox's EKS side: the add-ons emulator, Route 53 TestDNSAnswer (failover routing with
health checks, inverted and disabled), and the emulated Kubernetes API with its IAM token."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from services.eks.adapters import KubernetesApi, kubernetes_token
from services.eks.ports import AwsError

from .conftest import DR, Admin, ClientFactory, assume

pytestmark = pytest.mark.sandbox

ACCOUNT = "310000000001"
OTHER = "310000000002"


@pytest.fixture(autouse=True)
def _fresh(admin: Admin) -> None:
    admin.reset()


def _cluster(client: ClientFactory, creds: dict[str, str], name: str = "c1") -> Any:
    eks = client("eks", DR, creds)
    eks.create_cluster(name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={})
    eks.create_nodegroup(
        clusterName=name,
        nodegroupName="workers",
        nodeRole=f"arn:aws:iam::{ACCOUNT}:role/node",
        subnets=["subnet-1"],
        scalingConfig={"minSize": 1, "maxSize": 4, "desiredSize": 2},
    )
    return eks


# --- add-ons --------------------------------------------------------------------------------------


def test_given_a_cluster_when_addons_created_then_listed_and_described_active(
    client: ClientFactory,
) -> None:
    eks = _cluster(client, assume(client, ACCOUNT))
    eks.create_addon(clusterName="c1", addonName="coredns", tags={"team": "platform"})
    eks.create_addon(clusterName="c1", addonName="vpc-cni")
    assert eks.list_addons(clusterName="c1")["addons"] == ["coredns", "vpc-cni"]
    page = eks.list_addons(clusterName="c1", maxResults=1)
    assert page["addons"] == ["coredns"] and page["nextToken"]
    addon = eks.describe_addon(clusterName="c1", addonName="coredns")["addon"]
    assert addon["status"] == "ACTIVE" and addon["tags"] == {"team": "platform"}
    with pytest.raises(ClientError) as dup:
        eks.create_addon(clusterName="c1", addonName="coredns")
    assert dup.value.response["Error"]["Code"] == "ResourceInUseException"


def test_given_no_such_cluster_or_addon_then_resource_not_found(client: ClientFactory) -> None:
    eks = _cluster(client, assume(client, ACCOUNT))
    with pytest.raises(ClientError) as missing_cluster:
        eks.list_addons(clusterName="nope")
    assert missing_cluster.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as missing_addon:
        eks.describe_addon(clusterName="c1", addonName="coredns")
    assert missing_addon.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # Other EKS calls still go to moto.
    assert eks.describe_cluster(name="c1")["cluster"]["status"] == "ACTIVE"


def test_given_an_invalid_request_then_the_model_rejects_it(client: ClientFactory) -> None:
    creds = assume(client, ACCOUNT)
    _cluster(client, creds)
    eks = client("eks", DR, creds, validate=False)
    with pytest.raises(ClientError) as bad:
        eks.list_addons(clusterName="c1", maxResults=0)
    assert bad.value.response["Error"]["Code"] in (
        "InvalidParameterException",
        "ValidationException",
    )
    assert "maxResults" in str(bad.value)


# --- Route 53 TestDNSAnswer -----------------------------------------------------------------------


def _failover_zone(client: ClientFactory, creds: dict[str, str]) -> tuple[Any, str, str]:
    r53 = client("route53", "us-east-1", creds)
    zone = r53.create_hosted_zone(Name="acme.example", CallerReference="z")["HostedZone"]["Id"]
    check = r53.create_health_check(
        CallerReference="hc",
        HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": "p.example", "Port": 443},
    )["HealthCheck"]["Id"]
    changes = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": "app.acme.example.",
                "Type": "CNAME",
                "SetIdentifier": role,
                "Failover": role,
                "TTL": 60,
                "ResourceRecords": [{"Value": value}],
                **({"HealthCheckId": check} if role == "PRIMARY" else {}),
            },
        }
        for role, value in (("PRIMARY", "primary.elb"), ("SECONDARY", "dr.elb"))
    ]
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    return r53, zone, check


def _answer(r53: Any, zone: str, name: str = "app.acme.example", kind: str = "CNAME") -> Any:
    return r53.test_dns_answer(HostedZoneId=zone, RecordName=name, RecordType=kind)


@pytest.mark.parametrize(
    ("inverted", "disabled", "measured", "expected"),
    [
        (False, False, True, "primary.elb"),
        (True, False, True, "dr.elb"),
        (False, True, True, "primary.elb"),  # disabled counts as healthy: no failover
        (True, True, True, "dr.elb"),  # ... inverting it does fail over
        (False, False, False, "dr.elb"),  # the primary really is unhealthy
        (True, False, False, "primary.elb"),  # unhealthy inverted = healthy
    ],
)
def test_given_failover_records_then_answer_follows_the_primary_health_check(
    client: ClientFactory,
    admin: Admin,
    inverted: bool,
    disabled: bool,
    measured: bool,
    expected: str,
) -> None:
    r53, zone, check = _failover_zone(client, assume(client, ACCOUNT))
    r53.update_health_check(HealthCheckId=check, Inverted=inverted, Disabled=disabled)
    admin.post(
        "/_sandbox/route53/health",
        {"account": ACCOUNT, "health_check_id": check, "healthy": measured},
    )
    answer = _answer(r53, zone)
    assert answer["RecordData"] == [expected]
    assert answer["ResponseCode"] == "NOERROR" and answer["Protocol"] == "UDP"


def test_given_unknown_names_zones_and_bad_input_then_route53_answers(
    client: ClientFactory, admin: Admin
) -> None:
    creds = assume(client, ACCOUNT)
    r53, zone, _ = _failover_zone(client, creds)
    assert _answer(r53, zone, "nothing.acme.example")["ResponseCode"] == "NXDOMAIN"
    assert _answer(r53, zone, kind="A")["RecordData"] == []
    with pytest.raises(ClientError) as no_zone:
        _answer(r53, "ZNOSUCHZONE")
    assert no_zone.value.response["Error"]["Code"] == "NoSuchHostedZone"
    loose = client("route53", "us-east-1", creds, validate=False)
    with pytest.raises(ClientError) as bad:
        _answer(loose, zone, kind="BOGUS")
    assert bad.value.response["Error"]["Code"] == "InvalidInput"
    assert "BOGUS" in str(bad.value)
    status, body = admin.call(
        "/_sandbox/route53/health", {"account": ACCOUNT, "health_check_id": "x", "healthy": True}
    )
    assert status == 400 and "'x'" in body["message"]


# --- Kubernetes API -------------------------------------------------------------------------------


def _kube(
    client: ClientFactory, admin: Admin, creds: dict[str, str], **state: Any
) -> tuple[str, Any]:
    _cluster(client, creds)
    answer = admin.post(
        "/_sandbox/eks/clusters",
        {"account": ACCOUNT, "region": DR, "cluster": "c1", **state},
    )
    endpoint = client("eks", DR, creds).describe_cluster(name="c1")["cluster"]["endpoint"]
    assert endpoint == answer["endpoint"]
    return endpoint, client("sts", DR, creds)


def test_given_a_seeded_cluster_then_its_api_answers_with_an_iam_token(
    client: ClientFactory, admin: Admin
) -> None:
    creds = assume(client, ACCOUNT)
    endpoint, sts = _kube(
        client,
        admin,
        creds,
        nodegroups=[{"name": "workers", "ready_nodes": 1}],
        addons=[{"name": "coredns", "status": "DEGRADED"}],
        deployments=[
            {"name": "web", "replicas": 3, "available": 2},
            {"namespace": "pay", "name": "api", "replicas": 1},
        ],
    )
    api = KubernetesApi(endpoint, None, lambda: kubernetes_token(sts, "c1"), timeout=5)
    nodes = api.nodes()
    assert sorted(n.ready for n in nodes) == [False, True]
    assert {n.nodegroup for n in nodes} == {"workers"}
    deployments = {d.name: (d.replicas, d.available) for d in api.deployments([])}
    assert deployments == {"web": (3, 2), "api": (1, 1)}
    assert [p.name.split("-")[0] for p in api.pods(["pay"])] == ["api"]
    assert sum(p.ready for p in api.pods([])) == 3
    eks = client("eks", DR, creds)
    addon = eks.describe_addon(clusterName="c1", addonName="coredns")["addon"]
    assert addon["status"] == "DEGRADED" and addon["health"]["issues"]


def test_given_a_token_of_another_account_or_none_then_401(
    client: ClientFactory, admin: Admin
) -> None:
    endpoint, _ = _kube(client, admin, assume(client, ACCOUNT), deployments=[{"name": "web"}])
    stranger = client("sts", DR, assume(client, OTHER, "dr-other"))
    for token in (lambda: kubernetes_token(stranger, "c1"), lambda: "k8s-aws-v1.bm90LWEtdXJs"):
        with pytest.raises(AwsError) as refused:
            KubernetesApi(endpoint, None, token, timeout=5).deployments([])
        assert refused.value.code == "KubernetesApi401" and not refused.value.retryable


def test_given_a_bad_seed_request_then_400_names_the_value(
    client: ClientFactory, admin: Admin
) -> None:
    creds = assume(client, ACCOUNT)
    _cluster(client, creds)
    base = {"account": ACCOUNT, "region": DR, "cluster": "c1"}
    status, body = admin.call("/_sandbox/eks/clusters", base | {"cluster": "zz"})
    assert status == 400 and "'zz'" in body["message"]
    status, body = admin.call("/_sandbox/eks/clusters", base | {"nodegroups": [{"name": "nope"}]})
    assert status == 400 and "'nope'" in body["message"]
    status, body = admin.call(
        "/_sandbox/eks/clusters",
        base | {"deployments": [{"name": "web", "replicas": 1, "available": 3}]},
    )
    assert status == 400 and "available" in body["message"]


def test_given_a_degraded_nodegroup_then_eks_reports_it(
    client: ClientFactory, admin: Admin
) -> None:
    creds = assume(client, ACCOUNT)
    _kube(client, admin, creds, nodegroups=[{"name": "workers", "status": "DEGRADED"}])
    ng = client("eks", DR, creds).describe_nodegroup(clusterName="c1", nodegroupName="workers")
    assert ng["nodegroup"]["status"] == "DEGRADED"
    assert ng["nodegroup"]["health"]["issues"][0]["code"] == "AsgInstanceLaunchFailures"
