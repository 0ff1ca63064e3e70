"""Seed the estate's `eks_clusters` (see `estate_eks.py`) into the sandbox, through boto3 in each
customer's account (STS AssumeRole of the workload role, like `seed.py`) and the sandbox's admin
path for what only the emulators hold.

Per entry, for customer C, environment E, cluster N (primary region P, DR region D):

- Route 53 (global): a public hosted zone `N.sandbox.example.`; a health check on the primary
  ingress (HTTPS `/healthz`); per record name (`records`, default `app` and `api.internal`) a
  failover pair of CNAMEs: PRIMARY -> the primary ingress (with the health check), SECONDARY ->
  the DR ingress;
- EKS in P: cluster N, ACTIVE, with the DR tags (`dr:enabled=true`, `dr:wave`,
  `dr:recovery-strategy=eks-dns`, `dr:priority`, `dr:rto-target`, `dr:rpo-target`, `Customer`,
  `Environment`, `Name`) and the module tags (`dr:eks:dr-cluster`, `dr:eks:records`), then the
  entry's `tags` overrides (a null removes a tag); its node groups;
- EKS in D (unless `health: dr-cluster-missing`): the DR cluster (`dr_cluster`, default `N-dr`)
  with `Customer`, `Environment`, `Name`, `dr:eks:primary-cluster=N` and a copy of the module
  tags, never `dr:enabled` (discovery must not plan it); its node groups;
- `POST /_sandbox/eks/clusters` for both clusters: node group status and Ready nodes, add-ons,
  deployments and pods of the emulated Kubernetes API (the DR side as the entry describes it).

Idempotent: existing clusters and node groups are kept (ResourceInUseException), the zone is found
by name, the health check by its caller reference, records are UPSERTed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from drcore import tags as T

from .admin import post_admin
from .estate import Customer, Environment, Estate
from .estate_eks import EksCluster

WORKLOAD_ROLE = "dr-orchestrator-workload"
CALLER_SEED = "dr-seed"
EKS_ROLE = "arn:aws:iam::{account}:role/eks-cluster-role"
NODE_ROLE = "arn:aws:iam::{account}:role/eks-node-role"
ZONE_SUFFIX = "sandbox.example"
STRATEGY = "eks-dns"
RTO_MINUTES = "60"
RPO_MINUTES = "15"


def ingress(cluster: str, region: str) -> str:
    """The hostname of a cluster's ingress load balancer (what the failover records point at)."""
    return f"k8s-{cluster}-ingress.elb.{region}.amazonaws.com"


def zone_name(cluster: EksCluster) -> str:
    return f"{cluster.name}.{ZONE_SUFFIX}."


