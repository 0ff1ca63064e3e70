"""AWS Elastic Disaster Recovery (`drs`) emulator. botocore's `drs` model is the truth for shapes;
the semantics follow the DRS user guide (see AWS-FACTS.md):

- State is kept per (account, region); DRS runs in the DR (recovery) region.
- Source servers are created the way the replication agent would, through the admin path
  `POST /_sandbox/drs/source-servers` (`DrsEmulator.register_source_servers`).
- `StartRecovery` creates a LAUNCH job (PENDING -> STARTED -> COMPLETED; jobs never FAIL): each
  participating server goes PENDING -> IN_PROGRESS -> LAUNCHED | FAILED after a duration drawn
  from the seeded RNG (`drs_launch_seconds`), failing with probability `drs_launch_failure_rate`.
  The quotas are those Service Quotas answers for the account+region (`QuotaStore`, shared with
  the Service Quotas emulator; defaults 100 servers per job - the model allows 200 -, 20
  concurrent jobs, 500 servers in active jobs): beyond them ServiceQuotaExceededException (402),
  and `quota_usage()` keeps the peaks admitted and the refusals. A server already in an active
  job answers ConflictException. `isDrill` makes a drill job (START_DRILL, drill recovery
  instances), launched with the same launch settings as a recovery.
- Launch into instance: with `launchIntoInstanceProperties.launchIntoEC2InstanceID`, the launch
  uses that EC2 instance (moto, same account and region). It must carry the tag
  `AWSDRS=AllowLaunchingIntoThisInstance` (else that server's launch FAILS with a rawError); it is
  started (launchDisposition STARTED) and keeps its own private IP. Otherwise a new EC2 instance
  is run in moto from the default version of the server's EC2 launch template (a real one,
  created with the source server): its subnet and security groups, its instance tags (plus the
  source server's tags with copyTags), the source IP with copyPrivateIp (which must lie in the
  subnet). The recovery instance ID is the EC2 instance ID. Terminating a recovery instance
  frees its private IP (EC2 does; moto keeps it taken).
- `ReverseReplication(recoveryInstanceID)` (servers that originate in another region of the
  account): the recovery instance becomes the source of a source server in the origin region
  (replicationDirection FAILBACK after a failover; the original one again after a failback,
  matched through `reversedDirectionSourceServerArn`, which both servers then name), whose
  replication goes INITIATING -> INITIAL_SYNC -> CONTINUOUS over one drawn duration; the
  replication of the reversed server stops (STOPPED). Drill recovery instances are refused.
- When a server's launch ends, the native event "DRS Source Server Launch Result" goes to the
  DEFAULT bus of that account+region (moto's events backend, so rules route it), dropped with
  probability `drop_native_event_rate` (EventBridge delivery of AWS events is best effort).
- One scheduler thread (a heap of due actions) drives every job.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import heapq
import ipaddress
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drcore import tags as tagnames

from . import Caller, Knobs
from .service_quotas import (
    DRS_MAX_CONCURRENT_JOBS,
    DRS_MAX_SERVERS_IN_ACTIVE_JOBS,
    DRS_MAX_SERVERS_PER_JOB,
    QuotaStore,
)
from .validation import RestJsonEmulator, ServiceError, iso_now, operation

log = logging.getLogger("sandbox.emulators.drs")

# Defaults; the values DRS holds an account + region to come from Service Quotas (QuotaStore).
MAX_SERVERS_PER_JOB = int(DRS_MAX_SERVERS_PER_JOB.default)
MAX_CONCURRENT_JOBS = int(DRS_MAX_CONCURRENT_JOBS.default)
MAX_SERVERS_IN_ACTIVE_JOBS = int(DRS_MAX_SERVERS_IN_ACTIVE_JOBS.default)
PAGE_SIZE_DEFAULT = 1000
LAUNCH_RESULT_DETAIL_TYPE = "DRS Source Server Launch Result"
NATIVE_SOURCE = "aws.drs"
DEFAULT_IMAGE = "ami-12c6146b"

ReplicationState = Literal[
    "STOPPED",
    "INITIATING",
    "INITIAL_SYNC",
    "BACKLOG",
    "CREATING_SNAPSHOT",
    "CONTINUOUS",
    "PAUSED",
    "RESCAN",
    "STALLED",
    "DISCONNECTED",
]
_NO_SNAPSHOT_YET = {"INITIATING", "INITIAL_SYNC"}
_EC2_STATES = {
    "pending": "PENDING",
    "running": "RUNNING",
    "stopping": "STOPPING",
    "stopped": "STOPPED",
    "shutting-down": "SHUTTING-DOWN",
    "terminated": "TERMINATED",
}


def _hex17() -> str:
    return secrets.token_hex(9)[:17]


def iso_duration(seconds: float) -> str:
    """Seconds as an ISO-8601 duration, the way DRS writes `lagDuration` ("PT30S")."""
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "") + "T"
    out += (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if secs or out.endswith("T"):
        out += f"{secs}S"
    return out


# --------------------------------------------------------------------------------------------
# Admin payload: source servers as the replication agent reports them


class DiskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_name: str = "/dev/sda1"
    bytes: int = Field(default=100 * 2**30, ge=0)


class SourceServerSpec(BaseModel):
    """One protected server as the DRS agent reports it."""

    model_config = ConfigDict(extra="forbid")

    instance_id: str = Field(pattern=r"^i-[0-9a-fA-F]{8,}$")
    hostname: str = Field(min_length=1, max_length=256)
    fqdn: str | None = None
    private_ip: str
    mac_address: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    os: str = "Microsoft Windows Server 2022 Datacenter"
    cpus: int = Field(default=2, ge=1)
    ram_bytes: int = Field(default=8 * 2**30, ge=0)
    disks: list[DiskSpec] = Field(default_factory=lambda: [DiskSpec()])
    recommended_instance_type: str = "m5.large"
    replication_state: ReplicationState = "CONTINUOUS"
    lag_seconds: float = Field(default=30, ge=0)
    origin_account: str | None = Field(default=None, pattern=r"^\d{12}$")
    origin_region: str | None = None
    origin_availability_zone: str | None = None

    @field_validator("private_ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        ipaddress.IPv4Address(value)
        return value


class SourceServersRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str = Field(pattern=r"^\d{12}$")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    source_servers: list[SourceServerSpec]


# --------------------------------------------------------------------------------------------
# The scheduler: one thread, a heap of due actions


class Scheduler:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_at(self, due: float, action: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), action))
            if self._thread is None or not self._thread.is_alive():
                self._stopped = False
                self._thread = threading.Thread(target=self._run, name="drs-scheduler", daemon=True)
                self._thread.start()
            self._cond.notify()

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, action = heapq.heappop(self._heap)
            try:
                action()
            except Exception:
                log.exception("scheduled DRS action failed")


# --------------------------------------------------------------------------------------------
# State


@dataclass
class _Launch:
    """The emulator's private plan for one server in one job."""

    source_server_id: str
    duration: float
    fails: bool
    done: bool = False


