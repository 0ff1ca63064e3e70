"""In-memory fakes of every port of the drs service (no AWS), shared by the drs unit tests.

`FakeWorkload` plays DRS and EC2 of one account and region; jobs finish only when a test says so
(`finish`), so every step is explicit. `World` wires the domain with all fakes and a fixed clock.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from drcore import tags as T
from drcore.registry import CustomerEntry, EnvironmentEntry
from events.schemas import (
    Detail,
    OperationType,
    ResourceRecoveryFailed,
    ResourceRef,
    Strategy,
    WaveStarted,
)
from services.drs.domain import DrsRecovery
from services.drs.drills import Drills
from services.drs.ports import (
    AwsError,
    Instance,
    Job,
    JobLedger,
    JobServer,
    LaunchConfig,
    RecoveryInstance,
    SourceServer,
    Template,
    parse_duration,
)
from services.drs.protection import Reprotection
from services.drs.readiness import Bubble, Subnet
from services.drs.records import (
    DrsLimits,
    Hold,
    LaunchBatch,
    LaunchContext,
    OperationOptions,
    OperationRecords,
    OpJob,
    RecordedResult,
    ReprotectRecord,
    TeardownRecord,
)

ACCOUNT = "111111111111"
OTHER_ACCOUNT = "222222222222"
DR = "us-east-2"
PRIMARY = "us-east-1"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

ACME = CustomerEntry(
    name="acme",
    account=ACCOUNT,
    regions={PRIMARY: DR},
    environments=[EnvironmentEntry(name="production")],
    external_id="ext-acme",
)
GLOBEX = ACME.model_copy(update={"name": "globex", "account": OTHER_ACCOUNT})


class Clock:
    def __init__(self, start: datetime = T0 + timedelta(minutes=5)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeWorkload:
    """DRS + EC2 of one account and region, in memory, counting calls."""

    def __init__(self, region: str = DR) -> None:
        self.region = region
        self.servers: dict[str, SourceServer] = {}
        self.instances_by_id: dict[str, Instance] = {}
        self.jobs_by_id: dict[str, Job] = {}
        self.recovery: dict[str, RecoveryInstance] = {}
        self.log_errors: dict[str, dict[str, str]] = {}
        self.launch_config: dict[str, str] = {}  # source server -> launch-into target
        self.copy_ip: dict[str, bool] = {}
        self.template_of: dict[str, str] = {}
        self.templates_by_id: dict[str, Template] = {}
        self.template_versions: dict[str, list[dict[str, Any]]] = {}
        self.calls: Counter[str] = Counter()
        self.started: list[list[str]] = []
        self.drills: list[bool] = []
        self.start_error: AwsError | None = None
        self.start_errors: list[AwsError] = []
        self.twins_leak: list[Instance] = []  # returned regardless of filters (a sloppy lookup)
        self.opaque_ids = False
        self.bubble = Bubble("vpc-bubble", (Subnet("subnet-bubble", "10.1.0.0/16"),), ("sg-drill",))
        self.reversed_arns: dict[str, str] = {}  # recovery instance -> reversed server arn
        self.reverse_error: AwsError | None = None
        self.stopped: list[str] = []
        self.terminated_ec2: list[str] = []
        self.primary_error: AwsError | None = None
        self._ids = itertools.count(1)

    # -- set-up helpers

    def add_server(
        self,
        instance_id: str,
        ip: str | None = "10.1.0.10",
        customer: str = "acme",
        state: str = "CONTINUOUS",
        lag: str | None = "PT30S",
        **extra: Any,
    ) -> SourceServer:
        sid = f"s-{instance_id}"
        server = SourceServer(
            source_server_id=sid,
            aws_instance_id=instance_id,
            tags={T.CUSTOMER: customer, T.ENVIRONMENT: "production"},
            replication_state=state,
            lag_seconds=parse_duration(lag),
            primary_ip=ip,
            arn=f"arn:aws:drs:{self.region}:{ACCOUNT}:source-server/{sid}",
            **extra,
        )
        self.servers[sid] = server
        self.template_of[sid] = f"lt-{sid}"
        self.templates_by_id[f"lt-{sid}"] = Template(f"lt-{sid}", 1, {})
        return server

    def add_instance(
        self,
        name: str,
        ip: str,
        customer: str = "acme",
        allow: bool = True,
        instance_id: str | None = None,
        **extra: Any,
    ) -> Instance:
        iid = instance_id or f"i-dr{next(self._ids):05d}"
        tag_map = {T.NAME: name, T.CUSTOMER: customer, T.ENVIRONMENT: "production"}
        if allow:
            tag_map[T.DRS_LAUNCH_INTO] = T.DRS_LAUNCH_INTO_VALUE
        tag_map.update(extra.pop("tags", {}))
        instance = Instance(instance_id=iid, tags=tag_map, private_ip=ip, state="stopped", **extra)
        self.instances_by_id[iid] = instance
        return instance

    def finish(
        self,
        job_id: str,
        outcome: Mapping[str, tuple[str, str | None]],
        *,
        done: bool = True,
        drop_recovery_id: bool = False,
        vpc: str | None = None,
    ) -> None:
        """Give servers a final launch status: LAUNCHED (with DR IP) or FAILED (with rawError)."""
        job = self.jobs_by_id[job_id]
        drill = job.tags.get(T.JOB_OPERATION) == OperationType.BUBBLE_TEST.value
        servers = []
        for s in job.servers:
            status, value = outcome.get(s.source_server_id, (s.launch_status or "PENDING", None))
            rid = s.recovery_instance_id
            if status == "LAUNCHED":
                target = self.launch_config.get(s.source_server_id)
                if target:
                    twin = self.instances_by_id[target]
                    self.instances_by_id[target] = replace(
                        twin, private_ip=value or twin.private_ip, state="running"
                    )
                    ec2_id = target
                else:
                    ec2_id = self.add_instance(
                        f"new-{s.source_server_id}",
                        value or "10.9.9.9",
                        allow=False,
                        vpc_id=vpc or (self.bubble.vpc_id if drill else "vpc-prod"),
                        tags=self._template_tags(s.source_server_id),
                        launched_at=T0,
                    ).instance_id
                # DRS names a recovery instance by its EC2 id; `opaque_ids` tries another naming.
                rid = f"ri-{s.source_server_id}" if self.opaque_ids else ec2_id
                self.recovery[rid] = RecoveryInstance(
                    rid, s.source_server_id, ec2_id, job_id, is_drill=drill
                )
            elif status == "FAILED" and value:
                self.log_errors.setdefault(job_id, {})[s.source_server_id] = value
            servers.append(JobServer(s.source_server_id, status, None if drop_recovery_id else rid))
        self.jobs_by_id[job_id] = replace(
            job, servers=tuple(servers), status="COMPLETED" if done else "STARTED"
        )

    def _template_tags(self, source_server_id: str) -> dict[str, str]:
        """The instance tags of the default version of the server's launch template."""
        template = self.templates_by_id.get(self.template_of.get(source_server_id, ""))
        versions = self.template_versions.get(template.template_id, []) if template else []
        if template is None or template.default_version > len(versions):
            return {}
        data = versions[template.default_version - 1]
        return {
            t["Key"]: t["Value"]
            for spec in data.get("TagSpecifications", [])
            if spec["ResourceType"] == "instance"
            for t in spec["Tags"]
            if t["Key"] not in (T.NAME,)
        }

    # -- the Workload port: DRS reads

    def source_servers(self) -> list[SourceServer]:
        self.calls["DescribeSourceServers"] += 1
        return list(self.servers.values())

    def source_servers_by_id(self, ids: Sequence[str]) -> list[SourceServer]:
        self.calls["DescribeSourceServers"] += 1
        return [self.servers[i] for i in ids if i in self.servers]

    def jobs_since(self, since: datetime) -> list[Job]:
        self.calls["DescribeJobs"] += 1
        return [j for j in self.jobs_by_id.values() if j.created_at and j.created_at >= since]

    def job(self, job_id: str) -> Job | None:
        self.calls["DescribeJobs"] += 1
        return self.jobs_by_id.get(job_id)

    def jobs(self, ids: Sequence[str]) -> list[Job]:
        if not ids:
            return []
        self.calls["DescribeJobs"] += 1
        return [self.jobs_by_id[i] for i in ids if i in self.jobs_by_id]

    def recovery_instances(
        self, ids: Sequence[str], source_server_ids: Sequence[str]
    ) -> list[RecoveryInstance]:
        self.calls["DescribeRecoveryInstances"] += bool(ids) + bool(source_server_ids)
        return [
            r
            for r in self.recovery.values()
            if r.recovery_instance_id in ids or r.source_server_id in source_server_ids
        ]

    def all_recovery_instances(self) -> list[RecoveryInstance]:
        self.calls["DescribeRecoveryInstances"] += 1
        return list(self.recovery.values())

    def launch_errors(self, job_id: str) -> dict[str, str]:
        self.calls["DescribeJobLogItems"] += 1
        return dict(self.log_errors.get(job_id, {}))

    def launch_configuration(self, source_server_id: str) -> LaunchConfig:
        self.calls["GetLaunchConfiguration"] += 1
        return LaunchConfig(
            source_server_id,
            self.template_of.get(source_server_id),
            self.launch_config.get(source_server_id),
            self.copy_ip.get(source_server_id, False),
        )

    # -- DRS writes

    def launch_into(self, source_server_id: str, instance_id: str) -> None:
        self.set_launch(source_server_id, launch_into=instance_id, copy_private_ip=False)

    def set_launch(
        self, source_server_id: str, *, launch_into: str | None, copy_private_ip: bool
    ) -> None:
        self.calls["UpdateLaunchConfiguration"] += 1
        if launch_into:
            self.launch_config[source_server_id] = launch_into
        else:
            self.launch_config.pop(source_server_id, None)
        self.copy_ip[source_server_id] = copy_private_ip

    def start_recovery(
        self, source_server_ids: Sequence[str], tags: Mapping[str, str], drill: bool = False
    ) -> Job:
        self.calls["StartRecovery"] += 1
        if self.start_errors:
            raise self.start_errors.pop(0)
        if self.start_error:
            raise self.start_error
        job = Job(
            job_id=f"drsjob-{next(self._ids):017d}",
            status="PENDING",
            created_at=T0 + timedelta(seconds=1),
            tags=dict(tags),
            servers=tuple(JobServer(sid, "PENDING") for sid in source_server_ids),
        )
        self.jobs_by_id[job.job_id] = job
        self.started.append(list(source_server_ids))
        self.drills.append(drill)
        return job

    def terminate_recovery_instances(self, ids: Sequence[str]) -> Job:
        self.calls["TerminateRecoveryInstances"] += 1
        by_server = {self.recovery[r].source_server_id or r: r for r in ids}
        job = Job(
            job_id=f"drsjob-{next(self._ids):017d}",
            status="STARTED",
            created_at=T0 + timedelta(seconds=2),
            type="TERMINATE",
            servers=tuple(JobServer(sid, "PENDING", rid) for sid, rid in by_server.items()),
        )
        self.jobs_by_id[job.job_id] = job
        return job

    def complete_termination(self, job_id: str) -> None:
        job = self.jobs_by_id[job_id]
        for server in job.servers:
            record = self.recovery.pop(server.recovery_instance_id or "", None)
            if record and record.ec2_instance_id in self.instances_by_id:
                instance = self.instances_by_id[record.ec2_instance_id]
                self.instances_by_id[record.ec2_instance_id] = replace(instance, state="terminated")
        self.jobs_by_id[job_id] = replace(
            job,
            status="COMPLETED",
            servers=tuple(replace(s, launch_status="TERMINATED") for s in job.servers),
        )

    def reverse_replication(self, recovery_instance_id: str) -> str:
        self.calls["ReverseReplication"] += 1
        if self.reverse_error:
            raise self.reverse_error
        return self.reversed_arns[recovery_instance_id]

    # -- EC2

    def twins(self, customer: str, environment: str, names: Sequence[str]) -> list[Instance]:
        self.calls["DescribeInstances"] += 1
        found = [
            i
            for i in self.instances_by_id.values()
            if i.tags.get(T.CUSTOMER) == customer
            and i.tags.get(T.ENVIRONMENT) == environment
            and i.tags.get(T.NAME) in names
        ]
        return found + self.twins_leak

    def instances(self, ids: Sequence[str]) -> list[Instance]:
        self.calls["DescribeInstances"] += 1
        if self.primary_error:
            raise self.primary_error
        return [self.instances_by_id[i] for i in ids if i in self.instances_by_id]

    def tagged_instances(self, key: str, value: str) -> list[Instance]:
        self.calls["DescribeInstances"] += 1
        return [
            i
            for i in self.instances_by_id.values()
            if i.tags.get(key) == value and i.state not in ("terminated", "shutting-down")
        ]

    def tag_instances(self, ids: Sequence[str], tags: Mapping[str, str]) -> None:
        self.calls["CreateTags"] += 1
        for iid in ids:
            instance = self.instances_by_id[iid]
            self.instances_by_id[iid] = replace(instance, tags={**instance.tags, **tags})

    def stop_instances(self, ids: Sequence[str]) -> None:
        self.calls["StopInstances"] += 1
        self.stopped += list(ids)

    def terminate_instances(self, ids: Sequence[str]) -> None:
        self.calls["TerminateInstances"] += 1
        self.terminated_ec2 += list(ids)
        for iid in ids:
            self.instances_by_id[iid] = replace(self.instances_by_id[iid], state="terminated")

    def bubble_network(self, name: str) -> Bubble:
        self.calls["DescribeVpcs"] += 1
        return self.bubble

    def templates(self, ids: Sequence[str]) -> list[Template]:
        self.calls["DescribeLaunchTemplates"] += 1
        return [self.templates_by_id[i] for i in ids if i in self.templates_by_id]

    def tagged_templates(self, key: str) -> list[Template]:
        self.calls["DescribeTags"] += 1
        return [t for t in self.templates_by_id.values() if key in t.tags]

    def bubble_template_version(
        self, template_id: str, data: Mapping[str, Any], description: str
    ) -> int:
        self.calls["CreateLaunchTemplateVersion"] += 1
        versions = self.template_versions.setdefault(template_id, [{}])
        versions.append(dict(data))
        return len(versions)

    def set_default_template_version(self, template_id: str, version: int) -> None:
        self.calls["ModifyLaunchTemplate"] += 1
        template = self.templates_by_id[template_id]
        self.templates_by_id[template_id] = replace(template, default_version=version)

    def tag_templates(self, ids: Sequence[str], tags: Mapping[str, str]) -> None:
        self.calls["CreateTags"] += 1
        for tid in ids:
            template = self.templates_by_id[tid]
            self.templates_by_id[tid] = replace(template, tags={**template.tags, **tags})

    def untag_templates(self, ids: Sequence[str], keys: Sequence[str]) -> None:
        self.calls["DeleteTags"] += 1
        for tid in ids:
            template = self.templates_by_id[tid]
            kept = {k: v for k, v in template.tags.items() if k not in keys}
            self.templates_by_id[tid] = replace(template, tags=kept)


