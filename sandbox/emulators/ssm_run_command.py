"""SSM Run Command emulator with emulated SQL Server Always On availability groups.

This is an EMULATION: nothing runs PowerShell and there is no SQL Server. moto's `SendCommand`
returns Success without running anything, so the sandbox answers these three SSM operations
itself (JSON 1.1, routed by `X-Amz-Target`; every other SSM call goes to moto), validated both
ways against botocore's `ssm` model:

- `SendCommand`: documents `AWS-RunPowerShellScript` and `AWS-RunShellScript` only (else
  InvalidDocument); `Parameters.commands` required (InvalidParameters); every instance must be an
  EC2 instance of the caller's account and region that is running (InvalidInstanceId, as SSM
  answers for an instance whose agent is not online); at most 50 instances.
- `GetCommandInvocation`, `ListCommandInvocations` (filters InvokedAfter, InvokedBefore, Status,
  DocumentName; `Details` adds `CommandPlugins`; pages of `MaxResults` <= 50).
- An invocation is InProgress for the availability group's `command_seconds`, then ends. What it
  "ran" is decided when it ends (read lazily on the next call): a command made by the sqlag
  service (`services/sqlag/commands.py`: the `# dr-orchestrator: <Script> v1` marker, the
  script's name and its single-quoted `-Name 'value'` arguments) is answered from the
  availability groups registered for the instance, with the JSON the real script writes, and
  changes that state as SQL Server would; any other command ends Success with empty output.
  stdout is truncated at 24,000 characters like SSM's.

Availability groups are registered with `POST /_sandbox/ssm/sql-ags` (the estate's `sql_ags`,
`sandbox/seed_sqlag.py`). What SQL Server does, as emulated here:

- Each database has a copy on every replica. The primary's copies commit continuously (their
  `last_commit_time` is now); a secondary's copy lags by the group's `lag_seconds` unless it is
  SYNCHRONIZED (lag 0); a suspended, REVERTING or INITIALIZING copy is frozen in time.
- On a secondary replica the status lists only local databases; on the primary every copy.
- Planned failover (`ALTER AVAILABILITY GROUP .. FAILOVER`) needs synchronous commit and every
  local database SYNCHRONIZED; roles swap and the copies stay SYNCHRONIZED.
- Forced failover (`FORCE_FAILOVER_ALLOW_DATA_LOSS`): the target becomes primary; the other
  replicas' copies are suspended (NOT SYNCHRONIZING, SUSPEND_FROM_PARTNER) at their last commit.
- `ALTER DATABASE .. SET HADR RESUME` on a suspended secondary: SYNCHRONIZING, then SYNCHRONIZED
  (synchronous commit) after the group's `resync_seconds`.
- A replica whose region is down (knob `regions_down`) is DISCONNECTED from the others: their
  copies show NOT SYNCHRONIZING; a clone (`isolated`) never reaches any other replica.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.wrappers import Request, Response

from . import Caller, ConfigError, Knobs, describe_validation_error
from .validation import ResponseInvalid, ServiceCodec, ServiceError

log = logging.getLogger("sandbox.emulators.ssm_run_command")

TARGET_PREFIX = "AmazonSSM."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
DOCUMENTS = {
    "AWS-RunPowerShellScript": "aws:runPowerShellScript",
    "AWS-RunShellScript": "aws:runShellScript",
}
MAX_INSTANCES = 50
STDOUT_LIMIT = 24_000
STDERR_LIMIT = 8_000
PAGE_SIZE = 50
MARKER = re.compile(r"^# dr-orchestrator: (?P<script>[A-Za-z-]+) v(?P<version>\d+)$")
INVOKE = re.compile(
    r"^& \(\[scriptblock\]::Create\(\$script\)\)(?P<args>(?: -\w+ '(?:[^']|'')*')*)$"
)
ARGUMENT = re.compile(r" -(?P<name>\w+) '(?P<value>(?:[^']|'')*)'")
AG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")

SYNCHRONIZED = "SYNCHRONIZED"
SYNCHRONIZING = "SYNCHRONIZING"
NOT_SYNCHRONIZING = "NOT SYNCHRONIZING"
SyncState = Literal[
    "SYNCHRONIZED", "SYNCHRONIZING", "NOT SYNCHRONIZING", "REVERTING", "INITIALIZING"
]
AvailabilityMode = Literal["SYNCHRONOUS_COMMIT", "ASYNCHRONOUS_COMMIT"]


# --------------------------------------------------------------------------------------------
# Registration (`POST /_sandbox/ssm/sql-ags`)


class ReplicaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # None: a replica the sandbox has no instance for (the production replicas a clone names).
    instance_id: str | None = Field(default=None, pattern=r"^i-[0-9a-f]{8,17}$")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    server: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
    role: Literal["PRIMARY", "SECONDARY"]
    availability_mode: AvailabilityMode = "SYNCHRONOUS_COMMIT"


class AgSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=AG_NAME.pattern)
    databases: list[str] = Field(min_length=1)
    replicas: list[ReplicaSpec] = Field(min_length=1)
    # The secondaries' databases: their state and how far behind the primary they are.
    sync_state: SyncState = "SYNCHRONIZED"
    lag_seconds: float = Field(default=0.0, ge=0)
    # A clone in the bubble-test network: it never reaches another replica.
    isolated: bool = False
    command_seconds: float = Field(default=0.3, ge=0, le=600)
    resync_seconds: float = Field(default=1.0, ge=0, le=3600)


class AgsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str = Field(pattern=r"^\d{12}$")
    ags: list[AgSpec]


# --------------------------------------------------------------------------------------------
# State


@dataclass
class _Copy:
    sync_state: str
    suspended: bool = False
    suspend_reason: str | None = None
    frozen_at: dt.datetime | None = None  # last commit of a copy that does not move
    resync_done: float | None = None  # monotonic time a resumed copy is SYNCHRONIZED again


@dataclass
class _Ag:
    account: str
    spec: AgSpec
    roles: dict[str, str]  # server -> PRIMARY | SECONDARY
    copies: dict[tuple[str, str], _Copy]  # (server, database)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def replica(self, server: str) -> ReplicaSpec:
        return next(r for r in self.spec.replicas if r.server == server)

    @property
    def primary(self) -> str | None:
        return next((s for s, role in self.roles.items() if role == "PRIMARY"), None)


@dataclass
class _Invocation:
    command_id: str
    account: str
    region: str
    instance_id: str
    instance_name: str
    document: str
    comment: str
    commands: list[str]
    requested: dt.datetime
    finish_at: float
    status: str = "InProgress"
    response_code: int = -1
    stdout: str = ""
    stderr: str = ""
    ended: dt.datetime | None = None


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_ms(moment: dt.datetime) -> str:
    return (
        moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}Z"
    )


def _ec2_backend(account: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account][region]


class _ScriptFailed(Exception):
    """What a script writes when it refuses: JSON on stdout, exit code 1."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__(document.get("message"))
        self.document = document


