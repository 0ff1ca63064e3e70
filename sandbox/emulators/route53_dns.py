"""Route 53 `TestDNSAnswer` emulator (moto has hosted zones, record sets and health checks, not
`TestDNSAnswer`): an emulation of how Route 53's authoritative servers answer, not Route 53.

The endpoint routes `route53` requests for `GET /2013-04-01/testdnsanswer` here; every other
Route 53 call goes to moto. The request's query parameters are validated against botocore's
`route53` model (required members, lengths, the `RecordType` enum) and the response against the
output shape; errors are Route 53's XML errors (`InvalidInput` 400, `NoSuchHostedZone` 404).

The answer is computed from moto's own zones and health checks of the caller's account:

- a simple record set answers its values (an alias answers its target's DNS name);
- failover routing: the PRIMARY answers while its health check is healthy, else the SECONDARY
  if it is healthy (or has no health check); when both are unhealthy Route 53 answers the
  PRIMARY. A health check's status is its measured health, `healthy` unless set otherwise with
  `POST /_sandbox/route53/health` — except that a **disabled** check is always healthy — then
  inverted when `Inverted` is true. Changes apply at once (in AWS, after the check's failure
  threshold x request interval);
- no record of that name and type: `NOERROR` with no data if the name has other records,
  else `NXDOMAIN`.
"""

from __future__ import annotations

import threading
from typing import Any
from xml.sax.saxutils import escape

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.wrappers import Request, Response

from . import Caller, ConfigError, Knobs, describe_validation_error
from .validation import check_shape, format_problems, service_model

PATH = "/2013-04-01/testdnsanswer"
XMLNS = "https://route53.amazonaws.com/doc/2013-04-01/"
NAMESERVER = "ns-sandbox.awsdns-00.com"


class HealthState(BaseModel):
    """`POST /_sandbox/route53/health` body: the measured health of one health check."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(pattern=r"^\d{12}$")
    health_check_id: str = Field(min_length=1, max_length=64)
    healthy: bool


def _fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


class Route53DnsEmulator:
    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self._lock = threading.Lock()
        self._measured: dict[tuple[str, str], bool] = {}
        self._op = service_model("route53").operation_model("TestDNSAnswer")

    def reset(self) -> None:
        with self._lock:
            self._measured.clear()

    @staticmethod
    def handles(path: str) -> bool:
        return path.rstrip("/") == PATH

    def set_health(self, data: Any) -> dict[str, Any]:
        try:
            state = HealthState.model_validate(data)
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err, data)) from None
        backend = _backend(state.account)
        if state.health_check_id not in backend.health_checks:
            raise ConfigError(
                f"health_check_id={state.health_check_id!r}: no such health check in account "
                f"{state.account}"
            )
        with self._lock:
            self._measured[(state.account, state.health_check_id)] = state.healthy
        return state.model_dump()

    def healthy(self, account: str, health_check_id: str | None) -> bool:
        """A health check's status as DNS routing sees it."""
        if not health_check_id:
            return True
        check = _backend(account).health_checks.get(health_check_id)
        if check is None:
            return True  # Route 53 treats a record whose check was deleted as healthy
        with self._lock:
            measured = self._measured.get((account, health_check_id), True)
        base = True if check.disabled else measured
        return base != bool(check.inverted)

    # -- the API

    def handle(self, request: Request, caller: Caller) -> Response:
        if request.method != "GET":
            return _error(405, "InvalidInput", f"{request.method} is not allowed here")
        if self.knobs.throttled():
            return _error(400, "Throttling", "Rate exceeded")
        shape = self._op.input_shape
        params: dict[str, Any] = {}
        for member, member_shape in shape.members.items():
            wire = member_shape.serialization.get("name", member)
            if wire in request.args:
                value: Any = request.args[wire]
                if member_shape.type_name == "integer":
                    value = int(value) if value.isdigit() else value
                params[member] = value
        problems = check_shape(shape, params)
        if problems:
            return _error(400, "InvalidInput", format_problems(problems))
        try:
            zone = _backend(caller.account).get_hosted_zone(params["HostedZoneId"])
        except Exception:
            return _error(
                404, "NoSuchHostedZone", f"No hosted zone found with ID: {params['HostedZoneId']}"
            )
        name, rtype = _fqdn(params["RecordName"]), params["RecordType"]
        named = [r for r in zone.rrsets if _fqdn(r.name) == name]
        of_type = [r for r in named if r.type == rtype]
        data = self._answer(caller.account, of_type)
        output = {
            "Nameserver": NAMESERVER,
            "RecordName": params["RecordName"],
            "RecordType": rtype,
            "RecordData": data,
            "ResponseCode": "NOERROR" if named else "NXDOMAIN",
            "Protocol": "UDP",
        }
        problems = check_shape(self._op.output_shape, output)
        if problems:
            return _error(
                500, "InternalError", "sandbox emulator bug: " + format_problems(problems)
            )
        return Response(_xml(output), status=200, mimetype="text/xml")

    def _answer(self, account: str, records: list[Any]) -> list[str]:
        failover = [r for r in records if r.failover in ("PRIMARY", "SECONDARY")]
        if not failover:
            return [v for r in records for v in _values(r)]
        primary = next((r for r in failover if r.failover == "PRIMARY"), None)
        secondary = next((r for r in failover if r.failover == "SECONDARY"), None)
        if primary is not None and self.healthy(account, primary.health_check_id):
            return _values(primary)
        if secondary is not None and self.healthy(account, secondary.health_check_id):
            return _values(secondary)
        chosen = primary or secondary
        return _values(chosen) if chosen is not None else []


def _backend(account: str) -> Any:
    from moto.route53.models import route53_backends

    return route53_backends[account]["aws"]


def _values(record: Any) -> list[str]:
    if record.alias_target:
        return [str(record.alias_target.get("DNSName", ""))]
    return [str(v) for v in record.records or []]


def _xml(output: dict[str, Any]) -> str:
    data = "".join(f"<RecordDataEntry>{escape(v)}</RecordDataEntry>" for v in output["RecordData"])
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<TestDNSAnswerResponse xmlns="{XMLNS}">'
        f"<Nameserver>{escape(output['Nameserver'])}</Nameserver>"
        f"<RecordName>{escape(output['RecordName'])}</RecordName>"
        f"<RecordType>{escape(output['RecordType'])}</RecordType>"
        f"<RecordData>{data}</RecordData>"
        f"<ResponseCode>{output['ResponseCode']}</ResponseCode>"
        f"<Protocol>{output['Protocol']}</Protocol></TestDNSAnswerResponse>"
    )


def _error(status: int, code: str, message: str) -> Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{XMLNS}"><Error>'
        f"<Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
        "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    )
    return Response(body, status=status, mimetype="text/xml")
