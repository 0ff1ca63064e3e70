"""The wire layer every emulator shares, driven by botocore's service model (the truth).

- `UriMatcher` maps an HTTP method + path to an operation of a rest protocol service.
- `ServiceCodec` parses a rest-json request into the operation's input parameters (members located
  in the uri, querystring and headers come from there, the rest from the JSON body), validates
  them (botocore's `ParamValidator` for required members and types, then `check_shape` for what
  ParamValidator does not check: max lengths and values, enums and patterns), serializes outputs
  and errors the way the real service does.
- Every response is checked against the output shape too. A response that does not match is an
  emulator bug: it is logged and answered as a 500 `InternalServerException` carrying the detail,
  so that tests catch it.
- `RestJsonEmulator` is the base class of an emulated service: it routes a request to the method
  registered with `@operation("Name")`, applies throttling, and turns `ServiceError` into the
  modelled error response (status code of the error shape, `x-amzn-ErrorType` header, JSON body
  with `message` and the modelled members such as `reason`, `fieldList`, `Retry-After`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape, StructureShape
from botocore.validate import ParamValidator
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from . import Caller, Knobs

log = logging.getLogger("sandbox.emulators")

_SESSION = botocore.session.get_session()


@functools.cache
def service_model(service_name: str) -> ServiceModel:
    return _SESSION.get_service_model(service_name)


# --------------------------------------------------------------------------------------------
# Errors


class ServiceError(Exception):
    """An error the emulated service answers with; `members` are the error shape's members."""

    def __init__(self, code: str, message: str, *, status: int | None = None, **members: Any):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.members = members


class ResponseInvalid(Exception):
    """An emulator produced a response that does not match the output shape (an emulator bug)."""


# --------------------------------------------------------------------------------------------
# Shape checking


@dataclass(frozen=True)
class Problem:
    path: str
    value: Any
    message: str
    # "missing" | "type" | "unknown" | "constraint"
    kind: str = "constraint"
    sensitive: bool = False

    def describe(self) -> str:
        if self.kind == "unknown":
            return f"Unknown member '{self.path}'"
        if self.kind == "missing":
            value = "null"
        elif self.sensitive:
            value = "'*** Sensitive Data Redacted ***'"
        else:
            value = f"'{_short(self.value)}'"
        return f"Value {value} at '{self.path}' failed to satisfy constraint: {self.message}"


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def format_problems(problems: list[Problem], limit: int = 10) -> str:
    count = len(problems)
    noun = "error" if count == 1 else "errors"
    text = f"{count} validation {noun} detected: " + "; ".join(
        p.describe() for p in problems[:limit]
    )
    return text + (f"; ... and {count - limit} more" if count > limit else "")


