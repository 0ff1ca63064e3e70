"""Seed the estate's SQL Server availability groups (`estate_sqlag.py`) into the sandbox.

Per customer with `sql_ags` (AssumeRole into its workload account, like every seeder):

- per group: the primary replica instance (primary region, running; the DR tags with
  `dr:recovery-strategy=sql-ag` and the `dr:sqlag:*` configuration tags, so discovery plans it),
  the DR replica (DR region; `Name`, `Customer`, `Environment`, `dr:sqlag:ag-name`,
  `dr:sqlag:primary-replica`, the listener tags; no `dr:enabled`), the extra secondaries, and the
  clone in the environment's bubble-test VPC when asked (`Name`, scope and `dr:sqlag:ag-name`:
  the workload role may run commands only on instances with that tag);
- per environment with groups: a private hosted zone `sql.<environment>.<customer>.internal`
  (DR region's default VPC) and each group's listener A record on its primary replica's IP;
- the groups' emulated SQL Server state: `POST /_sandbox/ssm/sql-ags`.

Idempotent: instances are found again by `Name` + `Customer`, the zone by name, records are
UPSERTed, and registering a group again replaces its emulated state.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

from drcore import tags as T
from services.sqlag import config as C

from .admin import post_admin
from .estate import Customer, Environment, Estate
from .estate_sqlag import SqlAgSpec, TagValue

DEFAULT_IMAGE = "ami-12c6146b"
INSTANCE_TYPE = "r5.xlarge"
CALLER_SEED = "dr-seed"  # the endpoint's marker of the estate seeder (`sandbox.endpoint`)
DUMMY_KEY = "testing"
LISTENER_TTL = 60
WORKERS = 8  # customers seeded at once


def zone_name(customer: str, environment: str) -> str:
    return f"sql.{environment}.{customer}.internal".lower()


def listener_name(spec: SqlAgSpec, customer: str, environment: str) -> str:
    return f"{spec.name.lower()}.{zone_name(customer, environment)}"


def _tags(base: dict[str, str], extra: dict[str, TagValue]) -> dict[str, str]:
    out = dict(base)
    for key, value in extra.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


class _SqlSeeder:
    def __init__(self, estate: Estate, url: str, region: str) -> None:
        self.estate = estate
        self.url = url
        self.region = region
        self.config = Config(
            retries={"mode": "standard", "max_attempts": 5}, user_agent_extra=CALLER_SEED
        )
        self._local = threading.local()  # a boto3 Session per thread (sessions are not shared)

    def client(self, service: str, region: str, creds: dict[str, Any]) -> Any:
        if not hasattr(self._local, "session"):
            self._local.session = boto3.Session()
        return self._local.session.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            config=self.config,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds.get("SessionToken"),
        )

    def credentials(self, customer: Customer) -> dict[str, Any]:
        sts = self.client(
            "sts", self.region, {"AccessKeyId": DUMMY_KEY, "SecretAccessKey": DUMMY_KEY}
        )
        creds: dict[str, Any] = sts.assume_role(
            RoleArn=f"arn:aws:iam::{customer.account}:role/dr-orchestrator-workload",
            RoleSessionName=f"sandbox-sqlag-{customer.name}"[:64],
            ExternalId=f"dr-{customer.name}",
        )["Credentials"]
        return creds

    def run(self) -> int:
        customers = [c for c in self.estate.customers if any(e.sql_ags for e in c.environments)]
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="seed-sqlag") as pool:
            return sum(pool.map(self.customer, customers))

    def customer(self, customer: Customer) -> int:
        creds = self.credentials(customer)
        registrations: list[dict[str, Any]] = []
        environments = [e for e in customer.environments if e.sql_ags]
        for env in environments:
            registrations += self.environment(customer, env, creds)
        post_admin(
            self.url, "/_sandbox/ssm/sql-ags", {"account": customer.account, "ags": registrations}
        )
        return sum(len(env.sql_ags) for env in environments)

    def environment(
        self, customer: Customer, env: Environment, creds: dict[str, Any]
    ) -> list[dict[str, Any]]:
        primary_region = customer.region
        dr_region = self.estate.regions[primary_region]
        ec2 = {r: self.client("ec2", r, creds) for r in (primary_region, dr_region)}
        have = {r: _existing(c, customer.name) for r, c in ec2.items()}
        route53 = self.client("route53", "us-east-1", creds)
        zone_id = self.zone(route53, ec2[dr_region], dr_region, zone_name(customer.name, env.name))
        bubble_subnet = _bubble_subnet(
            ec2[dr_region], T.bubble_network_name(customer.name, env.name)
        )
        scope = {T.CUSTOMER: customer.name, T.ENVIRONMENT: env.name}
        out = []
        for spec in env.sql_ags:
            listener = listener_name(spec, customer.name, env.name)
            names = [spec.instance_name(i) for i in range(1, spec.replicas + 1)]
            primary_tags = _tags(
                {
                    T.NAME: names[0],
                    **scope,
                    T.ENABLED: "true",
                    T.PRIORITY: spec.priority,
                    T.WAVE: str(spec.wave),
                    T.STRATEGY: "sql-ag",
                    T.RTO_TARGET: str(spec.rto),
                    T.RPO_TARGET: str(spec.rpo),
                    C.AG_NAME: spec.name,
                    C.DR_REPLICA: names[1],
                    C.LISTENER: listener,
                    C.HOSTED_ZONE: zone_id,
                }
                | ({C.CLONE: spec.clone_name} if spec.clone else {}),
                spec.tags,
            )
            dr_tags = {
                T.NAME: names[1],
                **scope,
                C.AG_NAME: spec.name,
                C.PRIMARY_REPLICA: names[0],
                C.LISTENER: listener,
                C.HOSTED_ZONE: zone_id,
            }
            primary = _instance(ec2[primary_region], have[primary_region], primary_tags)
            dr = _instance(ec2[dr_region], have[dr_region], dr_tags)
            extra = [
                _instance(ec2[primary_region], have[primary_region], {T.NAME: n, **scope})
                for n in names[2:]
            ]
            replicas = [
                _replica(primary, primary_region, names[0], "PRIMARY", "SYNCHRONOUS_COMMIT"),
                _replica(dr, dr_region, names[1], "SECONDARY", spec.availability_mode),
            ] + [
                _replica(i, primary_region, n, "SECONDARY", "SYNCHRONOUS_COMMIT")
                for i, n in zip(extra, names[2:], strict=True)
            ]
            common = {
                "name": spec.name,
                "databases": spec.databases,
                "command_seconds": spec.command_seconds,
                "resync_seconds": spec.resync_seconds,
            }
            out.append(
                common
                | {"replicas": replicas, "sync_state": spec.sync_state, "lag_seconds": spec.lag}
            )
            _upsert(route53, zone_id, listener, primary["PrivateIpAddress"])
            if spec.clone:
                clone = _instance(
                    ec2[dr_region],
                    have[dr_region],
                    {T.NAME: spec.clone_name, **scope, C.AG_NAME: spec.name},
                    subnet=bubble_subnet,
                )
                # The clone's copy of the group still names the production replicas (it is a
                # copy), but it is isolated: it never reaches them.
                out.append(
                    common
                    | {
                        "replicas": [
                            _replica(
                                clone, dr_region, spec.clone_name, "SECONDARY", "SYNCHRONOUS_COMMIT"
                            ),
                            {
                                "region": primary_region,
                                "server": names[0],
                                "role": "PRIMARY",
                            },
                        ],
                        "sync_state": "NOT SYNCHRONIZING",
                        "lag_seconds": spec.lag,
                        "isolated": True,
                    }
                )
        return out

    @staticmethod
    def zone(route53: Any, ec2: Any, region: str, name: str) -> str:
        found = route53.list_hosted_zones_by_name(DNSName=name, MaxItems="1").get("HostedZones", [])
        if found and found[0]["Name"].rstrip(".") == name:
            return str(found[0]["Id"]).removeprefix("/hostedzone/")
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        kwargs: dict[str, Any] = {
            "Name": name,
            "CallerReference": f"dr-sqlag-{name}",
            "HostedZoneConfig": {"Comment": "SQL Server listeners", "PrivateZone": bool(vpcs)},
        }
        if vpcs:
            kwargs["VPC"] = {"VPCRegion": region, "VPCId": vpcs[0]["VpcId"]}
        created = route53.create_hosted_zone(**kwargs)
        return str(created["HostedZone"]["Id"]).removeprefix("/hostedzone/")


def _replica(
    instance: dict[str, Any], region: str, server: str, role: str, mode: str
) -> dict[str, Any]:
    return {
        "instance_id": instance["InstanceId"],
        "region": region,
        "server": server,
        "role": role,
        "availability_mode": mode,
    }


def _existing(ec2: Any, customer: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag:Customer", "Values": [customer]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]},
        ]
    )
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                if "Name" in tags:
                    out[tags["Name"]] = instance
    return out


def _instance(
    ec2: Any, have: dict[str, dict[str, Any]], tags: dict[str, str], subnet: str | None = None
) -> dict[str, Any]:
    name = tags[T.NAME]
    if name in have:
        return have[name]
    kwargs: dict[str, Any] = {
        "ImageId": DEFAULT_IMAGE,
        "MinCount": 1,
        "MaxCount": 1,
        "InstanceType": INSTANCE_TYPE,
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    }
    if subnet:
        kwargs["SubnetId"] = subnet
    instance: dict[str, Any] = ec2.run_instances(**kwargs)["Instances"][0]
    have[name] = instance
    return instance


def _bubble_subnet(ec2: Any, vpc_name: str) -> str | None:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [vpc_name]}])["Vpcs"]
    if not vpcs:
        return None
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])
    return str(subnets["Subnets"][0]["SubnetId"]) if subnets["Subnets"] else None


def _upsert(route53: Any, zone_id: str, name: str, ip: str) -> None:
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": name,
                        "Type": "A",
                        "TTL": LISTENER_TTL,
                        "ResourceRecords": [{"Value": ip}],
                    },
                }
            ]
        },
    )


def seed_sqlag(estate: Estate, endpoint_url: str, region: str = "us-east-2") -> int:
    """Create the estate's availability groups; returns how many groups were seeded."""
    return _SqlSeeder(estate, endpoint_url, region).run()