class FakeWorkloads:
    def __init__(self) -> None:
        self.by_account: dict[tuple[str, str], FakeWorkload] = {}

    def get(self, entry: CustomerEntry, region: str) -> FakeWorkload:
        return self.by_account.setdefault((entry.account, region), FakeWorkload(region))


class FakeRegistry:
    def __init__(self, *entries: CustomerEntry) -> None:
        self.entries = list(entries)

    def customer(self, name: str) -> CustomerEntry | None:
        return next((e for e in self.entries if e.name == name), None)

    def by_account(self, account: str) -> CustomerEntry | None:
        return next((e for e in self.entries if e.account == account), None)

    def all(self) -> list[CustomerEntry]:
        return list(self.entries)


class FakeResults:
    def __init__(self) -> None:
        self.published: list[Detail] = []
        self.fail_next = False

    def publish(self, details: Sequence[Detail]) -> None:
        if self.fail_next and details:
            self.fail_next = False
            raise RuntimeError("EventBridge unavailable")
        self.published += list(details)

    def of(self, kind: type[Detail]) -> list[Any]:
        return [d for d in self.published if isinstance(d, kind)]


class FakeChecks:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, int]] = []

    def schedule(self, messages: Sequence[tuple[BaseModel, int]]) -> None:
        self.sent += list(messages)

    def of(self, kind: type[BaseModel]) -> list[tuple[Any, int]]:
        return [(m, d) for m, d in self.sent if isinstance(m, kind)]


