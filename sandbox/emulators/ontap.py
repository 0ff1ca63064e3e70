"""FSx for NetApp ONTAP emulation: FSx `DescribeFileSystems` with the ONTAP management endpoint,
and the ONTAP REST API's SnapMirror calls on that endpoint. An emulation, not AWS or ONTAP.

- FSx (`FsxOntapEmulator`): moto holds FSx file systems (CreateFileSystem with
  `OntapConfiguration`, tags) but reports neither `Lifecycle` nor the ONTAP endpoints. Only
  `DescribeFileSystems` is answered here (routed by `X-Amz-Target`); every other FSx call goes to
  moto. Each of moto's file systems is reported `AVAILABLE`, with its creation parameters and,
  for ONTAP, `Endpoints.Management` / `Endpoints.Intercluster` (`<id>.management.fsx.<region>.
  amazonaws.com`, as FSx names them) and never the `FsxAdminPassword`. Requests and responses are
  validated against botocore's `fsx` model.
- ONTAP REST (`OntapRestEmulator`): the management endpoint of a file system is served under
  `/_ontap/<file system id>` (plain HTTP; ONTAP serves HTTPS), basic auth against the credentials
  registered for it (401 otherwise). Emulated, after the ONTAP 9 REST reference:
  `GET /api/snapmirror/relationships` (`records`, `num_records`; `fields` honoured for the
  members emulated: uuid, state, healthy, unhealthy_reason, lag_time, source.path,
  destination.path), `GET /api/snapmirror/relationships/{uuid}`,
  `PATCH /api/snapmirror/relationships/{uuid}` with `{"state": ...}` (202 and a job:
  `snapmirrored`|`paused` -> `broken_off` breaks, `broken_off`|`paused` -> `snapmirrored`
  resyncs, `snapmirrored` -> `paused` quiesces; anything else 400 with ONTAP's error body), and
  `GET /api/cluster/jobs/{uuid}` (`queued` -> `success` after `job_seconds`, or `failure` when
  the relationship's `fail_jobs` is set). `lag_time` is the registered lag as an ISO 8601
  duration (`PT5M12S`); a break keeps the last one, a resync restores the registered lag.
- Relationships are registered by the seeder: `POST /_sandbox/ontap/file-systems`
  `{"file_system_id", "username", "password", "relationships": [{"source_path",
  "destination_path", "state", "healthy", "lag_seconds"}], "job_seconds"}` (a file system
  registered again is replaced).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.wrappers import Request, Response

from . import Caller, ConfigError, Knobs, describe_validation_error
from .validation import ResponseInvalid, ServiceCodec, ServiceError

log = logging.getLogger("sandbox.emulators.ontap")

PREFIX = "/_ontap/"
FSX_TARGET_PREFIX = "AWSSimbaAPIService_v20180301."
FSX_OPERATIONS = ("DescribeFileSystems",)
PAGE_SIZE_DEFAULT = 2147483647
BREAKS_FROM = frozenset({"snapmirrored", "paused"})
RESYNCS_FROM = frozenset({"broken_off", "paused"})
ONTAP_STATES = frozenset({"snapmirrored", "broken_off", "paused", "uninitialized"})


def iso_duration(seconds: float) -> str:
    """Seconds as an ISO 8601 duration, the way ONTAP reports `lag_time` (PT1H2M3S)."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    clock += f"{secs}S" if secs or not (days or hours or minutes) else ""
    return out + ("T" + clock if clock else "")


# --- FSx DescribeFileSystems ----------------------------------------------------------------


def _moto_file_systems(account: str, region: str) -> list[Any]:
    from moto.fsx.models import fsx_backends

    if account not in fsx_backends:
        return []
    return list(fsx_backends[account][region].file_systems.values())


