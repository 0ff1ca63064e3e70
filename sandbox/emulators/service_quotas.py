"""Service Quotas (`service-quotas`) emulator: the quotas of AWS Elastic Disaster Recovery.

moto has no Service Quotas. botocore's `service-quotas` model is the truth for shapes: the
protocol is `json` (every call is `POST /` with `X-Amz-Target: ServiceQuotasV20190624.<Op>`),
and every request and response is validated against the model, as for the rest-json emulators.

Semantics (Service Quotas user guide):
- Quotas are per account and region. `ListAWSDefaultServiceQuotas` / `GetAWSDefaultServiceQuota`
  answer the defaults; `ListServiceQuotas` / `GetServiceQuota` answer *applied* values, and only
  for quotas that have one ("if the applied quota value is not available for a quota, the quota
  is not retrieved"): a client must fall back to the defaults for the others.
- Applied values are set the way a granted increase would set them, through the admin path
  `POST /_sandbox/service-quotas` (`QuotaStore.apply`); the estate file's `quotas:` does that.
- The DRS emulator enforces the same values (`QuotaStore.value`), so a quota the orchestration
  read is the quota DRS holds it to.
- Unknown service code: NoSuchResourceException; a bad NextToken: InvalidPaginationTokenException;
  the `throttle_rate` knob answers TooManyRequestsException.

Only service code `drs` is known. Its quota names are those of the DRS endpoints and quotas
page; the quota codes are the sandbox's own (AWS's are `L-...` codes a client should not
hard-code: match quotas by name).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Request, Response

from . import Caller, Knobs
from .validation import ResponseInvalid, ServiceCodec, ServiceError, operation

log = logging.getLogger("sandbox.emulators.service_quotas")

DRS = "drs"
DRS_SERVICE_NAME = "AWS Elastic Disaster Recovery"
PAGE_SIZE_DEFAULT = 100


@dataclass(frozen=True)
class QuotaSpec:
    code: str
    name: str
    default: float
    adjustable: bool = True
    description: str = ""


# The DRS quotas the orchestration schedules within (and a few others DRS documents).
DRS_MAX_SERVERS_PER_JOB = QuotaSpec(
    "MaxSourceServersInJob",
    "Max source servers in a single Drill or Recovery job",
    100,
    adjustable=False,
)
DRS_MAX_SERVERS_IN_ACTIVE_JOBS = QuotaSpec(
    "MaxSourceServersInAllActiveJobs",
    "Max source servers in all Drill or Recovery jobs",
    500,
    adjustable=False,
)
DRS_MAX_CONCURRENT_JOBS = QuotaSpec(
    "MaxConcurrentJobs", "Max concurrent Jobs in progress", 20, adjustable=False
)
DRS_QUOTAS: tuple[QuotaSpec, ...] = (
    DRS_MAX_SERVERS_PER_JOB,
    DRS_MAX_SERVERS_IN_ACTIVE_JOBS,
    DRS_MAX_CONCURRENT_JOBS,
    QuotaSpec("MaxReplicatingSourceServers", "Max replicating source servers", 300),
    QuotaSpec("MaxTotalSourceServers", "Max total source servers per AWS Account", 4000),
)
SERVICES: dict[str, tuple[str, tuple[QuotaSpec, ...]]] = {DRS: (DRS_SERVICE_NAME, DRS_QUOTAS)}


class QuotaValuesRequest(BaseModel):
    """Admin payload: applied values by quota code or quota name."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(pattern=r"^\d{12}$")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    service_code: str = DRS
    quotas: dict[str, float] = Field(default_factory=dict)


class QuotaError(ValueError):
    """A bad admin payload (unknown service or quota); the message names it."""