class FakeLedger:
    def __init__(self) -> None:
        self.reported: dict[str, set[str]] = {}
        self.launches: dict[str, dict[str, LaunchContext]] = {}
        self.restored: set[str] = set()
        self.relaunched: set[tuple[str, str]] = set()
        self.results: dict[str, dict[str, RecordedResult]] = {}
        self.loads = 0

    def load(self, job_id: str) -> JobLedger:
        self.loads += 1
        return JobLedger(
            reported=frozenset(self.reported.get(job_id, set())),
            launches=dict(self.launches.get(job_id, {})),
            restored=job_id in self.restored,
            results=dict(self.results.get(job_id, {})),
        )

    def record_launch(self, job_id: str, launches: Mapping[str, LaunchContext]) -> None:
        self.launches[job_id] = dict(launches)

    def mark_reported(
        self,
        job_id: str,
        source_server_ids: Sequence[str],
        results: Mapping[str, RecordedResult] | None = None,
    ) -> None:
        self.reported.setdefault(job_id, set()).update(source_server_ids)
        self.results.setdefault(job_id, {}).update(results or {})

    def claim_relaunch(self, job_id: str, source_server_ids: Sequence[str]) -> list[str]:
        claimed = [s for s in source_server_ids if (job_id, s) not in self.relaunched]
        self.relaunched |= {(job_id, s) for s in claimed}
        return claimed

    def mark_restored(self, job_id: str) -> bool:
        first = job_id not in self.restored
        self.restored.add(job_id)
        return first