class FsxOntapEmulator:
    """FSx `DescribeFileSystems` over moto's file systems, with ONTAP endpoints added."""

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.codec = ServiceCodec("fsx")
        self._created: dict[str, dt.datetime] = {}

    def targets(self) -> dict[str, FsxOntapEmulator]:
        return {FSX_TARGET_PREFIX + op: self for op in FSX_OPERATIONS}

    def reset(self) -> None:
        self._created.clear()

    def handle(self, request: Request, caller: Caller) -> Response:
        target = request.headers.get("X-Amz-Target", "")
        op_name = target.removeprefix(FSX_TARGET_PREFIX)
        try:
            try:
                if op_name not in FSX_OPERATIONS:
                    raise ServiceError("UnknownOperationException", f"{target} is not emulated")
                op = self.codec.operation(op_name)
                if self.knobs.throttled():
                    raise ServiceError("ThrottlingException", "Rate exceeded")
                try:
                    params = json.loads(request.get_data() or b"{}")
                except ValueError as err:
                    raise ServiceError("BadRequest", f"the body is not JSON: {err}") from None
                if not isinstance(params, dict):
                    raise ServiceError("BadRequest", "the body must be a JSON object")
                self.codec.validate_request(op, params)
                output = self.describe_file_systems(caller, params)
                self.codec.validate_response(op, output)
                status, headers, body = self.codec.serialize_output(op, output)
                body = json.dumps(json.loads(body), default=str).encode()
            except ServiceError as err:
                status, headers, body = self.codec.serialize_error(err)
                document = json.loads(body or b"{}")
                document["__type"] = err.code
                body = json.dumps(document).encode()
        except ResponseInvalid as bug:
            log.error("emulator bug: %s", bug)
            status, headers, body = 500, {}, self._bug(str(bug))
        except Exception as bug:
            log.exception("FSx emulator crashed in %s", op_name)
            status, headers, body = 500, {}, self._bug(repr(bug))
        headers["Content-Type"] = "application/x-amz-json-1.1"
        headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return Response(body, status=status, headers=headers)

    @staticmethod
    def _bug(detail: str) -> bytes:
        return json.dumps(
            {"__type": "InternalServerError", "Message": f"sandbox emulator bug: {detail}"}
        ).encode()

    def describe_file_systems(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        systems = _moto_file_systems(caller.account, caller.region)
        wanted = params.get("FileSystemIds")
        if wanted:
            by_id = {fs.file_system_id: fs for fs in systems}
            missing = [i for i in wanted if i not in by_id]
            if missing:
                raise ServiceError(
                    "FileSystemNotFound", f"File system '{missing[0]}' does not exist."
                )
            systems = [by_id[i] for i in wanted]
        start = int(params.get("NextToken") or 0)
        size = int(params.get("MaxResults") or PAGE_SIZE_DEFAULT)
        page = systems[start : start + size]
        out: dict[str, Any] = {"FileSystems": [self._describe(caller, fs) for fs in page]}
        if start + size < len(systems):
            out["NextToken"] = str(start + size)
        return out

    def _describe(self, caller: Caller, fs: Any) -> dict[str, Any]:
        item = {k: copy.deepcopy(v) for k, v in fs.to_dict().items()}
        created = self._created.setdefault(fs.resource_arn, dt.datetime.now(dt.UTC))
        item |= {"OwnerId": caller.account, "CreationTime": created, "Lifecycle": "AVAILABLE"}
        ontap = item.get("OntapConfiguration")
        if item.get("FileSystemType") == "ONTAP":
            ontap = dict(ontap or {})
            ontap.pop("FsxAdminPassword", None)
            region = caller.region
            fs_id = fs.file_system_id
            ontap["Endpoints"] = {
                "Management": {
                    "DNSName": f"{fs_id}.management.fsx.{region}.amazonaws.com",
                    "IpAddresses": [_ip(fs_id, 1)],
                },
                "Intercluster": {
                    "DNSName": f"{fs_id}.intercluster.fsx.{region}.amazonaws.com",
                    "IpAddresses": [_ip(fs_id, 2), _ip(fs_id, 3)],
                },
            }
            item["OntapConfiguration"] = ontap
        return item


def _ip(fs_id: str, n: int) -> str:
    digest = int(fs_id.removeprefix("fs-")[:4] or "0", 16)
    return f"198.19.{digest % 250}.{n}"


# --- ONTAP REST -----------------------------------------------------------------------------


class RelationshipSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_path: str = Field(pattern=r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$")
    destination_path: str = Field(pattern=r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$")
    state: Literal["snapmirrored", "broken_off", "paused", "uninitialized"] = "snapmirrored"
    healthy: bool = True
    lag_seconds: float = Field(default=300, ge=0)
    unhealthy_reason: str | None = None
    fail_jobs: bool = False


class OntapFileSystemSpec(BaseModel):
    """`POST /_sandbox/ontap/file-systems`: the SnapMirror destinations of one file system."""

    model_config = ConfigDict(extra="forbid")

    file_system_id: str = Field(pattern=r"^fs-[0-9a-f]{8,21}$")
    username: str = "fsxadmin"
    password: str = Field(min_length=1)
    relationships: list[RelationshipSpec] = Field(default_factory=list)
    job_seconds: float = Field(default=0.0, ge=0, le=60)


@dataclass
class _Relationship:
    uuid: str
    spec: RelationshipSpec
    state: str
    healthy: bool
    lag_seconds: float


@dataclass
class _Job:
    uuid: str
    description: str
    done_at: float
    fails: bool
    apply: Any
    state: str = "queued"
    message: str = ""


@dataclass
class _Cluster:
    spec: OntapFileSystemSpec
    relationships: dict[str, _Relationship] = field(default_factory=dict)
    jobs: dict[str, _Job] = field(default_factory=dict)


class OntapError(Exception):
    def __init__(self, status: int, message: str, code: str = "1") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class OntapRestEmulator:
    def __init__(self, knobs: Knobs, clock: Any = time.monotonic) -> None:
        self.knobs = knobs
        self.clock = clock
        self._lock = threading.Lock()
        self._clusters: dict[str, _Cluster] = {}

    def reset(self) -> None:
        with self._lock:
            self._clusters.clear()

    def configure(self, data: Any) -> dict[str, Any]:
        try:
            spec = OntapFileSystemSpec.model_validate(data)
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err, data)) from None
        cluster = _Cluster(spec)
        for r in spec.relationships:
            rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{spec.file_system_id}/{r.destination_path}"))
            cluster.relationships[rid] = _Relationship(rid, r, r.state, r.healthy, r.lag_seconds)
        with self._lock:
            self._clusters[spec.file_system_id] = cluster
        return {"file_system_id": spec.file_system_id, "relationships": list(cluster.relationships)}

    def state(self, file_system_id: str) -> dict[str, str]:
        """destination path -> state (for tests)."""
        with self._lock:
            cluster = self._clusters.get(file_system_id)
            if cluster is None:
                return {}
            self._run_jobs(cluster)
            return {r.spec.destination_path: r.state for r in cluster.relationships.values()}

    # -- HTTP

    def handle(self, request: Request) -> Response:
        try:
            fs_id, _, rest = request.path.removeprefix(PREFIX).partition("/")
            with self._lock:
                cluster = self._clusters.get(fs_id)
                if cluster is None:
                    raise OntapError(404, f"no ONTAP management endpoint for {fs_id!r}", "4")
                self._authorize(cluster, request)
                self._run_jobs(cluster)
                status, body = self._route(cluster, request, "/" + rest)
        except OntapError as err:
            status = err.status
            body = {"error": {"message": err.message, "code": err.code}}
        return Response(json.dumps(body), status=status, mimetype="application/hal+json")

    @staticmethod
    def _authorize(cluster: _Cluster, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        expected = f"{cluster.spec.username}:{cluster.spec.password}".encode()
        if header != "Basic " + base64.b64encode(expected).decode():
            raise OntapError(401, "not authorized for that command", "6")

    def _route(self, cluster: _Cluster, request: Request, path: str) -> tuple[int, Any]:
        method = request.method
        if path == "/api/snapmirror/relationships" and method == "GET":
            fields = request.args.get("fields", "")
            records = [self._record(r, fields) for r in cluster.relationships.values()]
            return 200, {"records": records, "num_records": len(records)}
        if path.startswith("/api/snapmirror/relationships/"):
            rid = path.rsplit("/", 1)[-1]
            found = cluster.relationships.get(rid)
            if found is None:
                raise OntapError(404, f'entry doesn\'t exist: uuid "{rid}"', "4")
            if method == "GET":
                return 200, self._record(found, "*")
            if method == "PATCH":
                return 202, self._patch(cluster, found, request)
        if path.startswith("/api/cluster/jobs/") and method == "GET":
            job = cluster.jobs.get(path.rsplit("/", 1)[-1])
            if job is None:
                raise OntapError(404, "entry doesn't exist", "4")
            body = {"uuid": job.uuid, "description": job.description, "state": job.state}
            if job.message:
                body["message"] = job.message
            return 200, body
        raise OntapError(404, f"API not found: {method} {path}", "3")

    def _record(self, r: _Relationship, fields: str) -> dict[str, Any]:
        full: dict[str, Any] = {
            "uuid": r.uuid,
            "state": r.state,
            "healthy": r.healthy,
            "source": {"path": r.spec.source_path},
            "destination": {"path": r.spec.destination_path},
        }
        if r.state != "uninitialized":
            full["lag_time"] = iso_duration(r.lag_seconds)
        if not r.healthy:
            full["unhealthy_reason"] = [
                {"message": r.spec.unhealthy_reason or "Transfer failed.", "code": "6620446"}
            ]
        wanted = {f.split(".")[0] for f in fields.split(",") if f} if fields else set()
        if not wanted or "*" in wanted:
            return full
        return {k: v for k, v in full.items() if k in wanted or k == "uuid"}

    def _patch(self, cluster: _Cluster, r: _Relationship, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            raise OntapError(400, "the request body is not JSON", "2") from None
        if not isinstance(body, dict) or set(body) != {"state"}:
            raise OntapError(400, 'only {"state": ...} is emulated in a PATCH', "2")
        wanted = body["state"]
        if wanted not in ONTAP_STATES:
            raise OntapError(400, f'"{wanted}" is an invalid value for field "state"', "262179")
        allowed = {
            "broken_off": BREAKS_FROM,
            "snapmirrored": RESYNCS_FROM | {"uninitialized"},
            "paused": frozenset({"snapmirrored"}),
        }.get(wanted, frozenset())
        if r.state not in allowed:
            raise OntapError(
                409 if r.state == wanted else 400,
                f'cannot change the state of relationship "{r.uuid}" from "{r.state}" to '
                f'"{wanted}"',
                "13303812",
            )

        def apply() -> None:
            r.state = wanted
            if wanted == "snapmirrored":
                r.lag_seconds = r.spec.lag_seconds
                r.healthy = True

        job_id = str(uuid.uuid4())
        cluster.jobs[job_id] = _Job(
            job_id,
            f"PATCH /api/snapmirror/relationships/{r.uuid}",
            self.clock() + cluster.spec.job_seconds,
            r.spec.fail_jobs,
            apply,
        )
        self._run_jobs(cluster)
        return {
            "job": {"uuid": job_id, "_links": {"self": {"href": f"/api/cluster/jobs/{job_id}"}}}
        }

    def _run_jobs(self, cluster: _Cluster) -> None:
        now = self.clock()
        for job in cluster.jobs.values():
            if job.state != "queued" or now < job.done_at:
                continue
            if job.fails:
                job.state, job.message = "failure", "Transfer failed: the source is unreachable"
            else:
                job.apply()
                job.state, job.message = "success", "success"
