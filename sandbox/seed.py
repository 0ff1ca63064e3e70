"""Seed an estate (see `estate.py`) into the sandbox endpoint, through boto3 like any client.

For each customer:

- orchestration account (moto's default 123456789012), `orchestration_region`: one SSM String
  parameter, `drcore.registry.parameter_name(customer)`, holding the `CustomerEntry` JSON;
- the customer's account, reached with STS AssumeRole of
  `arn:aws:iam::<account>:role/dr-orchestrator-workload` and the external id `dr-<customer>`
  (moto then attributes every call to that account):
  - a VPC and one subnet per region (primary and DR) covering the customer's /16, the DR one
    shifted as `estate.dr_ip` shifts IPs (10.1.0.0/16 -> 10.101.0.0/16);
  - the primary EC2 instances (running, the server's private IP and tags);
  - the DR twins (stopped, the DR copy of the IP keeping the last octet, tags `Name`,
    `Customer`, `Environment` and `AWSDRS=AllowLaunchingIntoThisInstance`, no `dr:*` tag so
    that discovery never picks a twin);
  - DRS source servers in the DR region (`POST /_sandbox/drs/source-servers`, the way the agent
    registers them: awsInstanceID = the primary instance);
  - Resource Explorer: a LOCAL index in the primary region, an AGGREGATOR index, a view that
    includes the `tags` property and is the default view, in the DR region;
  - per environment (unless `bubble_network: false`), the bubble-test network in the DR region:
    an isolated VPC `dr-bubble-<customer>-<environment>` mirroring the customer's /16 (no
    internet gateway, no peering: the local route only), one subnet, and a security group
    tagged `dr:bubble-role=drill` for the drilled servers (counted apart: `bubble_networks`).
- the estate's `quotas` go to `POST /_sandbox/service-quotas` for every account and region.
- the estate's `timing` and `faults` go to `POST /_sandbox/config`.

Idempotent: seeding the same estate again creates nothing new. Existing VPCs, subnets and
instances are found by their `Name` tag (instances also by `Customer`) and kept as they are;
source servers are matched by awsInstanceID by the emulator; the index and view are reused.

`eks_clusters` are seeded by `seed_eks.py`, `sql_ags` by `seed_sqlag.py`, and the managed services
(`efs`, `fsx_ontap`, `caches`, `load_balancers`) by `seed_managed.py`; hooks by `seed_hooks`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from drcore import tags as tagnames
from drcore.registry import CustomerEntry, EnvironmentEntry, parameter_name

from .admin import post_admin
from .emulators.ssm_automation import seed_hooks
from .estate import Customer, Environment, Estate, EstateServer, customer_network, dr_ip
from .seed_eks import seed_eks
from .seed_managed import seed_managed
from .seed_sqlag import seed_sqlag

DEFAULT_IMAGE = "ami-12c6146b"
WORKLOAD_ROLE = "dr-orchestrator-workload"
VIEW_NAME = "dr-orchestrator"
DUMMY_KEY = "testing"
T = TypeVar("T")


@dataclass
class SeedSummary:
    """What a seeding created (counts) and the customers' registry entries."""

    customers: list[CustomerEntry] = field(default_factory=list)
    registry_parameters: int = 0
    vpcs: int = 0
    subnets: int = 0
    primary_instances: int = 0
    twins: int = 0
    existing_instances: int = 0
    source_servers: int = 0
    indexes: int = 0
    views: int = 0
    # Bubble-test networks created (VPC + subnet + security group), apart from `counts()`.
    bubble_networks: int = 0

    _COUNTS = (
        "registry_parameters",
        "vpcs",
        "subnets",
        "primary_instances",
        "twins",
        "existing_instances",
        "source_servers",
        "indexes",
        "views",
    )

    def add(self, other: SeedSummary) -> None:
        self.customers.extend(other.customers)
        self.bubble_networks += other.bubble_networks
        for name in self._COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def counts(self) -> dict[str, int]:
        return {"customers": len(self.customers)} | {n: getattr(self, n) for n in self._COUNTS}

    def __str__(self) -> str:
        return ", ".join(f"{n.replace('_', ' ')}: {v}" for n, v in self.counts().items())