class FakeBudget:
    """The quota budget with the DynamoDB semantics: holds counted once, FIFO queue."""

    def __init__(self) -> None:
        self.queue: dict[tuple[str, str], dict[str, LaunchBatch]] = {}
        self.claimed: set[str] = set()
        self.hold_items: dict[tuple[str, str], dict[str, Hold]] = {}
        self.peaks: Counter[str] = Counter()

    def enqueue(self, batch: LaunchBatch) -> bool:
        queue = self.queue.setdefault((batch.account, batch.region), {})
        if batch.batch_id in queue:
            return False
        queue[batch.batch_id] = batch
        return True

    def waiting(self, account: str, region: str) -> list[LaunchBatch]:
        batches = self.queue.get((account, region), {}).values()
        return sorted(batches, key=lambda b: (b.enqueued_at, b.batch_id))

    def claim(self, batch: LaunchBatch, now: datetime) -> bool:
        if batch.batch_id in self.claimed:
            return False
        self.claimed.add(batch.batch_id)
        return True

    def unclaim(self, batch: LaunchBatch) -> None:
        self.claimed.discard(batch.batch_id)

    def done(self, batch: LaunchBatch) -> None:
        self.queue.get((batch.account, batch.region), {}).pop(batch.batch_id, None)
        self.claimed.discard(batch.batch_id)

    def reserve(self, account: str, region: str, hold: Hold, limits: DrsLimits) -> bool:
        holds = self.hold_items.setdefault((account, region), {})
        if hold.hold_id in holds:
            return True
        servers = sum(h.servers for h in holds.values())
        if len(holds) >= limits.concurrent_jobs:
            return False
        if servers + hold.servers > limits.servers_in_active_jobs:
            return False
        holds[hold.hold_id] = hold
        self.peaks["jobs"] = max(self.peaks["jobs"], len(holds))
        self.peaks["servers"] = max(self.peaks["servers"], servers + hold.servers)
        return True

    def attach(self, account: str, region: str, hold_id: str, job_id: str) -> None:
        holds = self.hold_items.get((account, region), {})
        if hold_id in holds:
            holds[hold_id] = holds[hold_id].model_copy(update={"job_id": job_id})

    def release(self, account: str, region: str, hold_id: str, servers: int | None = None) -> bool:
        holds = self.hold_items.get((account, region), {})
        if hold_id not in holds or servers not in (None, holds[hold_id].servers):
            return False
        return holds.pop(hold_id) is not None

    def holds(self, account: str, region: str) -> list[Hold]:
        return list(self.hold_items.get((account, region), {}).values())

    def usage(self, account: str = ACCOUNT, region: str = DR) -> tuple[int, int]:
        holds = self.hold_items.get((account, region), {})
        return len(holds), sum(h.servers for h in holds.values())


