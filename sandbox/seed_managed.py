"""Seed the estate's managed-service entries (see `estate_managed.py`) into the sandbox, through
boto3 in each customer's account (STS AssumeRole of the workload role, like `seed.py`) and the
sandbox's admin path for what only the emulators hold.

Per customer C, environment E (primary region P, DR region D):

- `efs`: a file system in P (creation token `C-E-N`) with the DR tags (`dr:enabled=true`,
  `dr:wave`, `dr:recovery-strategy=managed-service`, `dr:priority`, `dr:rto-target`,
  `dr:rpo-target`, `Customer`, `Environment`, `Name`) and `dr:managed:dr-file-system`; its
  replica in D (`Customer`, `Environment`, `Name`, never `dr:enabled`); unless `replication:
  false`, the replication P -> D (overwrite protection of the replica disabled first, as EFS
  requires) and its lag / status (`POST /_sandbox/efs/replication`, the EFS emulator's);
- `load_balancers`: a VPC `C-managed` with two subnets per region; the load balancer N in P (DR
  tags plus `dr:managed:dns-record`, `dr:managed:dr-load-balancer`) and its twin `N-dr` in D; a
  public hosted zone `C-E.svc.sandbox.example.` with, per load balancer, a PRIMARY/SECONDARY
  CNAME pair (health check on the primary) or one plain CNAME (`mode: simple`);
- `caches`: a Valkey replication group N in P (DR tags plus `dr:managed:dns-record`,
  `dr:managed:dr-replication-group`) and its twin `N-dr` in D (with `global_datastore: true`, a
  Global Datastore with N as primary and `N-dr` its secondary member, emulated); in the same
  zone a CNAME `<record>` -> N's primary endpoint;
- `private_zone`: a private hosted zone of that name (associated with the `C-managed` VPC of
  D) holding an A record at the primary IP of every server of E tagged `dr:managed:dns-record`;
- `fsx_ontap`: an FSx for NetApp ONTAP file system N in P (DR tags plus
  `dr:managed:dr-file-system`, `dr:managed:ontap-secret`, `dr:managed:ontap-failback=resync`),
  its DR file system in D (same `Name`, tagged `dr:managed:ontap-secret`), the fsxadmin secret
  `dr/fsx/C-E-N/fsxadmin` in D, and the SnapMirror relationships of the DR file system in the
  emulated ONTAP REST API (`POST /_sandbox/ontap/file-systems`).

Idempotent: file systems are found by creation token, load balancers by name
(DuplicateLoadBalancerName), zones by name, health checks by caller reference, records UPSERTed.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from drcore import tags as T

from .admin import post_admin
from .estate import Customer, Environment, Estate, EstateServer
from .estate_managed import CacheSpec, EfsSpec, FsxOntapSpec, LoadBalancerSpec, TagValue

STRATEGY = "managed-service"
DNS_RECORD = "dr:managed:dns-record"
DR_LOAD_BALANCER = "dr:managed:dr-load-balancer"
DR_FILE_SYSTEM = "dr:managed:dr-file-system"
SVC_ZONE_SUFFIX = "svc.sandbox.example"
DR_REPLICATION_GROUP = "dr:managed:dr-replication-group"
ONTAP_SECRET = "dr:managed:ontap-secret"
ONTAP_FAILBACK = "dr:managed:ontap-failback"
VPC_CIDR = {"primary": "10.250.0.0/16", "dr": "10.251.0.0/16"}


CALLER_SEED = "dr-seed"  # the endpoint's marker of the estate seeder (`sandbox.endpoint`)
WORKLOAD_ROLE = "dr-orchestrator-workload"


def external_id(customer: str) -> str:
    return f"dr-{customer}"  # as `seed.py` registers it


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/{WORKLOAD_ROLE}"


def service_zone(customer: str, environment: str) -> str:
    """The public zone of an environment's load balancer names and cache endpoints."""
    return f"{customer}-{environment}.{SVC_ZONE_SUFFIX}.".lower()


def _tags(base: dict[str, str], extra: dict[str, TagValue]) -> dict[str, str]:
    merged: dict[str, TagValue] = {**base, **extra}
    return {
        k: ("true" if v else "false") if isinstance(v, bool) else str(v)
        for k, v in merged.items()
        if v is not None
    }


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


