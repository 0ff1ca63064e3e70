"""Managed adapters: the only AWS code of the service.

Workload calls (EFS, Elastic Load Balancing, EC2, Route 53) go through `drcore.aws.AwsClients`
into the customer's account (AssumeRole with the registry's external id). Every AWS error
reaching the domain is an `AwsError` carrying the AWS error code; retries are botocore's.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, WaiterError
from pydantic import ValidationError

from drcore.aws import AccountAccess, AwsClients
from drcore.publisher import EventPublisher
from drcore.registry import PARAMETER_PREFIX, CustomerEntry
from events.schemas import Detail, Source

from .ports import (
    AwsError,
    CacheGroup,
    Claim,
    EfsDestination,
    EfsReplication,
    FileSystem,
    FsxFileSystem,
    GlobalDatastore,
    GlobalMember,
    HealthCheck,
    Instance,
    LoadBalancer,
    OntapError,
    OntapJob,
    RecordSet,
    SnapMirror,
    Zone,
)

MESSAGE_CHARS = 500
REGISTRY_TTL_SECONDS = 300
REGISTRY_MISS_REFRESH_SECONDS = 1
LEDGER_TTL_SECONDS = 90 * 24 * 3600
ELB_TAG_ARNS = 20
# Route 53 change propagation: GetChange every few seconds until INSYNC (botocore's waiter).
INSYNC_DELAY_SECONDS = 2
INSYNC_MAX_ATTEMPTS = 60

_R = TypeVar("_R")
_NOT_FOUND = frozenset(
    {
        "FileSystemNotFound",
        "ReplicationNotFound",
        "LoadBalancerNotFound",
        "InvalidInstanceID.NotFound",
        "InvalidInstanceID.Malformed",
        "NoSuchHostedZone",
        "NoSuchHealthCheck",
        "ReplicationGroupNotFoundFault",
        "ResourceNotFoundException",
        "GlobalReplicationGroupNotFoundFault",
    }
)


def _aws(call: Callable[[], _R]) -> _R:
    """Run one AWS call (with botocore's retries); failures become `AwsError`."""
    try:
        return call()
    except ClientError as error:
        err = error.response.get("Error", {})
        message = str(err.get("Message", ""))[:MESSAGE_CHARS]
        raise AwsError(str(err.get("Code", "Unknown")), message) from error
    except BotoCoreError as error:
        raise AwsError("EndpointError", str(error)[:MESSAGE_CHARS]) from error


def _or_none(call: Callable[[], _R]) -> _R | None:
    try:
        return _aws(call)
    except AwsError as error:
        if error.code in _NOT_FOUND:
            return None
        raise


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _tags(items: Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in items or []}


def parse_file_system(item: Mapping[str, Any], region: str) -> FileSystem:
    protection = (item.get("FileSystemProtection") or {}).get("ReplicationOverwriteProtection")
    return FileSystem(
        file_system_id=item["FileSystemId"],
        arn=item.get("FileSystemArn", ""),
        region=region,
        life_cycle_state=item.get("LifeCycleState", ""),
        protection=protection or "ENABLED",
        tags=_tags(item.get("Tags")),
    )


def parse_replication(item: Mapping[str, Any]) -> EfsReplication:
    return EfsReplication(
        source_file_system_id=item["SourceFileSystemId"],
        source_region=item.get("SourceFileSystemRegion", ""),
        original_source_arn=item.get("OriginalSourceFileSystemArn"),
        destinations=tuple(
            EfsDestination(
                file_system_id=d["FileSystemId"],
                region=d["Region"],
                status=d["Status"],
                last_replicated=_time(d.get("LastReplicatedTimestamp")),
                status_message=d.get("StatusMessage"),
            )
            for d in item.get("Destinations", [])
        ),
    )


def parse_record(item: Mapping[str, Any]) -> RecordSet:
    alias = item.get("AliasTarget")
    values = (
        (str(alias["DNSName"]),)
        if alias
        else tuple(str(r["Value"]) for r in item.get("ResourceRecords", []))
    )
    return RecordSet(
        name=str(item["Name"]).lower(),
        type=item["Type"],
        set_identifier=item.get("SetIdentifier"),
        failover=item.get("Failover"),
        health_check_id=item.get("HealthCheckId"),
        values=values,
        alias=alias is not None,
        alias_zone_id=alias.get("HostedZoneId") if alias else None,
        ttl=item.get("TTL"),
    )


def parse_fsx(item: Mapping[str, Any], region: str) -> FsxFileSystem:
    ontap = item.get("OntapConfiguration") or {}
    management = (ontap.get("Endpoints") or {}).get("Management") or {}
    return FsxFileSystem(
        file_system_id=item["FileSystemId"],
        arn=item.get("ResourceARN", ""),
        region=region,
        file_system_type=item.get("FileSystemType", ""),
        lifecycle=item.get("Lifecycle", ""),
        management_dns=management.get("DNSName"),
        management_ips=tuple(management.get("IpAddresses") or ()),
        tags=_tags(item.get("Tags")),
    )


class BotoWorkload:
    """EFS, ELB, EC2 and Route 53 of one workload account in one region."""

    def __init__(self, clients: AwsClients, access: AccountAccess, region: str) -> None:
        self.region = region
        self._clients = clients
        self._access = access

    def _c(self, service: str) -> Any:
        return self._clients.workload_client(service, self.region, self._access)

    # EFS

    def file_system(self, file_system_id: str) -> FileSystem | None:
        found = _or_none(lambda: self._c("efs").describe_file_systems(FileSystemId=file_system_id))
        if not found or not found.get("FileSystems"):
            return None
        return parse_file_system(found["FileSystems"][0], self.region)

    def file_systems(self) -> list[FileSystem]:
        def collect() -> list[FileSystem]:
            pages = self._c("efs").get_paginator("describe_file_systems").paginate()
            return [parse_file_system(f, self.region) for p in pages for f in p["FileSystems"]]

        return _aws(collect)

    def replications(self, file_system_id: str | None = None) -> list[EfsReplication]:
        efs = self._c("efs")
        out: list[EfsReplication] = []
        kwargs: dict[str, Any] = {"FileSystemId": file_system_id} if file_system_id else {}
        while True:
            page = _or_none(lambda: efs.describe_replication_configurations(**kwargs))
            if page is None:
                return out
            out += [parse_replication(r) for r in page.get("Replications", [])]
            if not page.get("NextToken"):
                return out
            kwargs["NextToken"] = page["NextToken"]

    def delete_replication(self, file_system_id: str, local_only: bool) -> None:
        mode = "LOCAL_CONFIGURATION_ONLY" if local_only else "ALL_CONFIGURATIONS"
        _aws(
            lambda: self._c("efs").delete_replication_configuration(
                SourceFileSystemId=file_system_id, DeletionMode=mode
            )
        )

    def create_replication(
        self, source_file_system_id: str, destination_region: str, destination_id: str
    ) -> EfsReplication:
        answer = _aws(
            lambda: self._c("efs").create_replication_configuration(
                SourceFileSystemId=source_file_system_id,
                Destinations=[{"Region": destination_region, "FileSystemId": destination_id}],
            )
        )
        return parse_replication(answer)

    def set_protection(self, file_system_id: str, protection: str) -> str:
        answer = _aws(
            lambda: self._c("efs").update_file_system_protection(
                FileSystemId=file_system_id, ReplicationOverwriteProtection=protection
            )
        )
        return str(answer.get("ReplicationOverwriteProtection", protection))

    # Elastic Load Balancing

    def _with_tags(self, items: Sequence[Mapping[str, Any]]) -> list[LoadBalancer]:
        elb = self._c("elbv2")
        tags: dict[str, dict[str, str]] = {}
        arns = [i["LoadBalancerArn"] for i in items]
        for start in range(0, len(arns), ELB_TAG_ARNS):
            chunk = arns[start : start + ELB_TAG_ARNS]
            answer = _aws(functools.partial(elb.describe_tags, ResourceArns=chunk))
            for described in answer.get("TagDescriptions", []):
                tags[described["ResourceArn"]] = _tags(described.get("Tags"))
        return [
            LoadBalancer(
                name=i["LoadBalancerName"],
                arn=i["LoadBalancerArn"],
                dns_name=i.get("DNSName", ""),
                state=(i.get("State") or {}).get("Code", "unknown"),
                kind=i.get("Type", "application"),
                canonical_zone_id=i.get("CanonicalHostedZoneId", ""),
                tags=tags.get(i["LoadBalancerArn"], {}),
            )
            for i in items
        ]

    def load_balancer(self, name: str) -> LoadBalancer | None:
        found = _or_none(lambda: self._c("elbv2").describe_load_balancers(Names=[name]))
        if not found or not found.get("LoadBalancers"):
            return None
        return self._with_tags(found["LoadBalancers"][:1])[0]

    def load_balancers_named(self, name_tag: str) -> list[LoadBalancer]:
        def collect() -> list[dict[str, Any]]:
            pages = self._c("elbv2").get_paginator("describe_load_balancers").paginate()
            return [lb for page in pages for lb in page.get("LoadBalancers", [])]

        return [lb for lb in self._with_tags(_aws(collect)) if lb.tags.get("Name") == name_tag]

    # ElastiCache

    def _group(self, item: Mapping[str, Any], tags: dict[str, str]) -> CacheGroup:
        groups = item.get("NodeGroups") or []
        endpoint = (groups[0].get("PrimaryEndpoint") or {}).get("Address") if groups else None
        if not endpoint:
            endpoint = (item.get("ConfigurationEndpoint") or {}).get("Address")
        info = item.get("GlobalReplicationGroupInfo") or {}
        return CacheGroup(
            group_id=item["ReplicationGroupId"],
            arn=item.get("ARN", ""),
            status=item.get("Status", "unknown"),
            primary_endpoint=endpoint,
            global_group_id=info.get("GlobalReplicationGroupId") or None,
            tags=tags,
        )

    def _cache_tags(self, arn: str) -> dict[str, str]:
        if not arn:
            return {}
        answer = _aws(lambda: self._c("elasticache").list_tags_for_resource(ResourceName=arn))
        return _tags(answer.get("TagList"))

    def replication_group(self, group_id: str) -> CacheGroup | None:
        found = _or_none(
            lambda: self._c("elasticache").describe_replication_groups(ReplicationGroupId=group_id)
        )
        if not found or not found.get("ReplicationGroups"):
            return None
        item = found["ReplicationGroups"][0]
        return self._group(item, self._cache_tags(item.get("ARN", "")))

    def replication_groups_named(self, name_tag: str) -> list[CacheGroup]:
        def collect() -> list[dict[str, Any]]:
            pages = self._c("elasticache").get_paginator("describe_replication_groups").paginate()
            return [g for page in pages for g in page.get("ReplicationGroups", [])]

        groups = [self._group(i, self._cache_tags(i.get("ARN", ""))) for i in _aws(collect)]
        return [g for g in groups if g.tags.get("Name") == name_tag]

    def global_datastore(self, global_id: str) -> GlobalDatastore | None:
        found = _or_none(
            lambda: self._c("elasticache").describe_global_replication_groups(
                GlobalReplicationGroupId=global_id, ShowMemberInfo=True
            )
        )
        if not found or not found.get("GlobalReplicationGroups"):
            return None
        item = found["GlobalReplicationGroups"][0]
        return GlobalDatastore(
            global_id=item["GlobalReplicationGroupId"],
            status=item.get("Status", "unknown"),
            members=tuple(
                GlobalMember(
                    group_id=m.get("ReplicationGroupId", ""),
                    region=m.get("ReplicationGroupRegion", ""),
                    role=m.get("Role", ""),
                    status=m.get("Status", ""),
                )
                for m in item.get("Members", [])
            ),
        )

    def failover_global(self, global_id: str, primary_region: str, primary_group_id: str) -> None:
        _aws(
            lambda: self._c("elasticache").failover_global_replication_group(
                GlobalReplicationGroupId=global_id,
                PrimaryRegion=primary_region,
                PrimaryReplicationGroupId=primary_group_id,
            )
        )

    # FSx and Secrets Manager

    def fsx_file_system(self, file_system_id: str) -> FsxFileSystem | None:
        found = _or_none(
            lambda: self._c("fsx").describe_file_systems(FileSystemIds=[file_system_id])
        )
        if not found or not found.get("FileSystems"):
            return None
        return parse_fsx(found["FileSystems"][0], self.region)

    def fsx_file_systems(self) -> list[FsxFileSystem]:
        def collect() -> list[FsxFileSystem]:
            pages = self._c("fsx").get_paginator("describe_file_systems").paginate()
            return [parse_fsx(f, self.region) for p in pages for f in p["FileSystems"]]

        return _aws(collect)

    def secret(self, secret_id: str) -> str | None:
        found = _or_none(lambda: self._c("secretsmanager").get_secret_value(SecretId=secret_id))
        if not found:
            return None
        return str(found.get("SecretString") or "")

    # EC2

    def instance(self, instance_id: str) -> Instance | None:
        found = _or_none(lambda: self._c("ec2").describe_instances(InstanceIds=[instance_id]))
        for reservation in (found or {}).get("Reservations", []):
            for item in reservation.get("Instances", []):
                return Instance(
                    instance_id=item["InstanceId"],
                    private_ip=item.get("PrivateIpAddress"),
                    tags=_tags(item.get("Tags")),
                )
        return None

    def instances_tagged(self, tags: Mapping[str, str]) -> dict[str, Instance]:
        def collect() -> dict[str, Instance]:
            filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
            pages = self._c("ec2").get_paginator("describe_instances").paginate(Filters=filters)
            return {
                item["InstanceId"]: Instance(
                    instance_id=item["InstanceId"],
                    private_ip=item.get("PrivateIpAddress"),
                    tags=_tags(item.get("Tags")),
                )
                for page in pages
                for reservation in page.get("Reservations", [])
                for item in reservation.get("Instances", [])
            }

        return _aws(collect)

    # Route 53

    def zone(self, zone: str) -> Zone | None:
        route53 = self._c("route53")
        if not zone.endswith("."):
            found = _or_none(lambda: route53.get_hosted_zone(Id=zone))
            if not found:
                return None
            item = found["HostedZone"]
            return Zone(
                zone_id=item["Id"].split("/")[-1],
                name=item["Name"],
                private=bool((item.get("Config") or {}).get("PrivateZone")),
            )
        answer = _aws(lambda: route53.list_hosted_zones_by_name(DNSName=zone, MaxItems="100"))
        matches = [z for z in answer.get("HostedZones", []) if z["Name"].lower() == zone]
        private = [z for z in matches if (z.get("Config") or {}).get("PrivateZone")]
        chosen = private or matches
        if len(chosen) != 1:
            if len(chosen) > 1:
                raise AwsError(
                    "AmbiguousZone",
                    f"{len(chosen)} hosted zones are named {zone}; tag the zone by its id",
                )
            return None
        item = chosen[0]
        return Zone(
            zone_id=item["Id"].split("/")[-1],
            name=item["Name"],
            private=bool((item.get("Config") or {}).get("PrivateZone")),
        )

    def record_sets(self, zone_id: str, name: str) -> list[RecordSet]:
        route53 = self._c("route53")
        wanted = name.lower()
        out: list[RecordSet] = []
        kwargs: dict[str, Any] = {"HostedZoneId": zone_id, "StartRecordName": name}
        while True:
            page = _aws(lambda: route53.list_resource_record_sets(**kwargs))
            items = page.get("ResourceRecordSets", [])
            out += [r for r in (parse_record(i) for i in items) if r.name == wanted]
            if not page.get("IsTruncated") or (items and items[-1]["Name"].lower() != wanted):
                return out
            kwargs["StartRecordName"] = page["NextRecordName"]
            kwargs["StartRecordType"] = page["NextRecordType"]
            if "NextRecordIdentifier" in page:
                kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def upsert(self, zone_id: str, record: RecordSet, comment: str) -> str:
        record_set: dict[str, Any] = {"Name": record.name, "Type": record.type}
        if record.alias:
            record_set["AliasTarget"] = {
                "HostedZoneId": record.alias_zone_id or "",
                "DNSName": record.values[0],
                "EvaluateTargetHealth": True,
            }
        else:
            record_set["TTL"] = record.ttl or 60
            record_set["ResourceRecords"] = [{"Value": v} for v in record.values]
        answer = _aws(
            lambda: self._c("route53").change_resource_record_sets(
                HostedZoneId=zone_id,
                ChangeBatch={
                    "Comment": comment[:256],
                    "Changes": [{"Action": "UPSERT", "ResourceRecordSet": record_set}],
                },
            )
        )
        return str(answer["ChangeInfo"]["Id"]).split("/")[-1]

    def wait_insync(self, change_id: str) -> str:
        route53 = self._c("route53")
        # Past the waiter's attempts, the status below says where the change stands.
        with contextlib.suppress(WaiterError):
            route53.get_waiter("resource_record_sets_changed").wait(
                Id=change_id,
                WaiterConfig={"Delay": INSYNC_DELAY_SECONDS, "MaxAttempts": INSYNC_MAX_ATTEMPTS},
            )
        answer = _aws(lambda: route53.get_change(Id=change_id))
        return str(answer["ChangeInfo"]["Status"])

    def health_check(self, health_check_id: str) -> HealthCheck | None:
        found = _or_none(lambda: self._c("route53").get_health_check(HealthCheckId=health_check_id))
        if not found:
            return None
        cfg = found["HealthCheck"].get("HealthCheckConfig", {})
        return HealthCheck(
            health_check_id=health_check_id,
            inverted=bool(cfg.get("Inverted", False)),
            disabled=bool(cfg.get("Disabled", False)),
        )

    def set_inverted(self, health_check_id: str, inverted: bool) -> None:
        _aws(
            lambda: self._c("route53").update_health_check(
                HealthCheckId=health_check_id, Inverted=inverted
            )
        )


class BotoWorkloads:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def get(self, entry: CustomerEntry, region: str) -> BotoWorkload:
        access = AccountAccess(entry.account, entry.role_name, entry.external_id)
        return BotoWorkload(self._clients, access, region)


# --- orchestration account -------------------------------------------------------------------


class CachedRegistry:
    """The SSM customer registry, read whole and kept for a few minutes."""

    def __init__(self, ssm: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._ssm = ssm
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: list[CustomerEntry] = []
        self._loaded_at: float | None = None

    def customer(self, name: str) -> CustomerEntry | None:
        with self._lock:
            now = self._clock()
            if self._loaded_at is None or now - self._loaded_at > REGISTRY_TTL_SECONDS:
                self._load(now)
            found = next((e for e in self._entries if e.name == name), None)
            if found is None and now - (self._loaded_at or now) > REGISTRY_MISS_REFRESH_SECONDS:
                self._load(now)  # a customer registered a moment ago
                found = next((e for e in self._entries if e.name == name), None)
            return found

    def _load(self, now: float) -> None:
        entries: list[CustomerEntry] = []
        paginator = self._ssm.get_paginator("get_parameters_by_path")
        for page in paginator.paginate(Path=PARAMETER_PREFIX.rstrip("/"), Recursive=False):
            for parameter in page.get("Parameters", []):
                try:
                    entries.append(CustomerEntry.model_validate_json(parameter["Value"]))
                except ValidationError:
                    continue  # an invalid entry is reported by discovery, not guessed here
        self._entries = entries
        self._loaded_at = now


class DynamoLedger:
    """pk `MANAGED#<operation id>`, sk `<resource id>#<step>#<attempt>` (or `…#dns#<operation>`):
    `state` CLAIMED (with a lease) or DONE (with the published result)."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    @staticmethod
    def pk(operation_id: str) -> str:
        return f"MANAGED#{operation_id}"

    def claim(self, operation_id: str, key: str, now: datetime, lease_seconds: int) -> Claim:
        lease_until = now + timedelta(seconds=lease_seconds)
        key_item = {"pk": {"S": self.pk(operation_id)}, "sk": {"S": key}}
        before = self._db.get_item(TableName=self._table, Key=key_item, ConsistentRead=True).get(
            "Item", {}
        )
        note = before.get("note", {}).get("S")
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": self.pk(operation_id)},
                    "sk": {"S": key},
                    "state": {"S": "CLAIMED"},
                    "lease_until": {"N": str(int(lease_until.timestamp()))},
                    "expires_at": {"N": str(int(now.timestamp()) + LEDGER_TTL_SECONDS)},
                },
                ConditionExpression="attribute_not_exists(pk) OR "
                "(#state = :claimed AND lease_until < :now)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":claimed": {"S": "CLAIMED"},
                    ":now": {"N": str(int(now.timestamp()))},
                },
            )
            return Claim("claimed", note=note)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        item = self._db.get_item(
            TableName=self._table,
            Key={"pk": {"S": self.pk(operation_id)}, "sk": {"S": key}},
            ConsistentRead=True,
        ).get("Item", {})
        if item.get("state", {}).get("S") == "DONE":
            return Claim("done", item.get("result", {}).get("S", ""))
        return Claim("busy")

    def hold(self, operation_id: str, key: str, until: datetime, note: str) -> None:
        self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": self.pk(operation_id)}, "sk": {"S": key}},
            UpdateExpression="SET lease_until = :until, note = :note",
            ConditionExpression="#state = :claimed",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":until": {"N": str(int(until.timestamp()))},
                ":note": {"S": note},
                ":claimed": {"S": "CLAIMED"},
            },
        )

    def finish(self, operation_id: str, key: str, result: str, now: datetime) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": self.pk(operation_id)},
                "sk": {"S": key},
                "state": {"S": "DONE"},
                "result": {"S": result},
                "expires_at": {"N": str(int(now.timestamp()) + LEDGER_TTL_SECONDS)},
            },
        )


class EventResults:
    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    def publish(self, details: Sequence[Detail]) -> None:
        if details:
            self._publisher.publish(Source.MANAGED, details)


# --- ONTAP REST API ---------------------------------------------------------------------------


class UrllibOntap:
    """The ONTAP REST API of one management endpoint (urllib, basic auth)."""

    def __init__(
        self, base_url: str, username: str, password: str, timeout: float, verify_tls: bool
    ) -> None:
        self.base_url = base_url.rstrip("/")
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {
            "Authorization": f"Basic {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self._timeout = timeout
        self._context = None if verify_tls else ssl._create_unverified_context()

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=self._headers
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self._timeout, context=self._context
            ) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                message = json.loads(text)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = text
            raise OntapError(error.code, f"{method} {path}: {message}"[:MESSAGE_CHARS]) from None
        except (urllib.error.URLError, OSError) as error:
            raise OntapError(0, f"{method} {path}: {error}"[:MESSAGE_CHARS]) from None
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise OntapError(0, f"{method} {path}: the answer is not JSON") from None

    def relationships(self) -> list[SnapMirror]:
        out: list[SnapMirror] = []
        path = "/api/snapmirror/relationships?" + urllib.parse.urlencode(
            {"fields": ONTAP_FIELDS, "max_records": "1000"}
        )
        while path:
            page = self._call("GET", path)
            for r in page.get("records", []):
                reasons = r.get("unhealthy_reason") or []
                out.append(
                    SnapMirror(
                        uuid=str(r["uuid"]),
                        state=str(r.get("state", "")),
                        healthy=bool(r.get("healthy", False)),
                        source_path=str((r.get("source") or {}).get("path", "")),
                        destination_path=str((r.get("destination") or {}).get("path", "")),
                        lag_time=r.get("lag_time"),
                        unhealthy_reason="; ".join(str(x.get("message", "")) for x in reasons),
                    )
                )
            following = ((page.get("_links") or {}).get("next") or {}).get("href")
            path = following.split("/api/", 1)[-1] if following else ""
            path = f"/api/{path}" if path else ""
        return out

    def set_state(self, uuid: str, state: str) -> str:
        answer = self._call(
            "PATCH", f"/api/snapmirror/relationships/{urllib.parse.quote(uuid)}", {"state": state}
        )
        job = (answer.get("job") or {}).get("uuid")
        if not job:
            raise OntapError(0, f"PATCH relationship {uuid}: no job in the answer")
        return str(job)

    def job(self, uuid: str) -> OntapJob:
        answer = self._call("GET", f"/api/cluster/jobs/{urllib.parse.quote(uuid)}")
        return OntapJob(
            uuid=uuid, state=str(answer.get("state", "")), message=str(answer.get("message", ""))
        )


ONTAP_FIELDS = "uuid,state,healthy,unhealthy_reason,lag_time,source.path,destination.path"


class OntapEndpoints:
    """Connects to a file system's management endpoint: the URL from a template with
    `{management_dns}`, `{management_ip}`, `{file_system_id}`, `{region}`."""

    def __init__(self, url_template: str, timeout: float = 30, verify_tls: bool = True) -> None:
        self.url_template = url_template
        self.timeout = timeout
        self.verify_tls = verify_tls

    def url(self, fs: FsxFileSystem) -> str:
        return self.url_template.format(
            management_dns=fs.management_dns or (fs.management_ips or ("",))[0],
            management_ip=(fs.management_ips or (fs.management_dns or "",))[0],
            file_system_id=fs.file_system_id,
            region=fs.region,
        )

    def connect(self, file_system: FsxFileSystem, username: str, password: str) -> UrllibOntap:
        return UrllibOntap(self.url(file_system), username, password, self.timeout, self.verify_tls)