class FakeOperations:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def _of(self, operation_id: str) -> dict[str, Any]:
        return self.records.setdefault(operation_id, {"jobs": {}})

    def load(self, operation_id: str) -> OperationRecords:
        data = self._of(operation_id)
        return OperationRecords(
            options=data.get("options"),
            jobs=sorted(data["jobs"].values(), key=lambda j: j.created_at),
            ended=data.get("ended"),
            teardown=data.get("teardown"),
            reprotect=data.get("reprotect"),
            results=list(data.get("results", {}).values()),
        )

    def record_results(self, operation_id: str, results: Sequence[RecordedResult]) -> None:
        kept = self._of(operation_id).setdefault("results", {})
        for result in results:
            kept[(result.wave, result.attempt, result.resource_id)] = result

    def save_options(self, options: OperationOptions) -> None:
        self._of(options.operation_id).setdefault("options", options)

    def record_job(self, operation_id: str, job: OpJob) -> None:
        self._of(operation_id)["jobs"][job.job_id] = job

    def mark_ended(self, operation_id: str, state: str, at: datetime) -> bool:
        data = self._of(operation_id)
        if "ended" in data:
            return False
        data["ended"] = state
        return True

    def put_teardown(self, record: TeardownRecord, *, new: bool = False) -> bool:
        data = self._of(record.operation_id)
        if new and "teardown" in data:
            return False
        data["teardown"] = record
        return True

    def put_reprotect(self, record: ReprotectRecord, *, new: bool = False) -> bool:
        data = self._of(record.operation_id)
        if new and "reprotect" in data:
            return False
        data["reprotect"] = record
        return True