@dataclass
class _Job:
    record: dict[str, Any]
    log: list[dict[str, Any]] = field(default_factory=list)
    plans: dict[str, _Launch] = field(default_factory=dict)
    generation: int = 0

    @property
    def active(self) -> bool:
        return self.record["status"] != "COMPLETED"


@dataclass
class _RegionState:
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    launch_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, _Job] = field(default_factory=dict)
    recovery: dict[str, dict[str, Any]] = field(default_factory=dict)


def _page(items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str | None]:
    token = params.get("nextToken")
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError:
            raise ServiceError(
                "ValidationException", f"Invalid nextToken '{token}'", reason="other"
            ) from None
    size = min(int(params.get("maxResults") or PAGE_SIZE_DEFAULT), PAGE_SIZE_DEFAULT)
    chunk = items[start : start + size]
    more = start + size < len(items)
    next_token = base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else None
    return chunk, next_token


def _ec2_backend(account: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account][region]


def _events_backend(account: str, region: str) -> Any:
    from moto.events.models import events_backends

    return events_backends[account][region]


class LaunchFailure(Exception):
    """One server's launch fails; the message is the job log's rawError."""


class DrsEmulator(RestJsonEmulator):
    service_name = "drs"

    def __init__(self, knobs: Knobs, quotas: QuotaStore | None = None) -> None:
        super().__init__(knobs)
        self.quotas = quotas or QuotaStore()
        self._lock = threading.RLock()
        self._state: dict[tuple[str, str], _RegionState] = {}
        self._scheduler = Scheduler()
        self._generation = 0
        self._usage: dict[tuple[str, str], dict[str, int]] = {}

    # -- lifecycle

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self._state.clear()
            self._scheduler.clear()
            self._usage.clear()

    def close(self) -> None:
        self._scheduler.stop()

    def launch_plans(self) -> list[dict[str, Any]]:
        """Every launch the emulator planned: its drawn duration, outcome and job tags. Read by
        the benchmark to know the critical path the emulated DRS imposed."""
        with self._lock:
            return [
                {
                    "account": account,
                    "region": region,
                    "job_id": job_id,
                    "source_server_id": plan.source_server_id,
                    "duration_seconds": plan.duration,
                    "fails": plan.fails,
                    "created_at": job.record["creationDateTime"],
                    "tags": dict(job.record.get("tags", {})),
                }
                for (account, region), state in self._state.items()
                for job_id, job in state.jobs.items()
                for plan in job.plans.values()
            ]

    def handle(self, request: Any, caller: Caller) -> Any:
        with self._lock:
            return super().handle(request, caller)

    def _region(self, account: str, region: str) -> _RegionState:
        return self._state.setdefault((account, region), _RegionState())

    @staticmethod
    def _arn(caller_region: str, account: str, kind: str, ident: str) -> str:
        return f"arn:aws:drs:{caller_region}:{account}:{kind}/{ident}"

    # -- admin: source servers as the agent reports them

    def register_source_servers(self, payload: SourceServersRequest) -> list[str]:
        """Create (or refresh, matched by awsInstanceID) source servers; returns their IDs."""
        ids = []
        with self._lock:
            state = self._region(payload.account, payload.region)
            by_instance = {
                s["sourceProperties"]["identificationHints"]["awsInstanceID"]: sid
                for sid, s in state.servers.items()
            }
            for spec in payload.source_servers:
                sid = by_instance.get(spec.instance_id) or f"s-{_hex17()}"
                existing = state.servers.get(sid)
                record = self._source_server_record(payload, spec, sid, existing)
                state.servers[sid] = record
                if sid not in state.launch_configs:
                    state.launch_configs[sid] = self._new_launch_config(
                        payload.account,
                        payload.region,
                        sid,
                        spec.hostname,
                        spec.recommended_instance_type,
                    )
                by_instance[spec.instance_id] = sid
                ids.append(sid)
        return ids

    @staticmethod
    def _new_launch_config(
        account: str, region: str, sid: str, hostname: str, instance_type: str
    ) -> dict[str, Any]:
        """The launch settings DRS creates with a source server, and its EC2 launch template
        (a real one, in the recovery region: a standard launch uses its default version)."""
        template = _ec2_backend(account, region).create_launch_template(
            f"drs-launch-template-{sid}",
            f"AWS Elastic Disaster Recovery launch template of {sid}",
            {"InstanceType": instance_type},
            {},
        )
        return {
            "sourceServerID": sid,
            "name": hostname[:128],
            "ec2LaunchTemplateID": template.id,
            "launchDisposition": "STARTED",
            "targetInstanceTypeRightSizingMethod": "BASIC",
            "copyPrivateIp": False,
            "copyTags": False,
            "licensing": {"osByol": True},
            "postLaunchEnabled": False,
        }

    def _source_server_record(
        self,
        payload: SourceServersRequest,
        spec: SourceServerSpec,
        sid: str,
        existing: dict[str, Any] | None,
    ) -> dict[str, Any]:
        now = iso_now()
        origin_region = spec.origin_region or payload.region
        disks = [{"deviceName": d.device_name, "bytes": d.bytes} for d in spec.disks]
        record: dict[str, Any] = {
            "sourceServerID": sid,
            "arn": self._arn(payload.region, payload.account, "source-server", sid),
            "tags": dict(spec.tags),
            "lastLaunchResult": "NOT_STARTED",
            "dataReplicationInfo": {
                "dataReplicationState": spec.replication_state,
                "lagDuration": iso_duration(spec.lag_seconds),
                "replicatedDisks": [
                    {
                        "deviceName": d.device_name,
                        "totalStorageBytes": d.bytes,
                        "replicatedStorageBytes": d.bytes,
                        "rescannedStorageBytes": 0,
                        "backloggedStorageBytes": 0,
                    }
                    for d in spec.disks
                ],
                "stagingAvailabilityZone": f"{payload.region}a",
            },
            "lifeCycle": {
                "addedToServiceDateTime": now,
                "firstByteDateTime": now,
                "lastSeenByServiceDateTime": now,
                "elapsedReplicationDuration": "PT0S",
            },
            "sourceProperties": {
                "lastUpdatedDateTime": now,
                "recommendedInstanceType": spec.recommended_instance_type,
                "identificationHints": {
                    "awsInstanceID": spec.instance_id,
                    "hostname": spec.hostname,
                    "fqdn": spec.fqdn or spec.hostname,
                },
                "networkInterfaces": [
                    {
                        "ips": [spec.private_ip],
                        "isPrimary": True,
                        "macAddress": spec.mac_address or _mac(spec.instance_id),
                    }
                ],
                "disks": disks,
                "cpus": [{"cores": spec.cpus, "modelName": "Intel(R) Xeon(R) Platinum 8259CL"}],
                "ramBytes": spec.ram_bytes,
                "os": {"fullString": spec.os},
                "supportsNitroInstances": True,
                "architecture": "x86_64",
            },
            "stagingArea": {"status": "NOT_EXTENDED"},
            "sourceCloudProperties": {
                "originAccountID": spec.origin_account or payload.account,
                "originRegion": origin_region,
                "originAvailabilityZone": spec.origin_availability_zone or f"{origin_region}a",
            },
            "replicationDirection": "FAILOVER",
            "agentVersion": "4.7.0",
        }
        if existing is not None:
            # The agent refreshes what it reports; launch history stays.
            record["lifeCycle"] = {**existing["lifeCycle"], "lastSeenByServiceDateTime": now}
            for key in ("lastLaunchResult", "recoveryInstanceId"):
                if key in existing:
                    record[key] = existing[key]
        return record

    def source_server_count(self) -> int:
        with self._lock:
            return sum(len(s.servers) for s in self._state.values())

    # -- helpers

    def _server(self, state: _RegionState, sid: str) -> dict[str, Any]:
        server = state.servers.get(sid)
        if server is None:
            raise ServiceError(
                "ResourceNotFoundException",
                f"Source server {sid} not found",
                resourceId=sid,
                resourceType="SOURCE_SERVER",
            )
        return server

    def _active_jobs(self, state: _RegionState) -> list[_Job]:
        return [job for job in state.jobs.values() if job.active]

    def _busy_servers(self, state: _RegionState) -> dict[str, str]:
        busy = {}
        for job in self._active_jobs(state):
            for sid, plan in job.plans.items():
                if not plan.done:
                    busy[sid] = job.record["jobID"]
        return busy

    def _log(self, job: _Job, event: str, **data: Any) -> None:
        item: dict[str, Any] = {"logDateTime": iso_now(), "event": event}
        if data:
            item["eventData"] = data
        job.log.append(item)

    def quota_limits(self, account: str, region: str) -> tuple[int, int, int]:
        """(servers per job, concurrent jobs, servers in all active jobs) of an account + region:
        the values Service Quotas answers for it."""
        return (
            self.quotas.value(account, region, DRS_MAX_SERVERS_PER_JOB),
            self.quotas.value(account, region, DRS_MAX_CONCURRENT_JOBS),
            self.quotas.value(account, region, DRS_MAX_SERVERS_IN_ACTIVE_JOBS),
        )

    def _quota_check(self, caller: Caller, state: _RegionState, count: int) -> None:
        per_job, concurrent, in_all = self.quota_limits(caller.account, caller.region)
        active = self._active_jobs(state)
        in_jobs = len(self._busy_servers(state))
        refusal: ServiceError | None = None
        if count > per_job:
            refusal = ServiceError(
                "ServiceQuotaExceededException",
                f"Request contains {count} source servers; a single job can launch at most "
                f"{per_job}.",
                serviceCode="drs",
                resourceType="SOURCE_SERVER",
                quotaCode=DRS_MAX_SERVERS_PER_JOB.code,
            )
        elif len(active) >= concurrent:
            refusal = ServiceError(
                "ServiceQuotaExceededException",
                f"{len(active)} jobs are active; at most {concurrent} may run at once.",
                serviceCode="drs",
                resourceType="JOB",
                quotaCode=DRS_MAX_CONCURRENT_JOBS.code,
            )
        elif in_jobs + count > in_all:
            refusal = ServiceError(
                "ServiceQuotaExceededException",
                f"{in_jobs} source servers are in active jobs; adding {count} would exceed "
                f"{in_all}.",
                serviceCode="drs",
                resourceType="SOURCE_SERVER",
                quotaCode=DRS_MAX_SERVERS_IN_ACTIVE_JOBS.code,
            )
        usage = self._usage.setdefault(
            (caller.account, caller.region),
            {"peak_jobs": 0, "peak_servers_in_jobs": 0, "largest_job": 0, "refusals": 0},
        )
        if refusal is not None:
            usage["refusals"] += 1
            raise refusal
        usage["peak_jobs"] = max(usage["peak_jobs"], len(active) + 1)
        usage["peak_servers_in_jobs"] = max(usage["peak_servers_in_jobs"], in_jobs + count)
        usage["largest_job"] = max(usage["largest_job"], count)

    def quota_usage(self) -> dict[str, dict[str, int]]:
        """Per "account/region": the peaks of concurrent jobs, servers in active jobs and job
        size this emulator admitted, and how many requests it refused over a quota."""
        with self._lock:
            return {f"{a}/{r}": dict(u) for (a, r), u in sorted(self._usage.items())}

    # -- source servers and launch configuration

    @operation("InitializeService")
    def initialize_service(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        self._region(caller.account, caller.region)
        return {}

    @operation("DescribeSourceServers")
    def describe_source_servers(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._region(caller.account, caller.region)
        filters = params.get("filters") or {}
        wanted = set(filters.get("sourceServerIDs") or [])
        staging = set(filters.get("stagingAccountIDs") or [])
        items = [
            copy.deepcopy(s)
            for sid, s in state.servers.items()
            if (not wanted or sid in wanted)
            and (not staging or s["sourceCloudProperties"]["originAccountID"] in staging)
            and (not filters.get("hardwareId"))
        ]
        page, token = _page(items, params)
        out: dict[str, Any] = {"items": page}
        if token:
            out["nextToken"] = token
        return out

    @operation("GetLaunchConfiguration")
    def get_launch_configuration(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._region(caller.account, caller.region)
        self._server(state, params["sourceServerID"])
        return copy.deepcopy(state.launch_configs[params["sourceServerID"]])

    @operation("UpdateLaunchConfiguration")
    def update_launch_configuration(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._region(caller.account, caller.region)
        sid = params["sourceServerID"]
        self._server(state, sid)
        if sid in self._busy_servers(state):
            raise ServiceError(
                "ConflictException",
                f"Source server {sid} is in an active job",
                resourceId=sid,
                resourceType="SOURCE_SERVER",
            )
        config = copy.deepcopy(state.launch_configs[sid])
        for key, value in params.items():
            if key != "sourceServerID":
                config[key] = value
        target = (config.get("launchIntoInstanceProperties") or {}).get("launchIntoEC2InstanceID")
        if "launchIntoInstanceProperties" in params and not target:
            config.pop("launchIntoInstanceProperties", None)
        if target:
            self._check_launch_into_target(caller, state, sid, target)
            if config.get("copyPrivateIp") or config.get("copyTags"):
                raise ServiceError(
                    "ValidationException",
                    "copyPrivateIp and copyTags must be false when "
                    "launchIntoInstanceProperties.launchIntoEC2InstanceID is set",
                    reason="fieldValidationFailed",
                    fieldList=[
                        {"name": "copyPrivateIp", "message": "must be false for launch into"},
                        {"name": "copyTags", "message": "must be false for launch into"},
                    ],
                )
        state.launch_configs[sid] = config
        return copy.deepcopy(config)

    def _check_launch_into_target(
        self, caller: Caller, state: _RegionState, sid: str, target: str
    ) -> None:
        member = "launchIntoInstanceProperties.launchIntoEC2InstanceID"
        instance = _find_instance(caller.account, caller.region, target)
        if instance is None or instance._state.name == "terminated":
            message = (
                f"Value '{target}' at '{member}' failed to satisfy constraint: EC2 instance "
                f"{target} does not exist in account {caller.account} region {caller.region}"
            )
            raise ServiceError(
                "ValidationException",
                message,
                reason="fieldValidationFailed",
                fieldList=[{"name": member, "message": message}],
            )
        for other, config in state.launch_configs.items():
            other_target = (config.get("launchIntoInstanceProperties") or {}).get(
                "launchIntoEC2InstanceID"
            )
            if other != sid and other_target == target:
                message = (
                    f"Value '{target}' at '{member}' failed to satisfy constraint: EC2 instance "
                    f"{target} is already the launch target of source server {other}"
                )
                raise ServiceError(
                    "ValidationException",
                    message,
                    reason="fieldValidationFailed",
                    fieldList=[{"name": member, "message": message}],
                )

    # -- recovery

    @operation("StartRecovery")
    def start_recovery(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._region(caller.account, caller.region)
        wanted = [entry["sourceServerID"] for entry in params["sourceServers"]]
        problems: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        for index, sid in enumerate(wanted):
            member = f"sourceServers[{index}].sourceServerID"
            if sid not in state.servers:
                problems.append((member, sid, "source server does not exist"))
            elif sid in seen:
                problems.append((member, sid, "source server is listed more than once"))
            seen.add(sid)
        if problems:
            raise ServiceError(
                "ValidationException",
                "; ".join(
                    f"Value '{sid}' at '{member}' failed to satisfy constraint: {why}"
                    for member, sid, why in problems
                ),
                reason="fieldValidationFailed",
                fieldList=[
                    {"name": member, "message": f"{sid}: {why}"} for member, sid, why in problems
                ],
            )
        busy = self._busy_servers(state)
        for sid in wanted:
            if sid in busy:
                raise ServiceError(
                    "ConflictException",
                    f"Source server {sid} is already participating in active job {busy[sid]}",
                    resourceId=sid,
                    resourceType="SOURCE_SERVER",
                )
        self._quota_check(caller, state, len(wanted))
        drill = bool(params.get("isDrill"))
        job = self._new_job(
            caller,
            state,
            initiated_by="START_DRILL" if drill else "START_RECOVERY",
            job_type="LAUNCH",
            tags=params.get("tags") or {},
            servers=wanted,
        )
        job.record["isDrill"] = drill  # private; stripped on output
        now = iso_now()
        for sid in wanted:
            server = state.servers[sid]
            server["lastLaunchResult"] = "PENDING"
            server["lifeCycle"]["lastLaunch"] = {
                "initiated": {
                    "apiCallDateTime": now,
                    "jobID": job.record["jobID"],
                    "type": "DRILL" if drill else "RECOVERY",
                },
                "status": "PENDING",
            }
        self._schedule_job(caller, job)
        return {"job": _public_job(job)}

    def _new_job(
        self,
        caller: Caller,
        state: _RegionState,
        *,
        initiated_by: str,
        job_type: str,
        tags: dict[str, str],
        servers: list[str],
        recovery_ids: dict[str, str] | None = None,
    ) -> _Job:
        job_id = f"drsjob-{_hex17()}"
        participating = []
        for sid in servers:
            entry: dict[str, Any] = {"sourceServerID": sid, "launchStatus": "PENDING"}
            if recovery_ids and sid in recovery_ids:
                entry["recoveryInstanceID"] = recovery_ids[sid]
            participating.append(entry)
        record = {
            "jobID": job_id,
            "arn": self._arn(caller.region, caller.account, "job", job_id),
            "type": job_type,
            "initiatedBy": initiated_by,
            "creationDateTime": iso_now(),
            "status": "PENDING",
            "participatingServers": participating,
            "tags": dict(tags),
        }
        job = _Job(record=record, generation=self._generation)
        for sid in servers:
            job.plans[sid] = _Launch(
                source_server_id=sid,
                duration=self.knobs.launch_seconds(),
                fails=job_type == "LAUNCH" and self.knobs.launch_fails(),
            )
        state.jobs[job_id] = job
        return job

    def _schedule_job(self, caller: Caller, job: _Job) -> None:
        start = time.monotonic()
        self._scheduler.call_at(start, functools.partial(self._job_started, caller, job))
        for plan in job.plans.values():
            sid = plan.source_server_id
            self._scheduler.call_at(
                start + plan.duration / 2,
                functools.partial(self._server_in_progress, caller, job, sid),
            )
            self._scheduler.call_at(
                start + plan.duration, functools.partial(self._server_finished, caller, job, sid)
            )

    def _current(self, job: _Job) -> bool:
        return job.generation == self._generation

    def _participant(self, job: _Job, sid: str) -> dict[str, Any]:
        return next(p for p in job.record["participatingServers"] if p["sourceServerID"] == sid)

    def _job_started(self, caller: Caller, job: _Job) -> None:
        with self._lock:
            if not self._current(job) or job.record["status"] != "PENDING":
                return
            job.record["status"] = "STARTED"
            self._log(job, "JOB_START")
            if job.record["type"] != "LAUNCH":
                return
            state = self._region(caller.account, caller.region)
            for sid in job.plans:
                self._log(job, "SNAPSHOT_START", sourceServerID=sid)
                server = state.servers.get(sid)
                replication = (server or {}).get("dataReplicationInfo", {})
                if replication.get("dataReplicationState") in _NO_SNAPSHOT_YET:
                    continue
                self._log(job, "SNAPSHOT_END", sourceServerID=sid)
                self._log(job, "CONVERSION_START", sourceServerID=sid)

    def _server_in_progress(self, caller: Caller, job: _Job, sid: str) -> None:
        with self._lock:
            if not self._current(job):
                return
            participant = self._participant(job, sid)
            if participant["launchStatus"] != "PENDING":
                return
            participant["launchStatus"] = "IN_PROGRESS"
            if job.record["type"] == "LAUNCH":
                self._log(job, "CONVERSION_END", sourceServerID=sid)
                state = self._region(caller.account, caller.region)
                target = (
                    state.launch_configs.get(sid, {}).get("launchIntoInstanceProperties") or {}
                ).get("launchIntoEC2InstanceID")
                if target:
                    self._log(job, "LAUNCH_START", sourceServerID=sid, targetInstanceID=target)
                else:
                    self._log(job, "LAUNCH_START", sourceServerID=sid)
                server = state.servers.get(sid)
                if server and "lastLaunch" in server["lifeCycle"]:
                    server["lifeCycle"]["lastLaunch"]["status"] = "IN_PROGRESS"
            else:
                self._log(job, "CLEANUP_START", sourceServerID=sid)

    def _server_finished(self, caller: Caller, job: _Job, sid: str) -> None:
        event: dict[str, Any] | None = None
        with self._lock:
            if not self._current(job):
                return
            plan = job.plans[sid]
            if plan.done:
                return
            if job.record["status"] == "PENDING":
                self._job_started(caller, job)
            if self._participant(job, sid)["launchStatus"] == "PENDING":
                self._server_in_progress(caller, job, sid)
            plan.done = True
            if job.record["type"] == "LAUNCH":
                event = self._finish_launch(caller, job, sid, plan)
            else:
                self._finish_termination(caller, job, sid)
            if all(p.done for p in job.plans.values()):
                job.record["status"] = "COMPLETED"
                job.record["endDateTime"] = iso_now()
                self._log(job, "JOB_END")
        if event is not None:
            self._publish(caller, event)

    def _finish_launch(
        self, caller: Caller, job: _Job, sid: str, plan: _Launch
    ) -> dict[str, Any] | None:
        state = self._region(caller.account, caller.region)
        server = state.servers.get(sid)
        participant = self._participant(job, sid)
        drill = bool(job.record.get("isDrill"))
        if server is None:
            participant["launchStatus"] = "FAILED"
            self._log(job, "LAUNCH_FAILED", sourceServerID=sid, rawError="Source server deleted")
            return None
        config = state.launch_configs.get(sid, {})
        try:
            replication = server["dataReplicationInfo"]["dataReplicationState"]
            if replication in _NO_SNAPSHOT_YET:
                raise LaunchFailure(
                    f"Source server {sid} has no point-in-time snapshot yet "
                    f"(data replication state {replication})"
                )
            if plan.fails:
                raise LaunchFailure(
                    "Failed to launch recovery instance: Insufficient capacity "
                    "(sandbox fault injection: drs_launch_failure_rate)"
                )
            instance = self._launch_instance(caller, state, job, server, config)
        except LaunchFailure as failure:
            participant["launchStatus"] = "FAILED"
            participant.pop("recoveryInstanceID", None)
            self._log(job, "LAUNCH_FAILED", sourceServerID=sid, rawError=str(failure))
            server["lastLaunchResult"] = "FAILED"
            if "lastLaunch" in server["lifeCycle"]:
                server["lifeCycle"]["lastLaunch"]["status"] = "FAILED"
            state_name = "DRILL_LAUNCH_FAILED" if drill else "RECOVERY_LAUNCH_FAILED"
        else:
            participant["launchStatus"] = "LAUNCHED"
            participant["recoveryInstanceID"] = instance.id
            server["lastLaunchResult"] = "SUCCEEDED"
            server["recoveryInstanceId"] = instance.id
            if "lastLaunch" in server["lifeCycle"]:
                server["lifeCycle"]["lastLaunch"]["status"] = "LAUNCHED"
            state.recovery[instance.id] = self._recovery_record(
                caller, job, server, config, instance
            )
            state_name = "DRILL_LAUNCH_SUCCEEDED" if drill else "RECOVERY_LAUNCH_SUCCEEDED"
        return {
            "Source": NATIVE_SOURCE,
            "DetailType": LAUNCH_RESULT_DETAIL_TYPE,
            "Resources": [server["arn"]],
            "Detail": json.dumps({"state": state_name, "job-id": job.record["jobID"]}),
        }

    def _launch_instance(
        self,
        caller: Caller,
        state: _RegionState,
        job: _Job,
        server: dict[str, Any],
        config: dict[str, Any],
    ) -> Any:
        ec2 = _ec2_backend(caller.account, caller.region)
        sid = server["sourceServerID"]
        target = (config.get("launchIntoInstanceProperties") or {}).get("launchIntoEC2InstanceID")
        previous = server.get("recoveryInstanceId")
        if target:
            instance = _find_instance(caller.account, caller.region, target)
            if instance is None or instance._state.name == "terminated":
                raise LaunchFailure(
                    f"Launch into instance failed: EC2 instance {target} does not exist in "
                    f"{caller.region}"
                )
            tags = ec2.tags.get(target, {})
            if tags.get(tagnames.DRS_LAUNCH_INTO) != tagnames.DRS_LAUNCH_INTO_VALUE:
                raise LaunchFailure(
                    f"Launch into instance failed: EC2 instance {target} does not have the tag "
                    f"{tagnames.DRS_LAUNCH_INTO}={tagnames.DRS_LAUNCH_INTO_VALUE}, required to "
                    "launch into an existing instance"
                )
            disposition = config.get("launchDisposition", "STARTED")
            name = instance._state.name
            if disposition == "STARTED" and name in ("stopped", "stopping"):
                ec2.start_instances([target])
            elif disposition == "STOPPED" and name in ("running", "pending"):
                ec2.stop_instances([target])
            self._replace_previous(caller, state, previous, keep=target)
            return instance
        source_ip = server["sourceProperties"]["networkInterfaces"][0]["ips"][0]
        # A standard launch follows the default version of the server's EC2 launch template:
        # network (subnet, security groups), tags; the instance type when right-sizing is off.
        template_id = config.get("ec2LaunchTemplateID")
        template = _template_data(ec2, template_id)
        nic = (template.get("NetworkInterfaces") or [{}])[0]
        sized = config.get("targetInstanceTypeRightSizingMethod", "BASIC") != "NONE"
        kwargs: dict[str, Any] = {
            "instance_type": (None if sized else template.get("InstanceType"))
            or server["sourceProperties"].get("recommendedInstanceType")
            or "m5.large",
            "is_instance_type_default": False,
            "region_name": caller.region,
        }
        instance_tags = _template_tags(template, "instance")
        if config.get("copyTags"):
            instance_tags = {**server.get("tags", {}), **instance_tags}
        if instance_tags:
            kwargs["tags"] = {"instance": instance_tags}
        private_ip = source_ip if config.get("copyPrivateIp") else None
        subnet_id = nic.get("SubnetId")
        if subnet_id:
            subnet = next((n for n in ec2.describe_subnets() if n.id == subnet_id), None)
            if subnet is None:
                raise LaunchFailure(
                    f"Subnet {subnet_id} of launch template {template_id} does not exist"
                )
            network = ipaddress.IPv4Network(subnet.cidr_block)
            if private_ip and ipaddress.IPv4Address(private_ip) not in network:
                raise LaunchFailure(
                    f"copyPrivateIp: {private_ip} is not in {network}, the CIDR of subnet "
                    f"{subnet_id} (launch template {template_id})"
                )
        else:
            subnet = _subnet_for(ec2, private_ip)
        if subnet is not None:
            kwargs["subnet_id"] = subnet.id
        if private_ip:
            kwargs["private_ip"] = private_ip
        groups = nic.get("Groups") or template.get("SecurityGroupIds") or []
        if groups:
            kwargs["security_group_ids"] = list(groups)
        image = _image_for(ec2, server["sourceProperties"].get("os", {}).get("fullString", ""))
        try:
            reservation = ec2.run_instances(image, 1, None, [], **kwargs)
        except Exception as err:
            raise LaunchFailure(f"RunInstances failed: {err}") from None
        instance = reservation.instances[0]
        if config.get("launchDisposition") == "STOPPED":
            ec2.stop_instances([instance.id])
        self._replace_previous(caller, state, previous, keep=instance.id)
        log.debug("standard launch of %s as %s", sid, instance.id)
        return instance

    def _replace_previous(
        self, caller: Caller, state: _RegionState, previous: str | None, keep: str
    ) -> None:
        """A new launch replaces the server's previous recovery instance (DRS terminates it),
        unless that instance is the launch-into target itself."""
        if not previous or previous == keep:
            return
        record = state.recovery.pop(previous, None)
        if record is None:
            return
        target = (
            state.launch_configs.get(record["sourceServerID"], {}).get(
                "launchIntoInstanceProperties"
            )
            or {}
        ).get("launchIntoEC2InstanceID")
        if previous != target:
            _terminate_quietly(caller.account, caller.region, previous)

    def _recovery_record(
        self,
        caller: Caller,
        job: _Job,
        server: dict[str, Any],
        config: dict[str, Any],
        instance: Any,
    ) -> dict[str, Any]:
        tags = dict(job.record.get("tags") or {})
        if config.get("copyTags"):
            tags = {**server.get("tags", {}), **tags}
        props = server["sourceProperties"]
        origin = server["sourceCloudProperties"]
        return {
            "recoveryInstanceID": instance.id,
            "ec2InstanceID": instance.id,
            "jobID": job.record["jobID"],
            "sourceServerID": server["sourceServerID"],
            "arn": self._arn(caller.region, caller.account, "recovery-instance", instance.id),
            "tags": tags,
            "isDrill": bool(job.record.get("isDrill")),
            "pointInTimeSnapshotDateTime": job.record["creationDateTime"],
            "originEnvironment": "AWS",
            "originAvailabilityZone": origin.get("originAvailabilityZone"),
            "failback": {"state": "FAILBACK_NOT_STARTED"},
            "recoveryInstanceProperties": {
                "lastUpdatedDateTime": iso_now(),
                "identificationHints": {
                    "awsInstanceID": instance.id,
                    "hostname": props["identificationHints"].get("hostname", ""),
                    "fqdn": props["identificationHints"].get("fqdn", ""),
                },
                "networkInterfaces": [],  # filled live from EC2 on describe
                "cpus": copy.deepcopy(props.get("cpus", [])),
                "ramBytes": props.get("ramBytes", 0),
                "os": copy.deepcopy(props.get("os", {})),
                "disks": [
                    {"internalDeviceName": d["deviceName"], "bytes": d["bytes"]}
                    for d in props.get("disks", [])
                ],
            },
            "agentVersion": "4.7.0",
        }

    def _publish(self, caller: Caller, event: dict[str, Any]) -> None:
        if self.knobs.drop_native_event():
            log.info("dropped native event (drop_native_event_rate): %s", event["Detail"])
            return
        try:
            result = _events_backend(caller.account, caller.region).put_events(
                [{**event, "Time": time.time()}]
            )
            if result and "ErrorCode" in result[0]:
                log.warning("native event not accepted: %s", result[0])
        except Exception:
            log.exception("could not put native DRS event")

    # -- jobs

    @operation("DescribeJobs")
    def describe_jobs(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._region(caller.account, caller.region)
        filters = params.get("filters") or {}
        wanted = set(filters.get("jobIDs") or [])
        low = _parse_time(filters.get("fromDate"))
        high = _parse_time(filters.get("toDate"))
        items = []
        for job_id, job in state.jobs.items():
            if wanted and job_id not in wanted:
                continue
            created = _parse_time(job.record["creationDateTime"])
            assert created is not None
            if (low and created < low) or (high and created > high):
                continue
            items.append(_public_job(job))
        page, token = _page(items, params)
        out: dict[str, Any] = {"items": page}
        if token:
            out["nextToken"] = token
        return out

    @operation("DescribeJobLogItems")
    def describe_job_log_items(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._region(caller.account, caller.region)
        job = state.jobs.get(params["jobID"])
        items = copy.deepcopy(job.log) if job else []
        page, token = _page(items, params)
        out: dict[str, Any] = {"items": page}
        if token:
            out["nextToken"] = token
        return out

    # -- recovery instances

    @operation("DescribeRecoveryInstances")
    def describe_recovery_instances(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._region(caller.account, caller.region)
        filters = params.get("filters") or {}
        ids = set(filters.get("recoveryInstanceIDs") or [])
        sources = set(filters.get("sourceServerIDs") or [])
        ec2 = _ec2_backend(caller.account, caller.region)
        items = []
        for rid, record in state.recovery.items():
            if (ids and rid not in ids) or (sources and record["sourceServerID"] not in sources):
                continue
            items.append(_live_recovery(record, ec2))
        page, token = _page(items, params)
        out: dict[str, Any] = {"items": page}
        if token:
            out["nextToken"] = token
        return out

    @operation("TerminateRecoveryInstances")
    def terminate_recovery_instances(
        self, caller: Caller, params: dict[str, Any]
    ) -> dict[str, Any]:
        state = self._region(caller.account, caller.region)
        ids = params["recoveryInstanceIDs"]
        unknown = [(i, rid) for i, rid in enumerate(ids) if rid not in state.recovery]
        if unknown:
            raise ServiceError(
                "ValidationException",
                "; ".join(
                    f"Value '{rid}' at 'recoveryInstanceIDs[{i}]' failed to satisfy constraint: "
                    "recovery instance does not exist"
                    for i, rid in unknown
                ),
                reason="fieldValidationFailed",
                fieldList=[
                    {"name": f"recoveryInstanceIDs[{i}]", "message": f"{rid} does not exist"}
                    for i, rid in unknown
                ],
            )
        by_server = {state.recovery[rid]["sourceServerID"]: rid for rid in ids}
        busy = self._busy_servers(state)
        for sid in by_server:
            if sid in busy:
                raise ServiceError(
                    "ConflictException",
                    f"Source server {sid} is participating in active job {busy[sid]}",
                    resourceId=sid,
                    resourceType="SOURCE_SERVER",
                )
        self._quota_check(caller, state, len(by_server))
        job = self._new_job(
            caller,
            state,
            initiated_by="TERMINATE_RECOVERY_INSTANCES",
            job_type="TERMINATE",
            tags={},
            servers=list(by_server),
            recovery_ids=by_server,
        )
        self._schedule_job(caller, job)
        return {"job": _public_job(job)}

    def _finish_termination(self, caller: Caller, job: _Job, sid: str) -> None:
        state = self._region(caller.account, caller.region)
        participant = self._participant(job, sid)
        rid = participant.get("recoveryInstanceID")
        if rid:
            state.recovery.pop(rid, None)
            _terminate_quietly(caller.account, caller.region, rid)
        server = state.servers.get(sid)
        if server is not None and server.get("recoveryInstanceId") == rid:
            server.pop("recoveryInstanceId", None)
        participant["launchStatus"] = "TERMINATED"
        self._log(job, "CLEANUP_END", sourceServerID=sid)

    # -- reverse replication (failback of servers that originate in another AWS region)

    @operation("ReverseReplication")
    def reverse_replication(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._region(caller.account, caller.region)
        rid = params["recoveryInstanceID"]
        record = state.recovery.get(rid)
        if record is None:
            raise ServiceError(
                "ResourceNotFoundException",
                f"Recovery instance {rid} not found",
                resourceId=rid,
                resourceType="RECOVERY_INSTANCE",
            )
        if record.get("isDrill"):
            raise ServiceError(
                "ValidationException",
                f"Recovery instance {rid} was launched by a drill: replication can only be "
                "reversed for a recovery instance",
                reason="other",
            )
        sid = record["sourceServerID"]
        server = self._server(state, sid)
        busy = self._busy_servers(state)
        if sid in busy:
            raise ServiceError(
                "ConflictException",
                f"Source server {sid} is participating in active job {busy[sid]}",
                resourceId=sid,
                resourceType="SOURCE_SERVER",
            )
        instance = _find_instance(caller.account, caller.region, record["ec2InstanceID"])
        if instance is None or instance._state.name in ("terminated", "shutting-down"):
            raise ServiceError(
                "ValidationException",
                f"EC2 instance {record['ec2InstanceID']} of recovery instance {rid} is not "
                "available",
                reason="other",
            )
        origin = server["sourceCloudProperties"]
        target_region = origin.get("originRegion")
        if origin.get("originAccountID") != caller.account or target_region in (
            None,
            caller.region,
        ):
            raise ServiceError(
                "ValidationException",
                f"Source server {sid} did not originate in another region of account "
                f"{caller.account}: its replication cannot be reversed here",
                reason="other",
            )
        target_state = self._region(caller.account, target_region)
        reversed_server = self._by_arn(target_state, server.get("reversedDirectionSourceServerArn"))
        if reversed_server is None:
            reversed_server = self._reversed_server(caller, target_region, server, instance)
            target_state.servers[reversed_server["sourceServerID"]] = reversed_server
            target_state.launch_configs[reversed_server["sourceServerID"]] = (
                self._new_launch_config(
                    caller.account,
                    target_region,
                    reversed_server["sourceServerID"],
                    server["sourceProperties"]["identificationHints"].get("hostname", sid),
                    server["sourceProperties"].get("recommendedInstanceType") or "m5.large",
                )
            )
        else:
            props = reversed_server["sourceProperties"]
            props["identificationHints"]["awsInstanceID"] = instance.id
            props["networkInterfaces"] = [
                {"ips": [instance.private_ip], "isPrimary": True, "macAddress": _mac(instance.id)}
            ]
            props["lastUpdatedDateTime"] = iso_now()
        server["reversedDirectionSourceServerArn"] = reversed_server["arn"]
        reversed_server["reversedDirectionSourceServerArn"] = server["arn"]
        # This direction stops: the source of the data is now the recovery instance.
        server["dataReplicationInfo"]["dataReplicationState"] = "STOPPED"
        self._start_sync(caller.account, target_region, reversed_server)
        return {"reversedDirectionSourceServerArn": reversed_server["arn"]}

    @staticmethod
    def _by_arn(state: _RegionState, arn: str | None) -> dict[str, Any] | None:
        if not arn:
            return None
        return next((s for s in state.servers.values() if s["arn"] == arn), None)

    def _reversed_server(
        self, caller: Caller, target_region: str, server: dict[str, Any], instance: Any
    ) -> dict[str, Any]:
        """The source server DRS creates in the origin region for a recovery instance whose
        replication is reversed: the recovery instance is now its source."""
        props = server["sourceProperties"]
        hints = props["identificationHints"]
        placement = getattr(getattr(instance, "placement", None), "zone", None)
        placement = placement or f"{caller.region}a"
        spec = SourceServerSpec(
            instance_id=instance.id,
            hostname=hints.get("hostname") or instance.id,
            fqdn=hints.get("fqdn"),
            private_ip=instance.private_ip,
            tags=dict(server.get("tags") or {}),
            os=props.get("os", {}).get("fullString") or "Linux",
            recommended_instance_type=props.get("recommendedInstanceType") or "m5.large",
            replication_state="INITIATING",
            lag_seconds=0,
            origin_account=caller.account,
            origin_region=caller.region,
            origin_availability_zone=placement,
            disks=[
                DiskSpec(device_name=d["deviceName"], bytes=d["bytes"])
                for d in props.get("disks", [])
            ]
            or [DiskSpec()],
        )
        payload = SourceServersRequest(
            account=caller.account, region=target_region, source_servers=[spec]
        )
        record = self._source_server_record(payload, spec, f"s-{_hex17()}", None)
        record["replicationDirection"] = (
            "FAILBACK" if server.get("replicationDirection") == "FAILOVER" else "FAILOVER"
        )
        return record

    def _start_sync(self, account: str, region: str, server: dict[str, Any]) -> None:
        """Replication (re)starts: INITIATING, then INITIAL_SYNC, then CONTINUOUS after one
        drawn duration (`drs_launch_seconds`, the emulator's one timing knob)."""
        info = server["dataReplicationInfo"]
        info["dataReplicationState"] = "INITIATING"
        info["lagDuration"] = iso_duration(0)
        for disk in info.get("replicatedDisks", []):
            disk["replicatedStorageBytes"] = 0
        duration = self.knobs.launch_seconds()
        start = time.monotonic()
        sync = functools.partial(self._sync_step, account, region, server["sourceServerID"])
        generation = self._generation
        self._scheduler.call_at(start + duration / 3, lambda: sync(generation, "INITIAL_SYNC"))
        self._scheduler.call_at(start + duration, lambda: sync(generation, "CONTINUOUS"))

    def _sync_step(self, account: str, region: str, sid: str, generation: int, step: str) -> None:
        with self._lock:
            if generation != self._generation:
                return
            server = self._region(account, region).servers.get(sid)
            if server is None:
                return
            info = server["dataReplicationInfo"]
            if info["dataReplicationState"] not in ("INITIATING", "INITIAL_SYNC"):
                return  # stopped or reversed again meanwhile
            info["dataReplicationState"] = step
            if step == "CONTINUOUS":
                info["lagDuration"] = iso_duration(1)
                for disk in info.get("replicatedDisks", []):
                    disk["replicatedStorageBytes"] = disk["totalStorageBytes"]

    # -- tags

    def _tagged(self, caller: Caller, arn: str) -> dict[str, Any]:
        state = self._region(caller.account, caller.region)
        for server in state.servers.values():
            if server["arn"] == arn:
                return server
        for job in state.jobs.values():
            if job.record["arn"] == arn:
                return job.record
        for record in state.recovery.values():
            if record["arn"] == arn:
                return record
        raise ServiceError(
            "ResourceNotFoundException",
            f"Resource {arn} not found",
            resourceId=arn,
            resourceType="RESOURCE",
        )

    @operation("ListTagsForResource")
    def list_tags_for_resource(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        return {"tags": dict(self._tagged(caller, params["resourceArn"]).get("tags") or {})}

    @operation("TagResource")
    def tag_resource(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        record = self._tagged(caller, params["resourceArn"])
        record.setdefault("tags", {}).update(params["tags"])
        return {}

    @operation("UntagResource")
    def untag_resource(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        record = self._tagged(caller, params["resourceArn"])
        for key in params.get("tagKeys") or []:
            record.get("tags", {}).pop(key, None)
        return {}


# --------------------------------------------------------------------------------------------
# moto helpers


def _find_instance(account: str, region: str, instance_id: str) -> Any | None:
    from moto.ec2.exceptions import InvalidInstanceIdError

    try:
        return _ec2_backend(account, region).get_instance(instance_id)
    except InvalidInstanceIdError:
        return None


def _terminate_quietly(account: str, region: str, instance_id: str) -> None:
    """Terminate an instance; its private IPs are free again afterwards, as in EC2 (moto keeps
    them taken by the terminated instance, so a drill could never reuse its IP)."""
    backend = _ec2_backend(account, region)
    try:
        instance = backend.get_instance(instance_id)
        backend.terminate_instances([instance_id])
    except Exception:
        log.info("instance %s already gone", instance_id)
        return
    try:
        subnet = backend.get_subnet(instance.subnet_id)
        for ip in list(getattr(instance, "_private_ips", []) or []):
            subnet.del_subnet_ip(ip)
    except Exception:
        log.debug("no subnet IPs to release for %s", instance_id)


def _template_data(ec2: Any, template_id: str | None) -> dict[str, Any]:
    """The data of the default version of an EC2 launch template ({} when it is gone)."""
    if not template_id:
        return {}
    try:
        return dict(ec2.get_launch_template(template_id).default_version().data or {})
    except Exception:
        return {}


def _template_tags(data: dict[str, Any], resource_type: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for spec in data.get("TagSpecifications") or []:
        if spec.get("ResourceType") == resource_type:
            tags.update({t["Key"]: t.get("Value", "") for t in spec.get("Tags") or []})
    return tags


def _image_for(ec2: Any, os_name: str) -> str:
    """An image of the source server's OS family (Windows or Linux) from moto's catalogue."""
    windows = "windows" in os_name.lower()
    images = getattr(ec2, "amis", {}) or {}
    if windows and DEFAULT_IMAGE in images:
        return DEFAULT_IMAGE
    for image_id, image in sorted(images.items()):
        if (getattr(image, "platform", None) == "windows") == windows:
            return str(image_id)
    return DEFAULT_IMAGE


def _subnet_for(ec2: Any, ip: str | None) -> Any | None:
    subnets = list(ec2.describe_subnets())
    if ip:
        address = ipaddress.IPv4Address(ip)
        for subnet in subnets:
            if address in ipaddress.IPv4Network(subnet.cidr_block):
                return subnet
    return next((s for s in subnets if getattr(s, "default_for_az", False)), None)


def _mac(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return "0a:" + ":".join(f"{b:02x}" for b in digest[:5])


def _parse_time(value: str | None) -> Any:
    import datetime as dt

    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _public_job(job: _Job) -> dict[str, Any]:
    record = copy.deepcopy(job.record)
    record.pop("isDrill", None)
    return record


def _live_recovery(record: dict[str, Any], ec2: Any) -> dict[str, Any]:
    out = copy.deepcopy(record)
    try:
        instance = ec2.get_instance(record["ec2InstanceID"])
    except Exception:
        instance = None
    if instance is None:
        out["ec2InstanceState"] = "NOT_FOUND"
        return out
    out["ec2InstanceState"] = _EC2_STATES.get(instance._state.name, "NOT_FOUND")
    nics = []
    for nic in instance.nics.values() if hasattr(instance.nics, "values") else []:
        nics.append(
            {
                "ips": [nic.private_ip_address],
                "isPrimary": nic.device_index == 0,
                "macAddress": nic.mac_address,
            }
        )
    if not nics and instance.private_ip:
        nics.append({"ips": [instance.private_ip], "isPrimary": True})
    out["recoveryInstanceProperties"]["networkInterfaces"] = nics
    return out