class SsmRunCommandEmulator:
    service_name = "ssm"
    operations = ("SendCommand", "GetCommandInvocation", "ListCommandInvocations")

    def __init__(self, knobs: Knobs, clock: Any = time.monotonic) -> None:
        self.knobs = knobs
        self.codec = ServiceCodec(self.service_name)
        self._clock = clock
        self._lock = threading.RLock()
        self._invocations: dict[tuple[str, str], _Invocation] = {}  # (command id, instance)
        self._ags: list[_Ag] = []
        self._by_instance: dict[str, tuple[_Ag, str]] = {}  # instance id -> (group, server)

    def targets(self) -> dict[str, SsmRunCommandEmulator]:
        return {TARGET_PREFIX + op: self for op in self.operations}

    def reset(self) -> None:
        with self._lock:
            self._invocations.clear()
            self._ags.clear()
            self._by_instance.clear()

    def close(self) -> None:
        """Nothing runs in the background."""

    # -- admin

    def register(self, data: Any) -> dict[str, Any]:
        try:
            payload = AgsRequest.model_validate(data)
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err, data)) from None
        now = dt.datetime.now(dt.UTC)
        out = []
        with self._lock:
            for spec in payload.ags:
                if sum(1 for r in spec.replicas if r.role == "PRIMARY") > 1:
                    raise ConfigError(f"ags[{spec.name}].replicas: more than one PRIMARY")
                copies = {}
                for replica in spec.replicas:
                    for database in spec.databases:
                        primary = replica.role == "PRIMARY"
                        state = SYNCHRONIZED if primary else spec.sync_state
                        frozen = None
                        if not primary and state in (
                            NOT_SYNCHRONIZING,
                            "REVERTING",
                            "INITIALIZING",
                        ):
                            frozen = now - dt.timedelta(seconds=spec.lag_seconds)
                        if spec.isolated:
                            frozen = now - dt.timedelta(seconds=spec.lag_seconds)
                        copies[(replica.server, database)] = _Copy(state, frozen_at=frozen)
                group = _Ag(
                    account=payload.account,
                    spec=spec,
                    roles={r.server: r.role for r in spec.replicas},
                    copies=copies,
                )
                for replica in spec.replicas:
                    if replica.instance_id is None:
                        continue
                    previous = self._by_instance.get(replica.instance_id)
                    if previous is not None and previous[0] in self._ags:
                        self._ags.remove(previous[0])  # re-seeding replaces the group
                    self._by_instance[replica.instance_id] = (group, replica.server)
                self._ags.append(group)
                out.append(spec.name)
        return {"ags": out}

    # -- the wire (JSON 1.1)

    def handle(self, request: Request, caller: Caller) -> Response:
        request_id = str(uuid.uuid4())
        target = request.headers.get("X-Amz-Target", "")
        op_name = target.removeprefix(TARGET_PREFIX)
        try:
            try:
                if op_name not in self.operations:
                    raise ServiceError("UnknownOperationException", f"{target} is not emulated")
                op = self.codec.operation(op_name)
                if self.knobs.throttled():
                    raise ServiceError("ThrottlingException", "Rate exceeded")
                try:
                    params = json.loads(request.get_data() or b"{}")
                except ValueError as err:
                    raise ServiceError("SerializationException", str(err)) from None
                if not isinstance(params, dict):
                    raise ServiceError("SerializationException", "the body must be an object")
                self.codec.validate_request(op, params)
                with self._lock:
                    output = getattr(self, "_" + _snake(op_name))(caller, params)
                self.codec.validate_response(op, output)
                status, headers, body = self.codec.serialize_output(op, output)
            except ServiceError as err:
                if self._memberless(err.code):
                    # Modelled without members (InvocationDoesNotExist, ...): the code alone.
                    status, headers, body = 400, {}, json.dumps({"__type": err.code}).encode()
                else:
                    status, headers, body = self.codec.serialize_error(err)
                    document = json.loads(body or b"{}")
                    document["__type"] = err.code
                    body = json.dumps(document).encode()
        except ResponseInvalid as bug:
            log.error("emulator bug: %s", bug)
            status, headers, body = 500, {}, _internal(f"sandbox emulator bug: {bug}")
        except Exception as bug:
            log.exception("SSM Run Command emulator crashed in %s", op_name)
            status, headers, body = 500, {}, _internal(f"sandbox emulator bug: {bug!r}")
        headers["Content-Type"] = JSON_CONTENT_TYPE
        headers["x-amzn-RequestId"] = request_id
        return Response(body, status=status, headers=headers)

    def _memberless(self, code: str) -> bool:
        try:
            shape = self.codec.model.shape_for(code)
        except Exception:
            return False
        return not getattr(shape, "members", None)

    # -- operations

    def _send_command(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        document = str(params["DocumentName"])
        if document not in DOCUMENTS:
            raise ServiceError("InvalidDocument", f"Document {document} is not emulated")
        if params.get("Targets"):
            raise ServiceError("InvalidParameters", "Targets are not emulated: use InstanceIds")
        instance_ids = list(params.get("InstanceIds") or [])
        if not instance_ids or len(instance_ids) > MAX_INSTANCES:
            raise ServiceError("InvalidParameters", "InstanceIds must name 1 to 50 instances")
        if len(set(instance_ids)) != len(instance_ids):
            raise ServiceError("DuplicateInstanceId", "An instance appears twice in InstanceIds")
        parameters = params.get("Parameters") or {}
        commands = parameters.get("commands")
        if not commands or not all(isinstance(c, str) for c in commands):
            raise ServiceError("InvalidParameters", "Parameter commands is required")
        unknown = sorted(set(parameters) - {"commands", "workingDirectory", "executionTimeout"})
        if unknown:
            raise ServiceError("InvalidParameters", f"Parameters {unknown} are not in {document}")
        names = self._online(caller, instance_ids)
        now = dt.datetime.now(dt.UTC)
        command_id = str(uuid.uuid4())
        seconds = max((self._seconds_for(i) for i in instance_ids), default=0.3)
        for instance_id in instance_ids:
            self._invocations[(command_id, instance_id)] = _Invocation(
                command_id=command_id,
                account=caller.account,
                region=caller.region,
                instance_id=instance_id,
                instance_name=names[instance_id],
                document=document,
                comment=str(params.get("Comment") or ""),
                commands=list(commands),
                requested=now,
                finish_at=self._clock() + seconds,
            )
        timeout = int(params.get("TimeoutSeconds") or 3600)
        return {
            "Command": {
                "CommandId": command_id,
                "DocumentName": document,
                "DocumentVersion": "$DEFAULT",
                "Comment": str(params.get("Comment") or ""),
                "ExpiresAfter": now + dt.timedelta(seconds=timeout),
                "Parameters": {k: list(v) for k, v in parameters.items()},
                "InstanceIds": instance_ids,
                "Targets": [],
                "RequestedDateTime": now,
                "Status": "InProgress",
                "StatusDetails": "InProgress",
                "MaxConcurrency": str(params.get("MaxConcurrency") or "50"),
                "MaxErrors": str(params.get("MaxErrors") or "0"),
                "TargetCount": len(instance_ids),
                "CompletedCount": 0,
                "ErrorCount": 0,
                "DeliveryTimedOutCount": 0,
                "TimeoutSeconds": timeout,
            }
        }

    def _get_command_invocation(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        invocation = self._invocations.get((params["CommandId"], params["InstanceId"]))
        if invocation is None or (invocation.account, invocation.region) != (
            caller.account,
            caller.region,
        ):
            raise ServiceError("InvocationDoesNotExist", "The invocation does not exist")
        plugin = params.get("PluginName")
        if plugin and plugin != DOCUMENTS[invocation.document]:
            raise ServiceError("InvalidPluginName", f"The plugin {plugin} is not in the document")
        self._settle(invocation)
        out: dict[str, Any] = {
            "CommandId": invocation.command_id,
            "InstanceId": invocation.instance_id,
            "Comment": invocation.comment,
            "DocumentName": invocation.document,
            "DocumentVersion": "$DEFAULT",
            "PluginName": DOCUMENTS[invocation.document],
            "ResponseCode": invocation.response_code,
            "ExecutionStartDateTime": _iso(invocation.requested),
            "Status": invocation.status,
            "StatusDetails": invocation.status,
            "StandardOutputContent": invocation.stdout,
            "StandardOutputUrl": "",
            "StandardErrorContent": invocation.stderr,
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": {
                "CloudWatchOutputEnabled": False,
            },
        }
        if invocation.ended is not None:
            out["ExecutionEndDateTime"] = _iso(invocation.ended)
        return out

    def _list_command_invocations(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        items = [
            i
            for i in self._invocations.values()
            if i.account == caller.account and i.region == caller.region
        ]
        if params.get("CommandId"):
            items = [i for i in items if i.command_id == params["CommandId"]]
        if params.get("InstanceId"):
            items = [i for i in items if i.instance_id == params["InstanceId"]]
        for invocation in items:
            self._settle(invocation)
        for flt in params.get("Filters") or []:
            items = [i for i in items if _matches(i, flt["key"], flt["value"])]
        items.sort(key=lambda i: i.requested, reverse=True)
        token = str(params.get("NextToken") or "0")
        if not token.isdigit():
            raise ServiceError("InvalidNextToken", "The specified token is not valid")
        start, size = int(token), min(int(params.get("MaxResults") or PAGE_SIZE), PAGE_SIZE)
        details = bool(params.get("Details"))
        out: dict[str, Any] = {
            "CommandInvocations": [_listed(i, details) for i in items[start : start + size]]
        }
        if start + size < len(items):
            out["NextToken"] = str(start + size)
        return out

    # -- instances and invocations

    def _online(self, caller: Caller, instance_ids: list[str]) -> dict[str, str]:
        """Name tag of each instance; InvalidInstanceId unless all are running here."""
        backend = _ec2_backend(caller.account, caller.region)
        names: dict[str, str] = {}
        for instance_id in instance_ids:
            try:
                instance = backend.get_instance(instance_id)
            except Exception:
                instance = None
            if instance is None or instance.state != "running":
                raise ServiceError(
                    "InvalidInstanceId",
                    f"Instances [[{instance_id}]] not in a valid state for account "
                    f"{caller.account}",
                )
            tags = backend.describe_tags(filters={"resource-id": [instance_id]})
            names[instance_id] = next((t["value"] for t in tags if t["key"] == "Name"), "")
        return names

    def _seconds_for(self, instance_id: str) -> float:
        found = self._by_instance.get(instance_id)
        return found[0].spec.command_seconds if found else 0.3

    def _settle(self, invocation: _Invocation) -> None:
        if invocation.status != "InProgress" or self._clock() < invocation.finish_at:
            return
        invocation.ended = dt.datetime.now(dt.UTC)
        try:
            stdout = self._execute(invocation)
            invocation.status, invocation.response_code, invocation.stdout = "Success", 0, stdout
        except _ScriptFailed as failed:
            invocation.status, invocation.response_code = "Failed", 1
            invocation.stdout = json.dumps(failed.document, separators=(",", ":"))
            invocation.stderr = (
                f"{failed.document.get('error_code')}: {failed.document.get('message')}"
            )
        except _SqlError as error:
            invocation.status, invocation.response_code = "Failed", 1
            invocation.stderr = str(error)
        invocation.stdout = invocation.stdout[:STDOUT_LIMIT]
        invocation.stderr = invocation.stderr[:STDERR_LIMIT]

    # -- the emulated scripts

    def _execute(self, invocation: _Invocation) -> str:
        commands = invocation.commands
        marker = MARKER.match(commands[0]) if commands else None
        if marker is None:
            return ""  # not one of the orchestrator's scripts: nothing is emulated
        found = INVOKE.match(commands[-1])
        if found is None:
            raise _SqlError("ParserError: the script invocation line is not recognised")
        args = {
            m.group("name"): m.group("value").replace("''", "'")
            for m in ARGUMENT.finditer(found.group("args"))
        }
        ag_name = args.get("AgName", "")
        if not AG_NAME.fullmatch(ag_name):
            raise _SqlError(
                f"Cannot validate argument on parameter 'AgName'. The argument {ag_name!r} "
                "does not match the pattern"
            )
        located = self._by_instance.get(invocation.instance_id)
        if located is None:
            raise _SqlError(
                "Invoke-Sqlcmd : A network-related or instance-specific error occurred while "
                "establishing a connection to SQL Server (no SQL Server on this instance)"
            )
        group, server = located
        script = marker.group("script")
        with group.lock:
            if group.spec.name != ag_name:
                document = {"ok": False, "error_code": "AG_NOT_FOUND", "ag_name": ag_name}
                if script == "Get-SqlAgStatus":
                    return _dump(self._status(group, server, ag_name, found=False))
                raise _ScriptFailed(
                    {
                        "script": script,
                        "version": 1,
                        **document,
                        "message": f"availability group {ag_name} has no replica on this server",
                        "action": "none",
                        "mode": args.get("Mode", ""),
                    }
                )
            if script == "Get-SqlAgStatus":
                return _dump(self._status(group, server, ag_name))
            if script == "Invoke-SqlAgFailover":
                return _dump(self._failover(group, server, args.get("Mode", "")))
            if script == "Resume-SqlAgDataMovement":
                return _dump(self._resume(group, server))
            if script == "Test-SqlAgClone":
                return _dump(self._clone(group, server))
        raise _SqlError(f"The term '{script}' is not recognized")

    def _up(self, group: _Ag, server: str) -> bool:
        return not self.knobs.region_down(group.replica(server).region)

    def _connected(self, group: _Ag, a: str, b: str) -> bool:
        return not group.spec.isolated and self._up(group, a) and self._up(group, b)

    def _view(self, group: _Ag, server: str, database: str, now: dt.datetime) -> dict[str, Any]:
        """One copy as SQL Server reports it (lag, freezing, catch-up after a resume)."""
        state = group.copies[(server, database)]
        primary = group.primary
        role = group.roles[server]
        if state.resync_done is not None and self._clock() >= state.resync_done:
            mode = group.replica(server).availability_mode
            state.sync_state = SYNCHRONIZED if mode == "SYNCHRONOUS_COMMIT" else SYNCHRONIZING
            state.resync_done = None
        sync, frozen = state.sync_state, state.frozen_at
        if role == "PRIMARY":
            sync, lag = SYNCHRONIZED, 0.0
        elif primary is None or not self._connected(group, server, primary):
            if sync not in ("REVERTING", "INITIALIZING"):
                sync = NOT_SYNCHRONIZING
            lag = group.spec.lag_seconds
        else:
            lag = 0.0 if sync == SYNCHRONIZED else group.spec.lag_seconds
        commit = frozen if frozen is not None else now - dt.timedelta(seconds=lag)
        return {
            "name": database,
            "replica_server": server,
            "is_primary_replica": role == "PRIMARY",
            "sync_state": sync,
            "sync_health": "HEALTHY" if sync in (SYNCHRONIZED, SYNCHRONIZING) else "NOT_HEALTHY",
            "database_state": "ONLINE" if role == "PRIMARY" else None,
            "is_suspended": state.suspended,
            "suspend_reason": state.suspend_reason,
            "last_hardened_time": _iso_ms(commit),
            "last_commit_time": _iso_ms(commit),
            "log_send_queue_kb": 0 if sync == SYNCHRONIZED else int(lag * 64),
            "redo_queue_kb": 0 if sync == SYNCHRONIZED else int(lag * 16),
        }

    def _status(self, group: _Ag, server: str, ag_name: str, found: bool = True) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        out: dict[str, Any] = {
            "script": "Get-SqlAgStatus",
            "version": 1,
            "ok": True,
            "server": server,
            "ag_name": ag_name,
            "ag_found": found,
            "collected_at": _iso_ms(now),
            "replicas": [],
            "databases": [],
        }
        if not found:
            return out
        local_role = group.roles[server]
        primary = group.primary
        for replica in group.spec.replicas:
            local = replica.server == server
            row: dict[str, Any] = {
                "server": replica.server,
                "role": None,
                "is_local": local,
                "connected_state": None,
                "sync_health": None,
                "availability_mode": replica.availability_mode,
                "failover_mode": "MANUAL",
            }
            # The primary sees every replica; a secondary only itself (connected to the primary?).
            if local:
                connected = local_role == "PRIMARY" or (
                    primary is not None and self._connected(group, server, primary)
                )
            else:
                connected = local_role == "PRIMARY" and self._connected(
                    group, server, replica.server
                )
            if local or local_role == "PRIMARY":
                row["role"] = group.roles[replica.server] if (local or connected) else None
                row["connected_state"] = "CONNECTED" if connected else "DISCONNECTED"
                row["sync_health"] = "HEALTHY" if connected else "NOT_HEALTHY"
            out["replicas"].append(row)
        for replica in group.spec.replicas:
            if replica.server != server and local_role != "PRIMARY":
                continue
            for database in group.spec.databases:
                view = self._view(group, replica.server, database, now)
                view["is_local"] = replica.server == server
                out["databases"].append(view)
        return out

    def _failover(self, group: _Ag, server: str, mode: str) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        views = [self._view(group, server, d, now) for d in group.spec.databases]
        result: dict[str, Any] = {
            "script": "Invoke-SqlAgFailover",
            "version": 1,
            "ok": False,
            "ag_name": group.spec.name,
            "mode": mode,
            "role_before": group.roles[server],
            "role_after": None,
            "action": "none",
            "error_code": None,
            "message": None,
            "databases": [{"name": v["name"], "sync_state": v["sync_state"]} for v in views],
        }
        if mode not in ("Planned", "Forced"):
            raise _SqlError(f"Cannot validate argument on parameter 'Mode': {mode!r}")
        if group.roles[server] == "PRIMARY":
            return result | {
                "ok": True,
                "role_after": "PRIMARY",
                "message": "this replica is already the primary replica: nothing done",
            }
        old = group.primary
        if mode == "Planned":
            synchronous = group.replica(server).availability_mode == "SYNCHRONOUS_COMMIT"
            if not synchronous or any(v["sync_state"] != SYNCHRONIZED for v in views):
                raise _ScriptFailed(
                    result
                    | {
                        "error_code": "NOT_SYNCHRONIZED",
                        "message": "planned failover needs synchronous commit and every "
                        "database SYNCHRONIZED",
                    }
                )
            for name in group.roles:
                group.roles[name] = "PRIMARY" if name == server else "SECONDARY"
            for (replica, _), copy_ in group.copies.items():
                copy_.frozen_at = None
                mode_ = group.replica(replica).availability_mode
                copy_.sync_state = SYNCHRONIZED if mode_ == "SYNCHRONOUS_COMMIT" else SYNCHRONIZING
            action = "planned-failover"
        else:
            unsafe = [v["name"] for v in views if v["sync_state"] in ("REVERTING", "INITIALIZING")]
            if unsafe:
                raise _ScriptFailed(
                    result
                    | {
                        "error_code": "UNSAFE_SYNC_STATE",
                        "message": "forced failover refused: databases REVERTING or "
                        "INITIALIZING: " + ", ".join(unsafe),
                    }
                )
            for name in group.roles:
                group.roles[name] = "PRIMARY" if name == server else "SECONDARY"
            for (replica, _), copy_ in group.copies.items():
                if replica == server:
                    copy_.sync_state, copy_.frozen_at = SYNCHRONIZED, None
                    copy_.suspended, copy_.suspend_reason = False, None
                else:
                    last = (
                        now
                        if replica == old
                        else now - dt.timedelta(seconds=group.spec.lag_seconds)
                    )
                    copy_.sync_state, copy_.frozen_at = NOT_SYNCHRONIZING, copy_.frozen_at or last
                    copy_.suspended, copy_.suspend_reason = True, "SUSPEND_FROM_PARTNER"
                    copy_.resync_done = None
            action = "forced-failover"
        return result | {"ok": True, "role_after": "PRIMARY", "action": action}

    def _resume(self, group: _Ag, server: str) -> dict[str, Any]:
        primary = group.primary
        if primary is None or not self._connected(group, server, primary):
            raise _SqlError(
                "Msg 35250: The connection to the primary replica is not active. The command "
                "cannot be processed."
            )
        resumed = []
        for database in group.spec.databases:
            copy_ = group.copies[(server, database)]
            if copy_.suspended and group.roles[server] == "SECONDARY":
                copy_.suspended, copy_.suspend_reason, copy_.frozen_at = False, None, None
                copy_.sync_state = SYNCHRONIZING
                copy_.resync_done = self._clock() + group.spec.resync_seconds
                resumed.append(database)
        return {
            "script": "Resume-SqlAgDataMovement",
            "version": 1,
            "ok": True,
            "ag_name": group.spec.name,
            "resumed": resumed,
        }

    def _clone(self, group: _Ag, server: str) -> dict[str, Any]:
        result: dict[str, Any] = {
            "script": "Test-SqlAgClone",
            "version": 1,
            "ok": False,
            "ag_name": group.spec.name,
            "server": server,
            "action": "none",
            "role_after": None,
            "error_code": None,
            "message": None,
            "databases": [],
        }
        reachable = [
            r.server
            for r in group.spec.replicas
            if r.server != server and self._connected(group, server, r.server)
        ]
        if reachable:
            raise _ScriptFailed(
                result
                | {
                    "error_code": "CLONE_NOT_ISOLATED",
                    "message": "the clone reaches other replicas: " + ", ".join(reachable),
                }
            )
        if group.roles[server] != "PRIMARY":
            for name in group.roles:
                group.roles[name] = "PRIMARY" if name == server else "SECONDARY"
            result["action"] = "clone-brought-online"
        now = dt.datetime.now(dt.UTC)
        for database in group.spec.databases:
            copy_ = group.copies[(server, database)]
            commit = copy_.frozen_at or now
            result["databases"].append(
                {
                    "name": database,
                    "database_state": "ONLINE",
                    "readable": True,
                    "last_commit_time": _iso_ms(commit),
                }
            )
        return result | {"ok": True, "role_after": "PRIMARY"}


class _SqlError(Exception):
    """A PowerShell / SQL Server error: stderr, exit code 1, no JSON."""


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


def _internal(message: str) -> bytes:
    return json.dumps({"__type": "InternalServerError", "Message": message}).encode()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _parse_time(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _matches(invocation: _Invocation, key: str, value: str) -> bool:
    if key == "InvokedAfter":
        return invocation.requested >= _parse_time(value)
    if key == "InvokedBefore":
        return invocation.requested <= _parse_time(value)
    if key == "Status":
        return invocation.status == value
    if key == "DocumentName":
        return invocation.document == value
    if key == "ExecutionStage":
        return (invocation.status == "InProgress") == (value == "Executing")
    raise ServiceError("InvalidFilterKey", f"{key} is not a filter key")


def _listed(invocation: _Invocation, details: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "CommandId": invocation.command_id,
        "InstanceId": invocation.instance_id,
        "InstanceName": invocation.instance_name,
        "Comment": invocation.comment,
        "DocumentName": invocation.document,
        "DocumentVersion": "$DEFAULT",
        "RequestedDateTime": invocation.requested,
        "Status": invocation.status,
        "StatusDetails": invocation.status,
        "TraceOutput": "",
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "CommandPlugins": [],
        "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": False},
    }
    if details:
        plugin: dict[str, Any] = {
            "Name": DOCUMENTS[invocation.document],
            "Status": invocation.status,
            "StatusDetails": invocation.status,
            "ResponseCode": invocation.response_code,
            "ResponseStartDateTime": invocation.requested,
            "Output": (invocation.stdout + invocation.stderr)[:2500],
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
        }
        if invocation.ended is not None:
            plugin["ResponseFinishDateTime"] = invocation.ended
        out["CommandPlugins"] = [plugin]
    return copy.deepcopy(out)


__all__ = ["AgSpec", "AgsRequest", "ReplicaSpec", "SsmRunCommandEmulator"]