class FakeQuotas:
    def __init__(self, limits: DrsLimits | None = None) -> None:
        self.value = limits or DrsLimits(
            servers_per_job=100, concurrent_jobs=20, servers_in_active_jobs=500
        )

    def limits(self, entry: CustomerEntry, region: str) -> DrsLimits:
        return self.value


class QuietLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.lines.append(("info", msg))

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.lines.append(("warning", msg))

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.lines.append(("error", msg))


class World:
    def __init__(self, *entries: CustomerEntry, limits: DrsLimits | None = None) -> None:
        self.clock = Clock()
        self.workloads = FakeWorkloads()
        self.results = FakeResults()
        self.checks = FakeChecks()
        self.ledger = FakeLedger()
        self.budget = FakeBudget()
        self.operations = FakeOperations()
        self.quotas = FakeQuotas(limits)
        self.log = QuietLog()
        self.registry = FakeRegistry(*(entries or (ACME,)))
        self.service = self.recovery()
        self.drills = Drills(
            registry=self.registry,
            workloads=self.workloads,
            results=self.results,
            checks=self.checks,
            log=self.log,
            budget=self.budget,
            operations=self.operations,
            quotas=self.quotas,
            now=self.clock,
        )
        self.protection = Reprotection(
            registry=self.registry,
            workloads=self.workloads,
            results=self.results,
            checks=self.checks,
            ledger=self.ledger,
            log=self.log,
            operations=self.operations,
            now=self.clock,
        )

    def recovery(self) -> DrsRecovery:
        """A DrsRecovery on the world's fakes (a second one plays another Lambda container)."""
        return DrsRecovery(
            registry=self.registry,
            workloads=self.workloads,
            results=self.results,
            checks=self.checks,
            ledger=self.ledger,
            log=self.log,
            budget=self.budget,
            operations=self.operations,
            quotas=self.quotas,
            batch_size=100,
            poll_backoff=(5, 10, 20, 40, 60),
            now=self.clock,
        )

    @property
    def drs(self) -> FakeWorkload:
        return self.workloads.get(ACME, DR)

    @property
    def primary(self) -> FakeWorkload:
        return self.workloads.get(ACME, PRIMARY)

    def failed_codes(self) -> dict[str, str]:
        return {f.resource_id: f.error_code for f in self.results.of(ResourceRecoveryFailed)}

    def options(self, operation_id: str = "op-000001", **changes: Any) -> None:
        self.operations.save_options(
            OperationOptions(
                operation_id=operation_id,
                customer="acme",
                environment="production",
                operation=changes.pop("operation", OperationType.FAILOVER),
                requested_at=T0,
                **changes,
            )
        )


def ref(instance_id: str, name: str | None = None, ip: str | None = None, **kw: Any) -> ResourceRef:
    return ResourceRef(
        resource_id=instance_id,
        arn=f"arn:aws:ec2:{PRIMARY}:{kw.get('account', ACCOUNT)}:instance/{instance_id}",
        name=name or f"srv-{instance_id}",
        account=kw.get("account", ACCOUNT),
        region=PRIMARY,
        dr_region=DR,
        private_ip=ip,
        rto_target_minutes=60,
        rpo_target_minutes=kw.get("rpo", 15),
    )


def part(*refs: ResourceRef, **kw: Any) -> WaveStarted:
    return WaveStarted(
        operation_id=kw.get("operation_id", "op-000001"),
        customer="acme",
        environment="production",
        operation=kw.get("operation", OperationType.FAILOVER),
        occurred_at=T0,
        wave=kw.get("wave", 1),
        strategy=kw.get("strategy", Strategy.DRS),
        part=kw.get("part", 1),
        part_count=1,
        attempt=kw.get("attempt", 1),
        resources=list(refs),
    )