class _ManagedSeeder:
    def __init__(self, estate: Estate, url: str, region: str) -> None:
        self.estate = estate
        self.url = url
        self.region = region
        self.session = boto3.Session(region_name=region)
        self.config = Config(
            retries={"mode": "standard", "max_attempts": 5}, user_agent_extra=CALLER_SEED
        )
        self.count = 0

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
            {"AccessKeyId": "testing", "SecretAccessKey": "testing"}, "sts", "us-east-1"
        )
        creds = sts.assume_role(
            RoleArn=role_arn(customer.account),
            RoleSessionName=f"sandbox-seed-{customer.name}"[:64],
            ExternalId=external_id(customer.name),
        )["Credentials"]
        return {k: creds[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")}

    def dr_tags(
        self,
        customer: Customer,
        env: Environment,
        name: str,
        spec: EfsSpec | LoadBalancerSpec | CacheSpec | FsxOntapSpec,
    ) -> dict[str, str]:
        return {
            T.NAME: name,
            T.CUSTOMER: customer.name,
            T.ENVIRONMENT: env.name,
            T.ENABLED: "true",
            T.PRIORITY: spec.priority,
            T.WAVE: str(spec.wave),
            T.STRATEGY: STRATEGY,
            T.RTO_TARGET: str(spec.rto),
            T.RPO_TARGET: str(spec.rpo),
        }

    @staticmethod
    def scope_tags(customer: Customer, env: Environment, name: str) -> dict[str, str]:
        return {T.NAME: name, T.CUSTOMER: customer.name, T.ENVIRONMENT: env.name}

    # -- EFS

    def file_system(self, efs: Any, token: str, tags: dict[str, str]) -> str:
        found = efs.describe_file_systems(CreationToken=token)["FileSystems"]
        if found:
            fs_id = str(found[0]["FileSystemId"])
            efs.tag_resource(ResourceId=fs_id, Tags=_tag_list(tags))
            return fs_id
        self.count += 1
        return str(
            efs.create_file_system(CreationToken=token, Tags=_tag_list(tags))["FileSystemId"]
        )

    def efs(self, creds: dict[str, str], customer: Customer, env: Environment) -> None:
        primary, dr = customer.region, self.estate.regions[customer.region]
        efs_p, efs_d = self.client(creds, "efs", primary), self.client(creds, "efs", dr)
        for spec in env.efs:
            token = f"{customer.name}-{env.name}-{spec.name}"
            dr_id = self.file_system(
                efs_d, f"{token}-dr", self.scope_tags(customer, env, spec.name)
            )
            tags = self.dr_tags(customer, env, spec.name, spec) | {DR_FILE_SYSTEM: dr_id}
            source = self.file_system(efs_p, token, _tags(tags, spec.tags))
            if not spec.replication:
                continue
            try:
                efs_p.describe_replication_configurations(FileSystemId=source)
            except ClientError as err:
                if err.response["Error"]["Code"] != "ReplicationNotFound":
                    raise
                efs_d.update_file_system_protection(
                    FileSystemId=dr_id, ReplicationOverwriteProtection="DISABLED"
                )
                efs_p.create_replication_configuration(
                    SourceFileSystemId=source, Destinations=[{"Region": dr, "FileSystemId": dr_id}]
                )
            post_admin(
                self.url,
                "/_sandbox/efs/replication",
                {
                    "account": customer.account,
                    "region": primary,
                    "file_system_id": source,
                    "lag_seconds": spec.lag_seconds,
                    "status": spec.status,
                },
            )

    # -- FSx for NetApp ONTAP

    def fsx_file_system(self, fsx: Any, name: str, tags: dict[str, str]) -> str:
        for page in fsx.get_paginator("describe_file_systems").paginate():
            for item in page["FileSystems"]:
                if {t["Key"]: t["Value"] for t in item.get("Tags", [])}.get(T.NAME) == name:
                    fs_id = str(item["FileSystemId"])
                    fsx.tag_resource(ResourceARN=item["ResourceARN"], Tags=_tag_list(tags))
                    return fs_id
        self.count += 1
        created = fsx.create_file_system(
            FileSystemType="ONTAP",
            StorageCapacity=1024,
            StorageType="SSD",
            SubnetIds=["subnet-0a1b2c3d4e5f60001"],
            OntapConfiguration={"DeploymentType": "SINGLE_AZ_1", "ThroughputCapacity": 128},
            Tags=_tag_list(tags),
        )
        return str(created["FileSystem"]["FileSystemId"])

    def secret(self, secrets: Any, name: str, tags: dict[str, str]) -> tuple[str, str]:
        """The DR file system's fsxadmin secret: (ARN, password)."""
        password = f"sandbox-{name}"[-64:]
        value = json.dumps({"username": "fsxadmin", "password": password})
        try:
            arn = secrets.describe_secret(SecretId=name)["ARN"]
            secrets.put_secret_value(SecretId=name, SecretString=value)
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            self.count += 1
            arn = secrets.create_secret(Name=name, SecretString=value, Tags=_tag_list(tags))["ARN"]
        return str(arn), password

    def fsx_ontap(self, creds: dict[str, str], customer: Customer, env: Environment) -> None:
        primary, dr = customer.region, self.estate.regions[customer.region]
        fsx_p, fsx_d = self.client(creds, "fsx", primary), self.client(creds, "fsx", dr)
        secrets = self.client(creds, "secretsmanager", dr)
        for spec in env.fsx_ontap:
            scope = self.scope_tags(customer, env, spec.name)
            # The DR file system has the same Name and names the secret too (primary region down).
            secret_name = f"dr/fsx/{customer.name}-{env.name}-{spec.name}/fsxadmin"
            dr_id = self.fsx_file_system(fsx_d, spec.name, scope | {ONTAP_SECRET: secret_name})
            _, password = self.secret(secrets, secret_name, scope)
            tags = self.dr_tags(customer, env, spec.name, spec) | {
                DR_FILE_SYSTEM: dr_id,
                ONTAP_SECRET: secret_name,
                ONTAP_FAILBACK: "resync",
            }
            self.fsx_file_system(fsx_p, spec.name, _tags(tags, spec.tags))
            post_admin(
                self.url,
                "/_sandbox/ontap/file-systems",
                {
                    "file_system_id": dr_id,
                    "username": "fsxadmin",
                    "password": password,
                    "job_seconds": spec.job_seconds,
                    "relationships": [
                        {
                            "source_path": f"{spec.name}-svm:{volume}",
                            "destination_path": f"{spec.name}-dr-svm:{volume}_dst",
                            "state": spec.state,
                            "healthy": spec.healthy,
                            "lag_seconds": spec.lag_seconds,
                        }
                        for volume in spec.volumes
                    ],
                },
            )

    # -- load balancers and DNS

    def subnets(self, ec2: Any, name: str, cidr: str, region: str) -> tuple[str, list[str]]:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [name]}])["Vpcs"]
        if vpcs:
            vpc = vpcs[0]["VpcId"]
            found = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
            return vpc, [s["SubnetId"] for s in found]
        vpc = ec2.create_vpc(
            CidrBlock=cidr,
            TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}],
        )["Vpc"]["VpcId"]
        base = cidr.split(".")
        subnets = [
            ec2.create_subnet(
                VpcId=vpc,
                CidrBlock=f"{base[0]}.{base[1]}.{i}.0/24",
                AvailabilityZone=f"{region}{zone}",
            )["Subnet"]["SubnetId"]
            for i, zone in ((1, "a"), (2, "b"))
        ]
        return vpc, subnets

    def load_balancer(
        self, elb: Any, name: str, kind: str, subnets: list[str], tags: dict[str, str]
    ) -> dict[str, Any]:
        try:
            found = elb.describe_load_balancers(Names=[name])["LoadBalancers"][0]
            elb.add_tags(ResourceArns=[found["LoadBalancerArn"]], Tags=_tag_list(tags))
            return dict(found)
        except ClientError as err:
            if err.response["Error"]["Code"] != "LoadBalancerNotFound":
                raise
        self.count += 1
        return dict(
            elb.create_load_balancer(
                Name=name, Subnets=subnets, Type=kind, Scheme="internal", Tags=_tag_list(tags)
            )["LoadBalancers"][0]
        )

    @staticmethod
    def zone(route53: Any, name: str, vpc: tuple[str, str] | None = None) -> str:
        answer = route53.list_hosted_zones_by_name(DNSName=name, MaxItems="100")
        for item in answer.get("HostedZones", []):
            private = bool((item.get("Config") or {}).get("PrivateZone"))
            if item["Name"].lower() == name and private == (vpc is not None):
                return str(item["Id"]).split("/")[-1]
        kwargs: dict[str, Any] = {"Name": name, "CallerReference": f"dr-sandbox-{name}"}
        if vpc is not None:
            kwargs["VPC"] = {"VPCRegion": vpc[0], "VPCId": vpc[1]}
            kwargs["HostedZoneConfig"] = {"PrivateZone": True, "Comment": "sandbox"}
        return str(route53.create_hosted_zone(**kwargs)["HostedZone"]["Id"]).split("/")[-1]

    @staticmethod
    def health_check(route53: Any, reference: str, fqdn: str) -> str:
        created = route53.create_health_check(
            CallerReference=reference,
            HealthCheckConfig={
                "Type": "HTTPS",
                "FullyQualifiedDomainName": fqdn,
                "ResourcePath": "/health",
                "Port": 443,
                "RequestInterval": 10,
                "FailureThreshold": 3,
            },
        )
        return str(created["HealthCheck"]["Id"])

    def load_balancers(self, creds: dict[str, str], customer: Customer, env: Environment) -> None:
        primary, dr = customer.region, self.estate.regions[customer.region]
        vpc_name = f"{customer.name}-managed"
        _, subnets_p = self.subnets(
            self.client(creds, "ec2", primary), vpc_name, VPC_CIDR["primary"], primary
        )
        _, subnets_d = self.subnets(self.client(creds, "ec2", dr), vpc_name, VPC_CIDR["dr"], dr)
        elb_p, elb_d = self.client(creds, "elbv2", primary), self.client(creds, "elbv2", dr)
        route53 = self.client(creds, "route53", dr)
        zone_name = service_zone(customer.name, env.name)
        zone_id = self.zone(route53, zone_name)
        for spec in env.load_balancers:
            record = f"{spec.record or spec.name.lower()}.{zone_name}"
            dr_name = f"{spec.name}-dr"
            tags = self.dr_tags(customer, env, spec.name, spec) | {
                DNS_RECORD: f"{zone_id}/{record}",
                DR_LOAD_BALANCER: dr_name,
            }
            lb_p = self.load_balancer(
                elb_p, spec.name, spec.type, subnets_p, _tags(tags, spec.tags)
            )
            dns_d = f"{dr_name}.elb.{dr}.sandbox.invalid"
            if spec.dr_twin:
                lb_d = self.load_balancer(
                    elb_d, dr_name, spec.type, subnets_d, self.scope_tags(customer, env, spec.name)
                )
                dns_d = lb_d["DNSName"]
            if spec.mode == "simple":
                changes = [self._cname(record, lb_p["DNSName"])]
            else:
                check = self.health_check(
                    route53, f"dr-sandbox-{customer.name}-{env.name}-{spec.name}", lb_p["DNSName"]
                )
                changes = [
                    self._cname(record, lb_p["DNSName"], "PRIMARY", check),
                    self._cname(record, dns_d, "SECONDARY"),
                ]
            route53.change_resource_record_sets(
                HostedZoneId=zone_id, ChangeBatch={"Changes": changes}
            )

    def replication_group(
        self, cache: Any, group_id: str, tags: dict[str, str], global_id: str | None = None
    ) -> dict[str, Any]:
        try:
            found = cache.describe_replication_groups(ReplicationGroupId=group_id)
            return dict(found["ReplicationGroups"][0])
        except ClientError as err:
            if err.response["Error"]["Code"] != "ReplicationGroupNotFoundFault":
                raise
        self.count += 1
        return dict(
            cache.create_replication_group(
                ReplicationGroupId=group_id,
                ReplicationGroupDescription=f"sandbox cache {group_id}",
                Engine="valkey",
                CacheNodeType="cache.t4g.small",
                NumCacheClusters=1,
                Tags=_tag_list(tags),
                **({"GlobalReplicationGroupId": global_id} if global_id else {}),
            )["ReplicationGroup"]
        )

    def global_datastore(self, cache: Any, group_id: str) -> str:
        """The Global Datastore whose primary is `group_id` (created once; emulated)."""
        info = (
            cache.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][
                0
            ].get("GlobalReplicationGroupInfo")
            or {}
        )
        if info.get("GlobalReplicationGroupId"):
            return str(info["GlobalReplicationGroupId"])
        self.count += 1
        created = cache.create_global_replication_group(
            GlobalReplicationGroupIdSuffix=group_id, PrimaryReplicationGroupId=group_id
        )
        return str(created["GlobalReplicationGroup"]["GlobalReplicationGroupId"])

    def caches(self, creds: dict[str, str], customer: Customer, env: Environment) -> None:
        primary, dr = customer.region, self.estate.regions[customer.region]
        cache_p, cache_d = (self.client(creds, "elasticache", r) for r in (primary, dr))
        route53 = self.client(creds, "route53", dr)
        zone_name = service_zone(customer.name, env.name)
        zone_id = self.zone(route53, zone_name)
        for spec in env.caches:
            record = f"{spec.record or spec.name}.{zone_name}"
            tags = self.dr_tags(customer, env, spec.name, spec) | {
                DNS_RECORD: f"{zone_id}/{record}",
                DR_REPLICATION_GROUP: f"{spec.name}-dr",
            }
            group = self.replication_group(cache_p, spec.name, _tags(tags, spec.tags))
            global_id = self.global_datastore(cache_p, spec.name) if spec.global_datastore else None
            if spec.dr_twin or global_id:
                scope = self.scope_tags(customer, env, spec.name)
                self.replication_group(cache_d, f"{spec.name}-dr", scope, global_id)
            endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
            route53.change_resource_record_sets(
                HostedZoneId=zone_id, ChangeBatch={"Changes": [self._cname(record, endpoint)]}
            )

    @staticmethod
    def _cname(
        name: str, value: str, failover: str | None = None, check: str | None = None
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "Name": name,
            "Type": "CNAME",
            "TTL": 60,
            "ResourceRecords": [{"Value": value}],
        }
        if failover:
            record |= {"SetIdentifier": failover.lower(), "Failover": failover}
        if check:
            record["HealthCheckId"] = check
        return {"Action": "UPSERT", "ResourceRecordSet": record}

    def private_zone(
        self,
        creds: dict[str, str],
        customer: Customer,
        env: Environment,
        servers: list[EstateServer],
    ) -> None:
        assert env.private_zone is not None
        dr = self.estate.regions[customer.region]
        vpc, _ = self.subnets(
            self.client(creds, "ec2", dr), f"{customer.name}-managed", VPC_CIDR["dr"], dr
        )
        route53 = self.client(creds, "route53", dr)
        name = env.private_zone.lower().rstrip(".") + "."
        zone_id = self.zone(route53, name, (dr, vpc))
        changes = []
        for server in servers:
            value = server.tags.get(DNS_RECORD, "")
            zone, _, record = value.partition("/")
            if not record or zone.lower().rstrip(".") + "." not in (name, zone_id):
                continue
            changes.append(
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": record.lower().rstrip(".") + ".",
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": server.ip}],
                    },
                }
            )
        if changes:
            route53.change_resource_record_sets(
                HostedZoneId=zone_id, ChangeBatch={"Changes": changes}
            )

    def run(self) -> int:
        servers = self.estate.servers()
        for customer in self.estate.customers:
            envs = [
                e
                for e in customer.environments
                if e.efs or e.load_balancers or e.caches or e.private_zone or e.fsx_ontap
            ]
            if not envs:
                continue
            creds = self.credentials(customer)
            for env in envs:
                if env.efs:
                    self.efs(creds, customer, env)
                if env.fsx_ontap:
                    self.fsx_ontap(creds, customer, env)
                if env.load_balancers:
                    self.load_balancers(creds, customer, env)
                if env.caches:
                    self.caches(creds, customer, env)
                if env.private_zone:
                    mine = [
                        s
                        for s in servers
                        if s.customer == customer.name and s.environment == env.name
                    ]
                    self.private_zone(creds, customer, env, mine)
        return self.count


def seed_managed(estate: Estate, endpoint_url: str, orchestration_region: str = "us-east-2") -> int:
    """Create the estate's managed-service resources; returns how many were created."""
    return _ManagedSeeder(estate, endpoint_url, orchestration_region).run()