def external_id(customer: str) -> str:
    return f"dr-{customer}"


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/{WORKLOAD_ROLE}"


def customer_entry(estate: Estate, customer: Customer) -> CustomerEntry:
    return CustomerEntry(
        name=customer.name,
        account=customer.account,
        regions={customer.region: estate.regions[customer.region]},
        environments=[
            EnvironmentEntry(name=env.name, production=env.is_production)
            for env in customer.environments
        ],
        role_name=WORKLOAD_ROLE,
        external_id=external_id(customer.name),
    )


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _parallel(pool: ThreadPoolExecutor, func: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
    return list(pool.map(func, items))


# The endpoint counts seeding calls apart from the orchestration's own.
CALLER_SEED = "dr-seed"


class _Seeder:
    def __init__(self, estate: Estate, endpoint_url: str, region: str, workers: int) -> None:
        self.estate = estate
        self.url = endpoint_url
        self.region = region
        self.config = Config(
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=workers,
            user_agent_extra=CALLER_SEED,
        )
        self.session = boto3.Session(region_name=region)
        # Any access key moto does not know maps to its default account (123456789012).
        self.orchestration = {"AccessKeyId": DUMMY_KEY, "SecretAccessKey": DUMMY_KEY}
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seed")

    def client(self, creds: dict[str, str], service: str, region: str) -> Any:
        """A client on the one shared session (its model cache), with explicit credentials."""
        return self.session.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            config=self.config,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds.get("SessionToken"),
        )

    def customer_credentials(self, customer: Customer) -> dict[str, str]:
        """STS AssumeRole into the customer's workload role (moto then attributes every call
        made with these credentials to the customer's account)."""
        sts = self.client(self.orchestration, "sts", self.region)
        creds = sts.assume_role(
            RoleArn=role_arn(customer.account),
            RoleSessionName=f"sandbox-seed-{customer.name}"[:64],
            ExternalId=external_id(customer.name),
        )["Credentials"]
        return {
            "AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"],
            "SessionToken": creds["SessionToken"],
        }

    # -- network

    def network(self, ec2: Any, name: str, cidr: str, zone: str, summary: SeedSummary) -> str:
        """The subnet id of the VPC + subnet named `name` (created when missing)."""
        found = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [name]}])["Vpcs"]
        if found:
            vpc_id = found[0]["VpcId"]
        else:
            vpc_id = ec2.create_vpc(
                CidrBlock=cidr,
                TagSpecifications=[
                    {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}
                ],
            )["Vpc"]["VpcId"]
            summary.vpcs += 1
        subnets = ec2.describe_subnets(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "tag:Name", "Values": [name]},
            ]
        )["Subnets"]
        if subnets:
            return str(subnets[0]["SubnetId"])
        summary.subnets += 1
        return str(
            ec2.create_subnet(
                VpcId=vpc_id,
                CidrBlock=cidr,
                AvailabilityZone=zone,
                TagSpecifications=[
                    {"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": name}]}
                ],
            )["Subnet"]["SubnetId"]
        )

    @staticmethod
    def existing(ec2: Any, customer: str) -> dict[str, str]:
        """Name -> instance id of the customer's instances that are not terminated."""
        out: dict[str, str] = {}
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[
                {"Name": "tag:Customer", "Values": [customer]},
                {
                    "Name": "instance-state-name",
                    "Values": ["pending", "running", "stopping", "stopped"],
                },
            ]
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                    if "Name" in tags:
                        out[tags["Name"]] = instance["InstanceId"]
        return out

    # -- one customer

    def seed_customer(self, customer: Customer, servers: list[EstateServer]) -> SeedSummary:
        summary = SeedSummary(customers=[customer_entry(self.estate, customer)])
        primary, dr = customer.region, self.estate.regions[customer.region]
        session = self.customer_credentials(customer)
        ec2_primary = self.client(session, "ec2", primary)
        ec2_dr = self.client(session, "ec2", dr)
        if not servers:
            self.resource_explorer(session, primary, dr, summary)
            return summary
        net = customer_network(servers[0].ip)
        dr_net = ipaddress.IPv4Network(f"{dr_ip(str(net.network_address))}/16")
        vpc_name = f"{customer.name}-dr-sandbox"
        subnet_primary = self.network(ec2_primary, vpc_name, str(net), f"{primary}a", summary)
        subnet_dr = self.network(ec2_dr, vpc_name, str(dr_net), f"{dr}a", summary)
        for env in customer.environments:
            if env.bubble_network:
                self.bubble_network(ec2_dr, customer, env, str(net), f"{dr}a", summary)

        have_primary = self.existing(ec2_primary, customer.name)
        have_dr = self.existing(ec2_dr, customer.name)

        def run(args: tuple[Any, str, str, dict[str, str], str]) -> str:
            client, subnet, ip, tags, instance_type = args
            response = client.run_instances(
                ImageId=DEFAULT_IMAGE,
                MinCount=1,
                MaxCount=1,
                InstanceType=instance_type,
                SubnetId=subnet,
                PrivateIpAddress=ip,
                TagSpecifications=[{"ResourceType": "instance", "Tags": _tag_list(tags)}],
            )
            return str(response["Instances"][0]["InstanceId"])

        todo_primary = [s for s in servers if s.name not in have_primary]
        created = _parallel(
            self.pool,
            run,
            [(ec2_primary, subnet_primary, s.ip, s.tags, s.instance_type) for s in todo_primary],
        )
        summary.primary_instances += len(created)
        summary.existing_instances += len(servers) - len(todo_primary)
        ids = {**have_primary, **dict(zip((s.name for s in todo_primary), created, strict=True))}

        twins = [s for s in servers if s.twin]
        todo_twins = [s for s in twins if s.name not in have_dr]
        twin_ids = _parallel(
            self.pool,
            run,
            [(ec2_dr, subnet_dr, s.dr_ip, self.twin_tags(s), s.instance_type) for s in todo_twins],
        )
        for start in range(0, len(twin_ids), 500):
            ec2_dr.stop_instances(InstanceIds=twin_ids[start : start + 500])
        summary.twins += len(twin_ids)
        summary.existing_instances += len(twins) - len(todo_twins)

        for start in range(0, len(servers), 500):
            chunk = servers[start : start + 500]
            answer = post_admin(
                self.url,
                "/_sandbox/drs/source-servers",
                {
                    "account": customer.account,
                    "region": dr,
                    "source_servers": [self.source_server(s, ids[s.name]) for s in chunk],
                },
            )
            summary.source_servers += len(answer["source_server_ids"])
        self.resource_explorer(session, primary, dr, summary)
        return summary

    def bubble_network(
        self,
        ec2: Any,
        customer: Customer,
        env: Environment,
        cidr: str,
        zone: str,
        summary: SeedSummary,
    ) -> None:
        """The isolated drill VPC of an environment: same CIDR as production (drilled servers
        keep their IPs), the local route only, and the drill security group."""
        name = tagnames.bubble_network_name(customer.name, env.name)
        tags = [
            {"Key": tagnames.NAME, "Value": name},
            {"Key": tagnames.CUSTOMER, "Value": customer.name},
            {"Key": tagnames.ENVIRONMENT, "Value": env.name},
        ]
        found = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [name]}])["Vpcs"]
        if found:
            return
        vpc_id = ec2.create_vpc(
            CidrBlock=cidr, TagSpecifications=[{"ResourceType": "vpc", "Tags": tags}]
        )["Vpc"]["VpcId"]
        ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=cidr,
            AvailabilityZone=zone,
            TagSpecifications=[{"ResourceType": "subnet", "Tags": tags}],
        )
        ec2.create_security_group(
            GroupName=f"{name}-drill",
            Description=f"Drilled servers of {customer.name}/{env.name}, inside the bubble only",
            VpcId=vpc_id,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": [
                        *tags,
                        {"Key": tagnames.BUBBLE_ROLE, "Value": tagnames.BUBBLE_ROLE_DRILL},
                    ],
                }
            ],
        )
        summary.bubble_networks += 1

    def quotas(self) -> None:
        """The estate's DRS quotas, as applied values, in every account and region it uses."""
        drs = self.estate.quotas.drs
        values = {
            code: value
            for code, value in (
                ("MaxSourceServersInJob", drs.servers_per_job),
                ("MaxConcurrentJobs", drs.concurrent_jobs),
                ("MaxSourceServersInAllActiveJobs", drs.servers_in_active_jobs),
            )
            if value is not None
        }
        if not values:
            return
        regions = {r for pair in self.estate.regions.items() for r in pair}
        for account in sorted({c.account for c in self.estate.customers}):
            for region in sorted(regions):
                post_admin(
                    self.url,
                    "/_sandbox/service-quotas",
                    {"account": account, "region": region, "service_code": "drs", "quotas": values},
                )

    @staticmethod
    def twin_tags(server: EstateServer) -> dict[str, str]:
        tags = {
            key: server.tags[key]
            for key in (tagnames.NAME, tagnames.CUSTOMER, tagnames.ENVIRONMENT)
            if key in server.tags
        }
        tags[tagnames.DRS_LAUNCH_INTO] = tagnames.DRS_LAUNCH_INTO_VALUE
        return tags

    @staticmethod
    def source_server(server: EstateServer, instance_id: str) -> dict[str, Any]:
        return {
            "instance_id": instance_id,
            "hostname": server.name,
            "fqdn": server.name,
            "private_ip": server.ip,
            "tags": server.tags,
            "os": server.os,
            "recommended_instance_type": server.instance_type,
            "replication_state": server.replication_state,
            "lag_seconds": server.lag_seconds,
            "origin_region": server.primary_region,
            "origin_availability_zone": f"{server.primary_region}a",
        }

    def resource_explorer(
        self, session: dict[str, str], primary: str, dr: str, summary: SeedSummary
    ) -> None:
        local = self.client(session, "resource-explorer-2", primary)
        try:
            local.get_index()
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            local.create_index()
            summary.indexes += 1
        rex = self.client(session, "resource-explorer-2", dr)
        try:
            index = rex.get_index()
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            index = {"Arn": rex.create_index()["Arn"], "Type": "LOCAL"}
            summary.indexes += 1
        if index["Type"] != "AGGREGATOR":
            rex.update_index_type(Arn=index["Arn"], Type="AGGREGATOR")
        view_arn = next(
            (
                arn
                for arn in rex.list_views().get("Views", [])
                if arn.split(":view/")[-1].split("/")[0] == VIEW_NAME
            ),
            None,
        )
        if view_arn is None:
            view_arn = rex.create_view(ViewName=VIEW_NAME, IncludedProperties=[{"Name": "tags"}])[
                "View"
            ]["ViewArn"]
            summary.views += 1
        if rex.get_default_view().get("ViewArn") != view_arn:
            rex.associate_default_view(ViewArn=view_arn)

    # -- all

    def run(self) -> SeedSummary:
        summary = SeedSummary()
        config = {
            "drs_launch_seconds": list(self.estate.timing.drs_launch_seconds),
            **self.estate.faults.model_dump(),
        }
        post_admin(self.url, "/_sandbox/config", config)
        self.quotas()
        ssm = self.client(self.orchestration, "ssm", self.region)
        for customer in self.estate.customers:
            ssm.put_parameter(
                Name=parameter_name(customer.name),
                Value=customer_entry(self.estate, customer).model_dump_json(),
                Type="String",
                Overwrite=True,
            )
            summary.registry_parameters += 1
        by_customer: dict[str, list[EstateServer]] = {c.name: [] for c in self.estate.customers}
        for server in self.estate.servers():
            by_customer[server.customer].append(server)
        try:
            for customer in self.estate.customers:
                summary.add(self.seed_customer(customer, by_customer[customer.name]))
            seed_eks(self.estate, self.url, self.region)  # EKS pairs, DNS, Kubernetes (seed_eks)
            seed_managed(self.estate, self.url, self.region)  # EFS, load balancers, zones
            seed_sqlag(self.estate, self.url, self.region)  # SQL Server AGs (seed_sqlag)
            seed_hooks(self.estate, self.url, self.region)  # pre/post-wave hooks (SSM Automation)
        finally:
            self.pool.shutdown(wait=True)
        return summary


def seed_estate(
    estate: Estate,
    endpoint_url: str,
    orchestration_region: str = "us-east-2",
    *,
    workers: int = 16,
) -> SeedSummary:
    """Create the estate in the sandbox at `endpoint_url`; returns what was created."""
    return _Seeder(estate, endpoint_url, orchestration_region, workers).run()