class _EksSeeder:
    def __init__(self, estate: Estate, url: str, region: str) -> None:
        self.estate = estate
        self.url = url
        self.region = region
        self.session = boto3.Session(region_name=region)
        self.config = Config(
            retries={"mode": "standard", "max_attempts": 5}, user_agent_extra=CALLER_SEED
        )

    def client(self, creds: dict[str, str], service: str, region: str) -> Any:
        return self.session.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            config=self.config,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds.get("SessionToken"),
        )

    def credentials(self, customer: Customer) -> dict[str, str]:
        sts = self.client(
            {"AccessKeyId": "testing", "SecretAccessKey": "testing"}, "sts", self.region
        )
        creds = sts.assume_role(
            RoleArn=f"arn:aws:iam::{customer.account}:role/{WORKLOAD_ROLE}",
            RoleSessionName=f"sandbox-seed-eks-{customer.name}"[:64],
            ExternalId=f"dr-{customer.name}",
        )["Credentials"]
        return {k: creds[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")}

    def customer(self, customer: Customer) -> int:
        entries = [(env, c) for env in customer.environments for c in env.eks_clusters]
        if not entries:
            return 0
        creds = self.credentials(customer)
        for env, cluster in entries:
            self.pair(customer, env, cluster, creds)
        return len(entries)

    def pair(
        self, customer: Customer, env: Environment, spec: EksCluster, creds: dict[str, str]
    ) -> None:
        primary, dr = customer.region, self.estate.regions[customer.region]
        route53 = self.client(creds, "route53", "us-east-1")
        zone_id, names = self.dns(route53, customer, spec, primary, dr)
        records = " ".join(f"{zone_id}/{n}" for n in names)
        module = {"dr:eks:dr-cluster": spec.dr_name, "dr:eks:records": records}
        scope = {T.CUSTOMER: customer.name, T.ENVIRONMENT: env.name}
        tags: dict[str, str] = {
            T.ENABLED: "true",
            T.WAVE: str(spec.wave),
            T.STRATEGY: STRATEGY,
            T.PRIORITY: spec.priority,
            T.RTO_TARGET: RTO_MINUTES,
            T.RPO_TARGET: RPO_MINUTES,
            T.NAME: spec.name,
            **scope,
            **module,
        }
        for key, value in spec.tags.items():
            if value is None:
                tags.pop(key, None)
            else:
                tags[key] = value
        eks_primary = self.client(creds, "eks", primary)
        self.cluster(eks_primary, customer, spec.name, spec, tags)
        self.state(customer, primary, spec.name, spec, dr_side=False)
        if spec.health == "dr-cluster-missing":
            return
        dr_tags = {
            T.NAME: spec.dr_name,
            **scope,
            **module,
            "dr:eks:primary-cluster": spec.name,
        }
        eks_dr = self.client(creds, "eks", dr)
        self.cluster(eks_dr, customer, spec.dr_name, spec, dr_tags)
        self.state(customer, dr, spec.dr_name, spec, dr_side=True)

    def cluster(
        self, eks: Any, customer: Customer, name: str, spec: EksCluster, tags: dict[str, str]
    ) -> None:
        try:
            eks.create_cluster(
                name=name,
                version=spec.version,
                roleArn=EKS_ROLE.format(account=customer.account),
                resourcesVpcConfig={"endpointPublicAccess": True},
                tags=tags,
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceInUseException":
                raise
        for group in spec.node_groups:
            desired = group.desired
            try:
                eks.create_nodegroup(
                    clusterName=name,
                    nodegroupName=group.name,
                    nodeRole=NODE_ROLE.format(account=customer.account),
                    subnets=[f"subnet-{customer.account[-8:]}"],
                    scalingConfig={
                        "minSize": min(1, desired),
                        "maxSize": max(desired, 1) * 2,
                        "desiredSize": desired,
                    },
                    labels={"eks.amazonaws.com/nodegroup": group.name},
                )
            except ClientError as err:
                if err.response["Error"]["Code"] != "ResourceInUseException":
                    raise

    def state(
        self, customer: Customer, region: str, name: str, spec: EksCluster, dr_side: bool
    ) -> None:
        broken = spec.health if dr_side else "healthy"
        groups = []
        for i, g in enumerate(spec.node_groups):
            status, ready = (str(g.status), g.ready_nodes) if dr_side else ("ACTIVE", None)
            if broken == "nodegroup-degraded" and i == 0:
                status, ready = "DEGRADED", 0
            groups.append({"name": g.name, "status": status, "ready_nodes": ready})
        addons = []
        for i, a in enumerate(spec.addons):
            addon_status: str = a.status if dr_side else "ACTIVE"
            if broken == "addon-degraded" and i == 0:
                addon_status = "DEGRADED"
            addons.append({"name": a.name, "status": addon_status})
        workloads = []
        for i, w in enumerate(spec.workloads):
            available = (
                min(w.available, w.replicas) if dr_side and w.available is not None else None
            )
            if broken == "workloads-unavailable" and i == 0:
                available = 0
            workloads.append(
                {
                    "namespace": w.namespace,
                    "name": w.name,
                    "replicas": w.replicas,
                    "available": available,
                }
            )
        post_admin(
            self.url,
            "/_sandbox/eks/clusters",
            {
                "account": customer.account,
                "region": region,
                "cluster": name,
                "nodegroups": groups,
                "addons": addons,
                "deployments": workloads,
            },
        )

    def dns(
        self, route53: Any, customer: Customer, spec: EksCluster, primary: str, dr: str
    ) -> tuple[str, list[str]]:
        zone = zone_name(spec)
        found = route53.list_hosted_zones_by_name(DNSName=zone, MaxItems="1").get("HostedZones", [])
        if found and found[0]["Name"] == zone:
            zone_id = found[0]["Id"].split("/")[-1]
        else:
            zone_id = route53.create_hosted_zone(
                Name=zone, CallerReference=f"dr-sandbox-{customer.name}-{spec.name}"
            )["HostedZone"]["Id"].split("/")[-1]
        reference = f"dr-sandbox-{customer.name}-{spec.name}-primary"[:64]
        check_id = next(
            (
                hc["Id"]
                for hc in route53.list_health_checks().get("HealthChecks", [])
                if hc["CallerReference"] == reference
            ),
            None,
        )
        if check_id is None:
            check_id = route53.create_health_check(
                CallerReference=reference,
                HealthCheckConfig={
                    "Type": "HTTPS",
                    "FullyQualifiedDomainName": ingress(spec.name, primary),
                    "Port": 443,
                    "ResourcePath": "/healthz",
                    "RequestInterval": 10,
                    "FailureThreshold": 3,
                },
            )["HealthCheck"]["Id"]
        names = [f"{label}.{zone}" for label in spec.records]
        changes = []
        for name in names:
            for role, target, check in (
                ("PRIMARY", ingress(spec.name, primary), check_id),
                ("SECONDARY", ingress(spec.dr_name, dr), None),
            ):
                record: dict[str, Any] = {
                    "Name": name,
                    "Type": "CNAME",
                    "SetIdentifier": f"{spec.name}-{role.lower()}",
                    "Failover": role,
                    "TTL": 60,
                    "ResourceRecords": [{"Value": target}],
                }
                if check:
                    record["HealthCheckId"] = check
                changes.append({"Action": "UPSERT", "ResourceRecordSet": record})
        route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
        return zone_id, names


def seed_eks(estate: Estate, endpoint_url: str, orchestration_region: str = "us-east-2") -> int:
    """Seed every `eks_clusters` entry of the estate; returns how many pairs were seeded."""
    seeder = _EksSeeder(estate, endpoint_url, orchestration_region)
    customers = [c for c in estate.customers if any(e.eks_clusters for e in c.environments)]
    if not customers:
        return 0
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="seed-eks") as pool:
        return sum(pool.map(seeder.customer, customers))
