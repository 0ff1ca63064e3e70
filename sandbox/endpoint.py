"""The sandbox's one local AWS endpoint (default http://127.0.0.1:4566).

A WSGI router reads the signing service and region from each request's SigV4 credential scope
(`Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-2/drs/aws4_request, ...`) and
hands `drs`, `resource-explorer-2` and `servicequotas` to the project's emulators, everything
else to moto's server-mode application. boto3 and the AWS CLI need nothing but
`AWS_ENDPOINT_URL` (or `endpoint_url=`) and any dummy credentials.

Accounts are resolved exactly as moto resolves them (`MOTO_ACCOUNT_ID`, then the
`x-moto-account-id` header, then the access key through `moto.iam.models.get_account_id_from`,
which maps the access key of STS AssumeRole credentials to the role's account and any other key to
123456789012), so the emulators and moto agree on who is calling.

Every AWS call is counted by (signing service, operation). A regional outage (knob
`regions_down`) fails every call signed for a region that is down, whatever the service: HTTP 503
with AWS's generic "Service Unavailable" body, or a dropped connection (`outage_mode:
connection`); the estate seeder is not affected. Admin paths under `/_sandbox/`:

    GET  /_sandbox/health                 {"status": "ok"}
    GET  /_sandbox/stats                  {"total": N, "calls": {"drs": {"StartRecovery": 2}}}
                                          (+ "refused": calls failed by a regional outage)
    POST /_sandbox/stats/reset
    GET  /_sandbox/config                 the current knobs
    POST /_sandbox/config                 partial update of the knobs (400 names the bad key)
    POST /_sandbox/drs/source-servers     {"account", "region", "source_servers": [...]}
    POST /_sandbox/service-quotas         {"account", "region", "service_code": "drs",
                                           "quotas": {code or name: value}} (applied values)
    POST /_sandbox/ssm/sql-ags            {"account", "ags": [...]} SQL Server availability groups
                                          behind SSM Run Command (emulators/ssm_run_command.py)
    POST /_sandbox/ssm/automation         {"account", "region", "documents": {name: {"outcomes",
                                           "seconds", "message"}}} (how executions end)
    POST /_sandbox/eks/clusters           {"account", "region", "cluster", "nodegroups",
                                           "addons", "deployments"} (emulated Kubernetes API,
                                           add-ons, node group status; see emulators.kubernetes)
    POST /_sandbox/route53/health         {"account", "health_check_id", "healthy"} (measured)
    POST /_sandbox/efs/replication        {"account", "region", "file_system_id", "lag_seconds",
                                           "status"} (an emulated EFS replication's lag/status)
    POST /_sandbox/ontap/file-systems     {"file_system_id", "username", "password",
                                           "relationships"} (emulated ONTAP SnapMirror, served
                                           under /_ontap/<file system id>/api/...)
    POST /_sandbox/reset                  clears moto and the emulators
    GET  /_sandbox/drs/launches           every launch the DRS emulator planned (duration,
                                          outcome, job tags, created_at): the benchmark's
                                          critical path

EKS add-on calls (`/clusters/{name}/addons...`) and Route 53 `TestDNSAnswer` go to emulators
(moto lacks them); the rest of EKS and Route 53 to moto. `/_k8s/...` is the emulated Kubernetes
API of the seeded EKS clusters (their moto `endpoint` points there).

Run it with `python -m sandbox.endpoint --port 4566` (foreground until SIGTERM/SIGINT) or
in-process with `SandboxEndpoint().start(port=0)`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import botocore.session
from pydantic import ValidationError
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from .emulators import Caller, ConfigError, Knobs, describe_validation_error
from .emulators.drs import DrsEmulator, SourceServersRequest
from .emulators.efs_replication import EfsReplicationEmulator
from .emulators.eks_addons import EksAddonsEmulator
from .emulators.elasticache_global import ElastiCacheGlobalEmulator
from .emulators.kubernetes import PREFIX as KUBERNETES_PREFIX
from .emulators.kubernetes import KubernetesEmulator
from .emulators.ontap import PREFIX as ONTAP_PREFIX
from .emulators.ontap import FsxOntapEmulator, OntapRestEmulator
from .emulators.resource_explorer import ResourceExplorerEmulator
from .emulators.route53_dns import Route53DnsEmulator
from .emulators.service_quotas import (
    QuotaError,
    QuotaStore,
    QuotaValuesRequest,
    ServiceQuotasEmulator,
)
from .emulators.ssm_automation import SsmAutomationEmulator
from .emulators.ssm_run_command import SsmRunCommandEmulator
from .emulators.validation import RestJsonEmulator, UriMatcher

log = logging.getLogger("sandbox.endpoint")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566
ADMIN_PREFIX = "/_sandbox/"
UNSIGNED = "unsigned"

_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
# moto's own pattern for the access key in an Authorization header (BaseResponse).
_ACCESS_KEY = re.compile(r"AWS.*(?P<access_key>(?<![A-Z0-9])[A-Z0-9]{20}(?![A-Z0-9]))[:/]")
# Signing names that are not the botocore service name (for naming rest-protocol operations).
_MODEL_ALIASES = {
    "elasticfilesystem": "efs",
    "eventbridge": "events",
    "states": "stepfunctions",
    "execute-api": "apigateway",
    "monitoring": "cloudwatch",
    "email": "ses",
}

StartResponse = Callable[..., Any]


def signing_scope(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(service, region) from the SigV4 credential scope (header or presigned query)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    found = _SCOPE.search(auth)
    if found is None:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        credential = (query.get("X-Amz-Credential") or [""])[0]
        found = _SCOPE.search(f"Credential={credential}") if credential else None
    if found is None:
        return None
    return found.group(3).lower(), found.group(2)


def resolve_account(environ: dict[str, Any]) -> tuple[str, str]:
    """(account, access key) exactly as moto resolves them for the same request."""
    from moto.iam.models import get_account_id_from

    access_key = "AKIAEXAMPLE"
    found = _ACCESS_KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
    if found:
        access_key = found.group("access_key")
    else:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if query.get("AWSAccessKeyId"):
            access_key = query["AWSAccessKeyId"][0]
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"], access_key
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return environ["HTTP_X_MOTO_ACCOUNT_ID"], access_key
    return get_account_id_from(access_key), access_key


@functools.cache
def _matcher_for(service: str) -> UriMatcher | None:
    session = botocore.session.get_session()
    for name in (service, _MODEL_ALIASES.get(service)):
        if not name:
            continue
        try:
            model = session.get_service_model(name)
        except Exception:
            continue
        if model.protocol.startswith("rest"):
            return UriMatcher(model)
        return None
    return None


# Who made a call, from a marker in its user agent: the operator's drctl, the sandbox runtime's
# queue polling (Lambda's job in AWS), the estate seeder, or else the orchestration's services.
CALLER_MARKERS = (("drctl", "operator"), ("dr-runtime", "runtime"), ("dr-seed", "seed"))
CALLER_SERVICES = "services"
# The estate seeder builds the world: a regional outage (`regions_down`) does not stop it.
CALLER_SEED = "seed"
OUTAGE_BODY = "<html><body><b>Http/1.1 Service Unavailable</b></body></html>"


def caller_of(environ: dict[str, Any]) -> str:
    agent = environ.get("HTTP_USER_AGENT", "")
    return next((name for marker, name in CALLER_MARKERS if marker in agent), CALLER_SERVICES)


class CallStats:
    """Thread-safe counter of calls by caller, service and operation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, dict[str, dict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int))
        )
        self._refused: dict[str, dict[str, dict[str, dict[str, int]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
        )

    def count(self, service: str, operation: str, caller: str = CALLER_SERVICES) -> None:
        with self._lock:
            self._calls[caller][service][operation] += 1

    def snapshot(self) -> dict[str, Any]:
        """`calls` counts everyone; `by_caller` totals and `calls_by_caller` split them."""
        with self._lock:
            merged: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for services in self._calls.values():
                for service, operations in services.items():
                    for operation, n in operations.items():
                        merged[service][operation] += n
            return {
                "total": sum(sum(ops.values()) for ops in merged.values()),
                "calls": {s: dict(ops) for s, ops in sorted(merged.items())},
                "by_caller": {
                    caller: sum(sum(ops.values()) for ops in services.values())
                    for caller, services in sorted(self._calls.items())
                },
                "calls_by_caller": {
                    caller: {s: dict(ops) for s, ops in sorted(services.items())}
                    for caller, services in sorted(self._calls.items())
                },
            } | ({"refused": self._refused_locked()} if self._refused else {})

    def _refused_locked(self) -> dict[str, Any]:
        return {
            region: {
                caller: {s: dict(ops) for s, ops in sorted(services.items())}
                for caller, services in sorted(callers.items())
            }
            for region, callers in sorted(self._refused.items())
        }

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._refused.clear()

    def refuse(self, region: str, service: str, operation: str, caller: str) -> None:
        """Count a call failed by a regional outage (also counted as a call)."""
        with self._lock:
            self._refused[region][caller][service][operation] += 1

    def refused(self) -> dict[str, Any]:
        """Calls failed by a regional outage: region -> caller -> service -> operation -> n."""
        with self._lock:
            return self._refused_locked()


def _read_body(environ: dict[str, Any]) -> bytes:
    """Buffer the request body and re-inject it so the next application can read it again."""
    stream = environ.get("wsgi.input")
    body = b""
    if stream is not None:
        length = environ.get("CONTENT_LENGTH")
        if length:
            try:
                body = stream.read(int(length))
            except ValueError:
                body = b""
        elif environ.get("wsgi.input_terminated") or "chunked" in environ.get(
            "HTTP_TRANSFER_ENCODING", ""
        ):
            body = stream.read()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return body


def operation_name(service: str, environ: dict[str, Any], body: bytes) -> str:
    """The AWS operation a request calls: X-Amz-Target (json), Action (query), else the model's
    requestUri (rest), else "METHOD /path"."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    content_type = environ.get("CONTENT_TYPE", "")
    if body and content_type.startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return form["Action"][0]
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/") or "/"
    matcher = _matcher_for(service) if service != UNSIGNED else None
    if matcher is not None:
        found = matcher.match(method, path, {k: v[0] for k, v in query.items()})
        if found:
            return found[0]
    return f"{method} {path}"


class SandboxApp:
    """The WSGI router: admin paths, emulators by signing service, moto for the rest."""

    def __init__(self) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app

        from . import moto_patches

        moto_patches.install()
        self.knobs = Knobs()
        self.stats = CallStats()
        # Service Quotas and DRS share the quota values: DRS enforces what Service Quotas says.
        self.quotas = QuotaStore()
        self.drs = DrsEmulator(self.knobs, self.quotas)
        self.resource_explorer = ResourceExplorerEmulator(self.knobs)
        self.service_quotas = ServiceQuotasEmulator(self.knobs, self.quotas)
        self.emulators: dict[str, RestJsonEmulator | ServiceQuotasEmulator] = {
            "drs": self.drs,
            "resource-explorer-2": self.resource_explorer,
            "servicequotas": self.service_quotas,  # signing name of service-quotas
        }
        # SSM Automation executions (moto lacks them), routed by X-Amz-Target; other SSM: moto.
        self.ssm_automation = SsmAutomationEmulator(self.knobs)
        # SSM Run Command with emulated SQL Server availability groups (moto runs nothing).
        self.ssm_run_command = SsmRunCommandEmulator(self.knobs)
        # FSx DescribeFileSystems with ONTAP endpoints (moto lacks them); other FSx: moto.
        self.fsx_ontap = FsxOntapEmulator(self.knobs)
        # The ONTAP REST API of FSx management endpoints, under /_ontap/<file system id>.
        self.ontap = OntapRestEmulator(self.knobs)
        self.by_target: dict[str, Any] = {
            **self.fsx_ontap.targets(),
            **self.ssm_automation.targets(),
            **self.ssm_run_command.targets(),
        }
        # Operations moto lacks inside services it has, routed by signing service + path.
        self.eks_addons = EksAddonsEmulator(self.knobs)
        self.route53_dns = Route53DnsEmulator(self.knobs)
        self.kubernetes = KubernetesEmulator(self.knobs, self.eks_addons)
        self.by_path: tuple[tuple[str, Callable[[str], bool], Any], ...] = (
            ("eks", self.eks_addons.handles, self.eks_addons),
            ("route53", self.route53_dns.handles, self.route53_dns),
        )
        # EFS replication and file system protection (moto lacks them), routed by signing
        # service + operation name (one path serves several operations); other EFS calls: moto.
        self.efs_replication = EfsReplicationEmulator(self.knobs)
        # ElastiCache Global Datastores (moto lacks them), routed by operation name.
        self.elasticache_global = ElastiCacheGlobalEmulator(self.knobs)
        self.by_operation: dict[tuple[str, str], Any] = {
            **self.efs_replication.by_operation(),
            **self.elasticache_global.by_operation(),
        }
        self.moto = DomainDispatcherApplication(create_backend_app)
        # DynamoDB checks a condition and writes atomically; moto does not when requests run on
        # several threads (two transactions may both pass the same condition). Serving DynamoDB
        # requests one at a time restores AWS's semantics; its calls take milliseconds.
        self._serialized: dict[str, threading.Lock] = {"dynamodb": threading.Lock()}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(ADMIN_PREFIX):
            return self._admin(Request(environ))(environ, start_response)
        body = _read_body(environ)
        if path.startswith("/moto-api"):
            return self.moto(environ, start_response)
        if path.startswith(ONTAP_PREFIX):
            self.stats.count("ontap", environ.get("REQUEST_METHOD", "GET"), caller_of(environ))
            return self.ontap.handle(Request(environ))(environ, start_response)
        if path.startswith(KUBERNETES_PREFIX):
            self.stats.count("kubernetes", environ.get("REQUEST_METHOD", "GET"), caller_of(environ))
            return self.kubernetes.handle(Request(environ))(environ, start_response)
        scope = signing_scope(environ)
        service, region = scope if scope else (UNSIGNED, "")
        operation, caller_name = operation_name(service, environ, body), caller_of(environ)
        self.stats.count(service, operation, caller_name)
        if region and caller_name != CALLER_SEED and self.knobs.region_down(region):
            self.stats.refuse(region, service, operation, caller_name)
            return self._outage(environ, start_response)
        emulator = self.emulators.get(service) or self.by_target.get(
            environ.get("HTTP_X_AMZ_TARGET", "")
        )
        emulator = emulator or next(
            (e for s, match, e in self.by_path if s == service and match(path)), None
        )
        emulator = emulator or self.by_operation.get((service, operation))
        if emulator is not None:
            account, access_key = resolve_account(environ)
            caller = Caller(account=account, region=region, access_key=access_key)
            return emulator.handle(Request(environ), caller)(environ, start_response)
        lock = self._serialized.get(service)
        if lock is None:
            return self.moto(environ, start_response)
        with lock:
            # The whole response is produced inside the call, so the lock covers the write.
            return list(self.moto(environ, start_response))

    def _outage(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """What a client sees from a region that is down (the `regions_down` knob)."""
        if self.knobs.config.outage_mode == "connection":
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                # The server's write then fails as a dropped connection, which it ignores.
                start_response("503 Service Unavailable", [("Content-Length", "0")])
                return [b""]
        # The generic answer of an AWS front end with nothing behind it: botocore reports it as
        # error code "503" in every protocol, and its retry modes retry it.
        return Response(OUTAGE_BODY, status=503, mimetype="text/html")(environ, start_response)

    # -- admin

    def _admin(self, request: Request) -> Response:
        route = (request.method, request.path.rstrip("/"))
        try:
            if route == ("GET", "/_sandbox/health"):
                return _json({"status": "ok"})
            if route == ("GET", "/_sandbox/stats"):
                return _json(self.stats.snapshot())
            if route == ("POST", "/_sandbox/stats/reset"):
                self.stats.reset()
                return _json(self.stats.snapshot())
            if route == ("GET", "/_sandbox/config"):
                return _json(self.knobs.config.model_dump())
            if route == ("POST", "/_sandbox/config"):
                return _json(self.knobs.update(_body_json(request)).model_dump())
            if route == ("POST", "/_sandbox/drs/source-servers"):
                data = _body_json(request)
                try:
                    payload = SourceServersRequest.model_validate(data)
                except ValidationError as err:
                    raise ConfigError(describe_validation_error(err, data)) from None
                ids = self.drs.register_source_servers(payload)
                return _json({"source_server_ids": ids})
            if route == ("POST", "/_sandbox/service-quotas"):
                data = _body_json(request)
                try:
                    applied = self.quotas.apply(QuotaValuesRequest.model_validate(data))
                except ValidationError as err:
                    raise ConfigError(describe_validation_error(err, data)) from None
                except QuotaError as err:
                    raise ConfigError(str(err)) from None
                return _json({"applied": applied})
            if route == ("POST", "/_sandbox/ssm/automation"):
                return _json(self.ssm_automation.configure(_body_json(request)))
            if route == ("POST", "/_sandbox/ssm/sql-ags"):
                return _json(self.ssm_run_command.register(_body_json(request)))
            if route == ("POST", "/_sandbox/eks/clusters"):
                return _json(self.kubernetes.configure(_body_json(request), request.host_url))
            if route == ("POST", "/_sandbox/route53/health"):
                return _json(self.route53_dns.set_health(_body_json(request)))
            if route == ("POST", "/_sandbox/ontap/file-systems"):
                return _json(self.ontap.configure(_body_json(request)))
            if route == ("POST", "/_sandbox/efs/replication"):
                return _json(self.efs_replication.configure(_body_json(request)))
            if route == ("GET", "/_sandbox/drs/launches"):
                return _json(self.drs.launch_plans())
            if route == ("POST", "/_sandbox/reset"):
                self.reset()
                return _json({"status": "reset"})
        except ConfigError as err:
            return _json({"message": str(err)}, status=400)
        return _json({"message": f"no admin route {request.method} {request.path}"}, status=404)

    def reset(self) -> None:
        """Clear everything: the emulators, moto (through its own reset) and the call counts."""
        for emulator in self.emulators.values():
            emulator.reset()
        self.ssm_automation.reset()
        self.ssm_run_command.reset()
        for extra in (self.eks_addons, self.route53_dns, self.kubernetes):
            extra.reset()
        self.efs_replication.reset()
        self.fsx_ontap.reset()
        self.elasticache_global.reset()
        self.ontap.reset()
        response = Client(self.moto).post("/moto-api/reset")
        if response.status_code != 200:
            raise RuntimeError(f"moto reset answered {response.status_code}")
        self.knobs.reset()
        self.stats.reset()

    def close(self) -> None:
        self.drs.close()
        self.ssm_automation.close()
        self.ssm_run_command.close()


def _body_json(request: Request) -> Any:
    try:
        return json.loads(request.get_data() or b"{}")
    except ValueError as err:
        raise ConfigError(f"request body is not JSON: {err}") from None


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def _request_handler() -> type:
    from moto.server import MotoRequestHandler

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            if log.isEnabledFor(logging.DEBUG):
                super().log_request(*args, **kwargs)

    return QuietHandler


class SandboxEndpoint:
    """The endpoint served by werkzeug (threaded) in a daemon thread."""

    def __init__(self, app: SandboxApp | None = None) -> None:
        self.app = app or SandboxApp()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the sandbox endpoint is not started")
        return self._url

    def start(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, fresh: bool = True) -> str:
        """Serve on `host:port` (port 0: a free port) and return the URL. moto's state is global
        to the process, so a `fresh` start clears whatever an earlier endpoint left there."""
        if self._server is not None:
            return self.url
        if fresh:
            self.app.reset()
        server = make_server(
            host, port, self.app, threaded=True, request_handler=_request_handler()
        )
        self._server = server
        self._url = f"http://{host}:{server.server_port}"
        self._thread = threading.Thread(
            target=server.serve_forever, name="sandbox-endpoint", daemon=True
        )
        self._thread.start()
        log.info("sandbox endpoint serving at %s", self._url)
        return self._url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self.app.close()
        self._url = None

    def __enter__(self) -> SandboxEndpoint:
        if self._server is None:
            self.start(port=0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EndpointProcess:
    """The same endpoint served by `python -m sandbox.endpoint` in a child process.

    moto, the emulators and the handlers all run Python under one interpreter lock: in one
    process they share one core. The benchmark serves the endpoint from its own process, as AWS
    is not on the orchestration's machine, so that the handlers' own time is what it measures.
    State lives in the child: everything goes through HTTP (the admin paths included)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the sandbox endpoint is not started")
        return self._url

    def start(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
        if self._process is not None:
            return self.url
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox.endpoint",
                "--host",
                host,
                "--port",
                str(port),
                "--parent-pid",
                str(os.getpid()),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith(URL_LINE):
            self.stop()
            raise RuntimeError(f"the sandbox endpoint process did not start (it printed {line!r})")
        self._url = line[len(URL_LINE) :].strip()
        # Whatever the child prints later (moto writes some warnings to stdout) goes to ours,
        # and never fills the pipe.
        threading.Thread(
            target=shutil.copyfileobj,
            args=(process.stdout, sys.stdout),
            name="sandbox-endpoint-output",
            daemon=True,
        ).start()
        return self._url

    def peak_memory_mb(self) -> float | None:
        """The child's peak resident memory so far (Linux's VmHWM), None where unknown."""
        if self._process is None:
            return None
        try:
            with open(f"/proc/{self._process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self) -> None:
        process, self._process, self._url = self._process, None, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


URL_LINE = "sandbox endpoint: "
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _exit_with_parent(parent_pid: int) -> bool:
    """Ask Linux for SIGTERM when the parent dies; False if it is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent_pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.endpoint", description="Serve the local AWS sandbox endpoint."
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument(
        "--parent-pid",
        type=int,
        help="stop when this process ends (Linux), so that no endpoint outlives its user",
    )
    args = parser.parse_args(argv)
    if args.parent_pid is not None and not _exit_with_parent(args.parent_pid):
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    endpoint = SandboxEndpoint()
    url = endpoint.start(args.host, args.port)
    print(f"{URL_LINE}{url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        endpoint.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