class QuotaStore:
    """Applied quota values per (account, region, service code); defaults for the rest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._applied: dict[tuple[str, str, str], dict[str, float]] = {}

    def reset(self) -> None:
        with self._lock:
            self._applied.clear()

    @staticmethod
    def spec(service_code: str, key: str) -> QuotaSpec:
        """The quota named by code or by name (case-insensitive)."""
        if service_code not in SERVICES:
            raise QuotaError(f"unknown service code {service_code!r}; known: {', '.join(SERVICES)}")
        for spec in SERVICES[service_code][1]:
            if key == spec.code or key.lower() == spec.name.lower():
                return spec
        known = ", ".join(s.code for s in SERVICES[service_code][1])
        raise QuotaError(f"unknown {service_code} quota {key!r}; known codes: {known}")

    def apply(self, request: QuotaValuesRequest) -> dict[str, float]:
        if request.service_code not in SERVICES:
            raise QuotaError(
                f"unknown service code {request.service_code!r}; known: {', '.join(SERVICES)}"
            )
        values = {self.spec(request.service_code, k).code: v for k, v in request.quotas.items()}
        for code, value in values.items():
            if not 0 <= value <= 10_000_000_000:
                raise QuotaError(f"quota {code} = {value!r}: must be from 0 to 10000000000")
        with self._lock:
            key = (request.account, request.region, request.service_code)
            self._applied.setdefault(key, {}).update(values)
            return dict(self._applied[key])

    def applied(self, account: str, region: str, service_code: str) -> dict[str, float]:
        with self._lock:
            return dict(self._applied.get((account, region, service_code), {}))

    def value(self, account: str, region: str, spec: QuotaSpec, service_code: str = DRS) -> int:
        """The quota DRS holds an account + region to: the applied value, else the default."""
        return int(self.applied(account, region, service_code).get(spec.code, spec.default))


class JsonEmulator:
    """Base of an emulated `json`-protocol service: routes on `X-Amz-Target`, validates the
    request and the response against botocore's model, answers modelled errors."""

    service_name: ClassVar[str]
    _handlers: ClassVar[dict[str, str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = {
            value._operation_name: attr
            for klass in reversed(cls.__mro__)
            for attr, value in vars(klass).items()
            if getattr(value, "_operation_name", None)
        }

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.codec = ServiceCodec(self.service_name)
        self._prefix = self.codec.model.metadata["targetPrefix"] + "."
        unknown = set(self._handlers) - set(self.codec.model.operation_names)
        if unknown:
            raise TypeError(f"{type(self).__name__} handles operations not in the model: {unknown}")

    @property
    def operations(self) -> Iterable[str]:
        return sorted(self._handlers)

    def reset(self) -> None:
        raise NotImplementedError

    def handle(self, request: Request, caller: Caller) -> Response:
        op_name = "?"
        try:
            try:
                target = request.headers.get("X-Amz-Target", "")
                op_name = target.removeprefix(self._prefix)
                if not target.startswith(self._prefix) or (
                    op_name not in self.codec.model.operation_names
                ):
                    raise ServiceError(
                        "UnknownOperationException", f"Unknown operation {target!r}", status=400
                    )
                op = self.codec.operation(op_name)
                if self.knobs.throttled():
                    raise ServiceError("TooManyRequestsException", "Rate exceeded")
                params = self.codec.parse_request(op, {}, request.args, {}, request.get_data())
                self.codec.validate_request(op, params)
                attr = self._handlers.get(op_name)
                if attr is None:
                    raise ServiceError(
                        "ServiceException",
                        f"{self.service_name} {op_name} is not emulated by the sandbox",
                        status=501,
                    )
                output = getattr(self, attr)(caller, params)
                self.codec.validate_response(op, output)
                status, headers, body = self.codec.serialize_output(op, output)
                headers["Content-Type"] = "application/x-amz-json-1.1"
            except ServiceError as err:
                status, headers, body = self._error(err)
        except ResponseInvalid as bug:
            log.error("emulator bug: %s", bug)
            status, headers, body = self._error(
                ServiceError("ServiceException", f"sandbox emulator bug: {bug}", status=500)
            )
        except Exception as bug:
            log.exception("emulator crashed in %s %s", self.service_name, op_name)
            status, headers, body = self._error(
                ServiceError("ServiceException", f"sandbox emulator bug: {bug}", status=500)
            )
        headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return Response(body, status=status, headers=headers)

    def _error(self, err: ServiceError) -> tuple[int, dict[str, str], bytes]:
        """The json protocol's error: `__type` in the body (botocore reads it) and the header."""
        if self.codec._error_shape(err.code) is None:
            status = err.status or 400
            headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": err.code}
            body = {"__type": err.code, "Message": err.message}
            return status, headers, json.dumps(body).encode()
        status, headers, raw = self.codec.serialize_error(err)
        body = {"__type": err.code, **json.loads(raw)}
        headers["Content-Type"] = "application/x-amz-json-1.1"
        return status, headers, json.dumps(body).encode()


def _page(items: list[Any], params: Mapping[str, Any]) -> tuple[list[Any], str | None]:
    token = params.get("NextToken")
    start = 0
    if token:
        try:
            start = int(base64.b64decode(token.encode()).decode())
        except ValueError:
            raise ServiceError(
                "InvalidPaginationTokenException", f"Invalid pagination token '{token}'"
            ) from None
    size = int(params.get("MaxResults") or PAGE_SIZE_DEFAULT)
    chunk = items[start : start + size]
    more = start + size < len(items)
    return chunk, base64.b64encode(str(start + size).encode()).decode() if more else None


class ServiceQuotasEmulator(JsonEmulator):
    service_name = "service-quotas"

    def __init__(self, knobs: Knobs, store: QuotaStore | None = None) -> None:
        super().__init__(knobs)
        self.store = store or QuotaStore()

    def reset(self) -> None:
        self.store.reset()

    def _service(self, code: str) -> tuple[str, tuple[QuotaSpec, ...]]:
        if code not in SERVICES:
            raise ServiceError(
                "NoSuchResourceException",
                f"The request failed because the service {code} does not exist.",
            )
        return SERVICES[code]

    def _quota(
        self, caller: Caller, service_code: str, spec: QuotaSpec, value: float
    ) -> dict[str, Any]:
        service_name, _ = self._service(service_code)
        return {
            "ServiceCode": service_code,
            "ServiceName": service_name,
            "QuotaArn": (
                f"arn:aws:servicequotas:{caller.region}:{caller.account}:{service_code}/{spec.code}"
            ),
            "QuotaCode": spec.code,
            "QuotaName": spec.name,
            "Value": float(value),
            "Unit": "None",
            "Adjustable": spec.adjustable,
            "GlobalQuota": False,
            "QuotaAppliedAtLevel": "ACCOUNT",
        }

    def _find(self, service_code: str, quota_code: str) -> QuotaSpec:
        _, specs = self._service(service_code)
        for spec in specs:
            if spec.code == quota_code:
                return spec
        raise ServiceError(
            "NoSuchResourceException",
            f"The request failed because the quota {quota_code} of {service_code} does not exist.",
        )

    @operation("ListServices")
    def list_services(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        items = [{"ServiceCode": c, "ServiceName": n} for c, (n, _) in sorted(SERVICES.items())]
        page, token = _page(items, params)
        return {"Services": page, **({"NextToken": token} if token else {})}

    @operation("ListAWSDefaultServiceQuotas")
    def list_default(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        code = params["ServiceCode"]
        _, specs = self._service(code)
        items = [self._quota(caller, code, s, s.default) for s in specs]
        page, token = _page(items, params)
        return {"Quotas": page, **({"NextToken": token} if token else {})}

    @operation("GetAWSDefaultServiceQuota")
    def get_default(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        spec = self._find(params["ServiceCode"], params["QuotaCode"])
        return {"Quota": self._quota(caller, params["ServiceCode"], spec, spec.default)}

    @operation("ListServiceQuotas")
    def list_applied(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        code = params["ServiceCode"]
        _, specs = self._service(code)
        applied = self.store.applied(caller.account, caller.region, code)
        wanted = params.get("QuotaCode")
        items = [
            self._quota(caller, code, s, applied[s.code])
            for s in specs
            if s.code in applied and (wanted is None or wanted == s.code)
        ]
        page, token = _page(items, params)
        return {"Quotas": page, **({"NextToken": token} if token else {})}

    @operation("GetServiceQuota")
    def get_applied(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        code = params["ServiceCode"]
        spec = self._find(code, params["QuotaCode"])
        applied = self.store.applied(caller.account, caller.region, code)
        if spec.code not in applied:
            raise ServiceError(
                "NoSuchResourceException",
                f"The request failed because the applied value of {spec.code} is not available; "
                "use GetAWSDefaultServiceQuota.",
            )
        return {"Quota": self._quota(caller, code, spec, applied[spec.code])}