@functools.cache
def _pattern(expr: str) -> re.Pattern[str] | None:
    try:
        return re.compile(expr)
    except re.error:  # an ECMA-262 construct Python does not know: skip that check
        log.warning("cannot compile model pattern %r; not checked", expr)
        return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_range(shape: Shape, number: float, path: str, value: Any, out: list[Problem]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and number < low:
        out.append(Problem(path, value, f"Member must have value greater than or equal to {low}"))
    if high is not None and number > high:
        out.append(Problem(path, value, f"Member must have value less than or equal to {high}"))


def _check_length(shape: Shape, length: int, path: str, value: Any, out: list[Problem]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    sensitive = bool(shape.metadata.get("sensitive"))
    if low is not None and length < low:
        out.append(
            Problem(
                path,
                value,
                f"Member must have length greater than or equal to {low}",
                sensitive=sensitive,
            )
        )
    if high is not None and length > high:
        out.append(
            Problem(
                path,
                value,
                f"Member must have length less than or equal to {high}",
                sensitive=sensitive,
            )
        )


def check_shape(shape: Shape, value: Any, path: str = "") -> list[Problem]:
    """Every way `value` breaks `shape`: required members, types, enums, patterns, lengths and
    ranges, unknown members. Timestamps may be `datetime` objects or ISO-8601/epoch values."""
    out: list[Problem] = []
    _check(shape, value, path, out)
    return out


def _check(shape: Shape, value: Any, path: str, out: list[Problem]) -> None:
    kind = "document" if getattr(shape, "is_document_type", False) else shape.type_name
    where = path or shape.name
    if value is None:
        return
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if not isinstance(value, Mapping):
            out.append(Problem(where, value, "Member must be a structure", "type"))
            return
        for name in shape.required_members:
            if value.get(name) is None:
                out.append(Problem(_join(path, name), None, "Member must not be null", "missing"))
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is None:
                out.append(Problem(_join(path, name), member_value, "unknown member", "unknown"))
                continue
            _check(member, member_value, _join(path, name), out)
    elif kind == "list":
        if not isinstance(value, list | tuple):
            out.append(Problem(where, value, "Member must be a list", "type"))
            return
        _check_length(shape, len(value), where, value, out)
        for index, item in enumerate(value):
            _check(shape.member, item, f"{where}[{index}]", out)
    elif kind == "map":
        if not isinstance(value, Mapping):
            out.append(Problem(where, value, "Member must be a map", "type"))
            return
        _check_length(shape, len(value), where, value, out)
        for key, item in value.items():
            _check(shape.key, key, f"{where}.<key>", out)
            _check(shape.value, item, f"{where}.{key}", out)
    elif kind == "string":
        if not isinstance(value, str):
            out.append(Problem(where, value, "Member must be a string", "type"))
            return
        _check_length(shape, len(value), where, value, out)
        enum = shape.enum
        if enum and value not in enum:
            out.append(
                Problem(where, value, f"Member must satisfy enum value set: [{', '.join(enum)}]")
            )
        expr = shape.metadata.get("pattern")
        compiled = _pattern(expr) if expr else None
        if compiled is not None and compiled.search(value) is None:
            out.append(
                Problem(
                    where,
                    value,
                    f"Member must satisfy regular expression pattern: {expr}",
                    sensitive=bool(shape.metadata.get("sensitive")),
                )
            )
    elif kind in ("integer", "long"):
        if not _is_int(value):
            out.append(Problem(where, value, "Member must be an integer", "type"))
            return
        _check_range(shape, value, where, value, out)
    elif kind in ("float", "double"):
        if not (_is_int(value) or isinstance(value, float)):
            out.append(Problem(where, value, "Member must be a number", "type"))
            return
        _check_range(shape, value, where, value, out)
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append(Problem(where, value, "Member must be a boolean", "type"))
    elif kind == "timestamp":
        if not isinstance(value, dt.datetime) and not _parses_as_time(value):
            out.append(Problem(where, value, "Member must be a timestamp", "type"))
    elif kind == "blob":
        if not isinstance(value, bytes | bytearray | str):
            out.append(Problem(where, value, "Member must be a blob", "type"))
    elif kind == "document":
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            out.append(Problem(where, value, "Member must be a JSON document", "type"))


def _parses_as_time(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return True
        except ValueError:
            return False
    return False


def iso_now() -> str:
    """The DRS flavour of time: ISO-8601 string with a `Z` (model pattern ISO8601DatetimeString)."""
    return iso(dt.datetime.now(dt.UTC))


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --------------------------------------------------------------------------------------------
# Routing by method + path


@dataclass(frozen=True)
class _Route:
    method: str
    regex: re.Pattern[str]
    query_literals: tuple[tuple[str, str | None], ...]
    operation: str
    weight: tuple[int, int]


class UriMatcher:
    """Matches method + path (+ literal query keys) against the model's `http.requestUri`.

    Labels match one path segment except greedy ones (`{Key+}`) and the last label of a uri,
    which may contain slashes (ARNs in `/tags/{resourceArn}` are not always encoded)."""

    _label = re.compile(r"\{([^}]+)\}")

    def __init__(self, model: ServiceModel) -> None:
        routes = []
        for name in model.operation_names:
            http = model.operation_model(name).http
            uri = http.get("requestUri", "/")
            path, _, query = uri.partition("?")
            labels = self._label.findall(path)
            regex = "^"
            pos = 0
            for index, match in enumerate(self._label.finditer(path)):
                regex += re.escape(path[pos : match.start()])
                label = match.group(1)
                greedy = label.endswith("+") or index == len(labels) - 1
                group = re.sub(r"\W", "_", label.rstrip("+"))
                regex += f"(?P<{group}>.+)" if greedy else f"(?P<{group}>[^/]+)"
                pos = match.end()
            regex += re.escape(path[pos:]).rstrip("/") + "/?$"
            literals: list[tuple[str, str | None]] = []
            for part in filter(None, query.split("&")):
                key, eq, val = part.partition("=")
                literals.append((key, val if eq else None))
            literal_chars = len(self._label.sub("", path))
            routes.append(
                _Route(
                    http.get("method", "POST").upper(),
                    re.compile(regex),
                    tuple(literals),
                    name,
                    (-(len(literals)), -literal_chars),
                )
            )
        self._routes = sorted(routes, key=lambda r: r.weight)
        self._labels_by_op = {
            name: {
                re.sub(r"\W", "_", raw.rstrip("+")): raw.rstrip("+")
                for raw in self._label.findall(model.operation_model(name).http["requestUri"])
            }
            for name in model.operation_names
        }

    def match(
        self, method: str, path: str, query: Mapping[str, Any] | None = None
    ) -> tuple[str, dict[str, str]] | None:
        query = query or {}
        for route in self._routes:
            if route.method != method.upper():
                continue
            found = route.regex.match(path)
            if not found:
                continue
            if any(
                key not in query or (val is not None and query.get(key) != val)
                for key, val in route.query_literals
            ):
                continue
            names = self._labels_by_op[route.operation]
            return route.operation, {names.get(k, k): v for k, v in found.groupdict().items()}
        return None


# --------------------------------------------------------------------------------------------
# Request parsing, validation, response serialization


def _coerce(shape: Shape, raw: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(raw)
        if kind in ("float", "double"):
            return float(raw)
        if kind == "boolean":
            if raw.lower() in ("true", "false"):
                return raw.lower() == "true"
            return raw
    except ValueError:
        return raw
    return raw


class ServiceCodec:
    """Model-driven request parsing / validation / response serialization for one service."""

    def __init__(self, service_name: str) -> None:
        self.model = service_model(service_name)
        self.matcher = UriMatcher(self.model)
        self._validator = ParamValidator()

    def operation(self, name: str) -> OperationModel:
        return self.model.operation_model(name)

    # -- requests

    def parse_request(
        self,
        op: OperationModel,
        uri_params: Mapping[str, str],
        query: MultiDict[str, str],
        headers: Any,
        body: bytes,
    ) -> dict[str, Any]:
        shape = op.input_shape
        if shape is None:
            return {}
        assert isinstance(shape, StructureShape)
        params: dict[str, Any] = {}
        lower_headers = {k.lower(): v for k, v in headers.items()}
        for name, member in shape.members.items():
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "uri" and wire in uri_params:
                params[name] = _coerce(member, uri_params[wire])
            elif location == "querystring":
                if member.type_name == "list":
                    values = query.getlist(wire)
                    if values:
                        params[name] = [_coerce(member.member, v) for v in values]
                elif member.type_name == "map":
                    params[name] = dict(query.items())
                elif wire in query:
                    params[name] = _coerce(member, query[wire])
            elif location == "header" and wire.lower() in lower_headers:
                params[name] = _coerce(member, lower_headers[wire.lower()])
            elif location == "headers":
                prefix = wire.lower()
                found = {
                    k[len(prefix) :]: v for k, v in lower_headers.items() if k.startswith(prefix)
                }
                if found:
                    params[name] = found
        if not body.strip():
            return params
        try:
            document = json.loads(body)
        except ValueError as err:
            raise ServiceError(
                "ValidationException",
                f"Could not parse the request body as JSON: {err}",
                reason="cannotParse",
            ) from None
        payload = shape.serialization.get("payload")
        if payload:
            params[payload] = document
            return params
        if not isinstance(document, dict):
            raise ServiceError(
                "ValidationException",
                "The request body must be a JSON object",
                reason="cannotParse",
            )
        located = {
            n for n, m in shape.members.items() if m.serialization.get("location") is not None
        }
        for key, value in document.items():
            if key in located:
                continue
            params[key] = value
        return params

    def request_problems(self, op: OperationModel, params: Mapping[str, Any]) -> list[Problem]:
        shape = op.input_shape
        if shape is None:
            return (
                [Problem(k, v, "unknown member", "unknown") for k, v in params.items()]
                if params
                else []
            )
        report = self._validator.validate(dict(params), shape)
        problems = [_from_botocore(error) for error in report._errors]
        if problems:
            return problems
        return check_shape(shape, params)

    def validate_request(self, op: OperationModel, params: Mapping[str, Any]) -> None:
        problems = self.request_problems(op, params)
        if problems:
            raise self.validation_error(problems)

    def validation_error(self, problems: list[Problem]) -> ServiceError:
        shape = self._error_shape("ValidationException")
        members: dict[str, Any] = {}
        if shape is not None:
            if "reason" in shape.members:
                cannot_parse = any(p.kind == "type" for p in problems)
                members["reason"] = "cannotParse" if cannot_parse else "fieldValidationFailed"
            if "fieldList" in shape.members:
                members["fieldList"] = [{"name": p.path, "message": p.describe()} for p in problems]
            if "FieldList" in shape.members:
                members["FieldList"] = [
                    {"Name": p.path, "ValidationIssue": p.describe()} for p in problems
                ]
        return ServiceError("ValidationException", format_problems(problems), **members)

    # -- responses

    def validate_response(self, op: OperationModel, output: Mapping[str, Any]) -> None:
        shape = op.output_shape
        problems = check_shape(shape, output) if shape is not None else []
        if shape is None and output:
            problems = [Problem(k, v, "no output shape", "unknown") for k, v in output.items()]
        if problems:
            raise ResponseInvalid(
                f"{self.model.service_name} {op.name} response does not match "
                f"{shape.name if shape else 'no output'}: {format_problems(problems)}"
            )

    def serialize_output(
        self, op: OperationModel, output: Mapping[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        status = int(op.http.get("responseCode", 200))
        headers = {"Content-Type": "application/json"}
        shape = op.output_shape
        if shape is None:
            return status, headers, b"{}"
        body, status = self._split_members(shape, output, headers, status)
        return status, headers, json.dumps(body).encode()

    def _split_members(
        self, shape: Shape, values: Mapping[str, Any], headers: dict[str, str], status: int
    ) -> tuple[dict[str, Any], int]:
        assert isinstance(shape, StructureShape)
        body: dict[str, Any] = {}
        for name, value in values.items():
            member = shape.members.get(name)
            if member is None or value is None:
                continue
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "header":
                headers[wire] = _header_value(value)
            elif location == "headers":
                for key, item in value.items():
                    headers[wire + key] = str(item)
            elif location == "statusCode":
                status = int(value)
            else:
                body[wire] = _to_json(member, value)
        return body, status

    def _error_shape(self, code: str) -> StructureShape | None:
        for shape in self.model.error_shapes:
            if shape.name == code or shape.metadata.get("error", {}).get("code") == code:
                assert isinstance(shape, StructureShape)
                return shape
        return None

    def serialize_error(self, err: ServiceError) -> tuple[int, dict[str, str], bytes]:
        shape = self._error_shape(err.code)
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": err.code}
        status = err.status or 400
        if shape is None:
            body: dict[str, Any] = {"message": err.message, **err.members}
            return status, headers, json.dumps(body, default=str).encode()
        status = err.status or int(shape.metadata.get("error", {}).get("httpStatusCode", 400))
        message_key = "Message" if "Message" in shape.members else "message"
        values = {message_key: err.message, **err.members}
        problems = check_shape(shape, values)
        if problems:
            raise ResponseInvalid(
                f"{self.model.service_name} error {err.code} does not match its shape: "
                f"{format_problems(problems)}"
            )
        body, status = self._split_members(shape, values, headers, status)
        return status, headers, json.dumps(body).encode()


def _from_botocore(error: tuple[str, str, dict[str, Any]]) -> Problem:
    kind, name, details = error
    path = name.lstrip(".")
    if kind == "missing required field":
        return Problem(
            _join(path, details["required_name"]), None, "Member must not be null", "missing"
        )
    if kind == "unknown field":
        return Problem(_join(path, details["unknown_param"]), None, "unknown member", "unknown")
    if kind == "invalid type":
        expected = ", ".join(details.get("valid_types", []))
        return Problem(path, details.get("param"), f"Member must be of type {expected}", "type")
    if kind == "invalid length":
        return Problem(
            path,
            details.get("param"),
            f"Member must have length greater than or equal to {details.get('min_allowed')}",
        )
    if kind == "invalid range":
        return Problem(
            path,
            details.get("param"),
            f"Member must have value greater than or equal to {details.get('min_allowed')}",
        )
    return Problem(path, details, kind)


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    return str(value)


def _to_json(shape: Shape, value: Any) -> Any:
    kind = "document" if getattr(shape, "is_document_type", False) else shape.type_name
    if value is None:
        return None
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        return {
            shape.members[k].serialization.get("name", k): _to_json(shape.members[k], v)
            for k, v in value.items()
            if k in shape.members and v is not None
        }
    if kind == "list":
        return [_to_json(shape.member, v) for v in value]
    if kind == "map":
        return {k: _to_json(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, dt.datetime):
            if shape.serialization.get("timestampFormat") == "iso8601":
                return iso(value)
            return value.timestamp()
        return value
    return value


# --------------------------------------------------------------------------------------------
# The emulator base class

Handler = Callable[[Any, Caller, dict[str, Any]], dict[str, Any]]
F = TypeVar("F", bound=Callable[..., Any])


def operation(name: str) -> Callable[[F], F]:
    """Register the decorated method as the handler of operation `name`."""

    def mark(func: F) -> F:
        func._operation_name = name  # type: ignore[attr-defined]
        return func

    return mark


class RestJsonEmulator:
    """Base of an emulated rest-json service. Subclasses set `service_name`, register handlers
    with `@operation`, and implement `reset()`."""

    service_name: ClassVar[str]
    _handlers: ClassVar[dict[str, str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                name = getattr(value, "_operation_name", None)
                if name:
                    handlers[name] = attr
        cls._handlers = handlers
        if hasattr(cls, "service_name"):
            model = service_model(cls.service_name)
            unknown = set(handlers) - set(model.operation_names)
            if unknown:
                raise TypeError(f"{cls.__name__} handles operations not in the model: {unknown}")

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.codec = ServiceCodec(self.service_name)

    @property
    def operations(self) -> Iterable[str]:
        return sorted(self._handlers)

    def reset(self) -> None:
        raise NotImplementedError

    def operation_name(self, method: str, path: str, query: Mapping[str, Any]) -> str | None:
        found = self.codec.matcher.match(method, path, query)
        return found[0] if found else None

    def handle(self, request: Request, caller: Caller) -> Response:
        """Answer one HTTP request the way the real service would."""
        request_id = str(uuid.uuid4())
        op_name = "?"
        try:
            try:
                found = self.codec.matcher.match(request.method, request.path, request.args)
                if found is None:
                    raise ServiceError(
                        "UnknownOperationException",
                        f"No {self.service_name} operation matches {request.method} {request.path}",
                        status=404,
                    )
                op_name, uri_params = found
                op = self.codec.operation(op_name)
                if self.knobs.throttled():
                    raise self.throttling_error()
                params = self.codec.parse_request(
                    op, uri_params, request.args, request.headers, request.get_data()
                )
                self.codec.validate_request(op, params)
                attr = self._handlers.get(op_name)
                if attr is None:
                    raise ServiceError(
                        "NotImplementedException",
                        f"{self.service_name} {op_name} is not emulated by the sandbox",
                        status=501,
                    )
                output = getattr(self, attr)(caller, params)
                self.codec.validate_response(op, output)
                status, headers, body = self.codec.serialize_output(op, output)
            except ServiceError as err:
                status, headers, body = self.codec.serialize_error(err)
        except ResponseInvalid as bug:
            log.error("emulator bug: %s", bug)
            status, headers, body = self._internal_error(str(bug))
        except Exception as bug:
            log.exception("emulator crashed in %s %s", self.service_name, op_name)
            status, headers, body = self._internal_error(f"{type(bug).__name__}: {bug}")
        headers["x-amzn-RequestId"] = request_id
        return Response(body, status=status, headers=headers)

    def throttling_error(self) -> ServiceError:
        shape = self.codec._error_shape("ThrottlingException")
        members: dict[str, Any] = {}
        if shape is not None and "retryAfterSeconds" in shape.members:
            members["retryAfterSeconds"] = "1"
        return ServiceError("ThrottlingException", "Rate exceeded", **members)

    def _internal_error(self, detail: str) -> tuple[int, dict[str, str], bytes]:
        shape = self.codec._error_shape("InternalServerException")
        key = "Message" if shape is not None and "Message" in shape.members else "message"
        body = json.dumps({key: f"sandbox emulator bug: {detail}"}).encode()
        headers = {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": "InternalServerException",
        }
        return 500, headers, body
