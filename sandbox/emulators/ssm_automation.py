"""SSM Automation executions emulator (moto has SSM documents and parameters, but not automation
executions). botocore's `ssm` model is the truth for shapes; semantics follow the Systems Manager
user guide:

- Only these operations are emulated, routed by `X-Amz-Target` (`AmazonSSM.<Operation>`, JSON 1.1);
  every other SSM call goes to moto: StartAutomationExecution, GetAutomationExecution,
  StopAutomationExecution, DescribeAutomationExecutions.
- Documents are moto's (CreateDocument in the caller's account and region): a missing document, or
  one that is not of type Automation, answers AutomationDefinitionNotFoundException; an unknown
  version AutomationDefinitionVersionNotFoundException; a parameter the document does not declare,
  or a required one missing, InvalidAutomationExecutionParametersException.
- `ClientToken` makes a start idempotent (the same token and input return the same execution; a
  different input IdempotentParameterMismatch).
- An execution goes Pending -> InProgress -> Success | Failed | TimedOut, or Cancelled through
  StopAutomationExecution. At most 100 run at once per account and region; more wait Pending (up to
  1,000 queued, then AutomationExecutionLimitExceededException).
- How long an execution runs and how it ends: the behaviour registered for its document
  (`POST /_sandbox/ssm/automation`, the estate's `hooks:`), else the document itself: the sum of its
  `aws:sleep` steps' `Duration`, ending Success.
- Each status change goes to the DEFAULT bus of the account and region as the native event
  `aws.ssm` "EC2 Automation Execution Status-change Notification" (dropped with
  `drop_native_event_rate`: EventBridge delivery of AWS events is best effort).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from werkzeug.wrappers import Request, Response

from . import Caller, ConfigError, Knobs, describe_validation_error
from .drs import Scheduler
from .validation import ResponseInvalid, ServiceCodec, ServiceError

log = logging.getLogger("sandbox.emulators.ssm_automation")

TARGET_PREFIX = "AmazonSSM."
NATIVE_SOURCE = "aws.ssm"
STATUS_DETAIL_TYPE = "EC2 Automation Execution Status-change Notification"
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_RUNNING = 100
MAX_QUEUED = 1000
PAGE_SIZE_DEFAULT = 50
DEFAULT_SECONDS = 0.1
TERMINAL = frozenset({"Success", "Failed", "TimedOut", "Cancelled"})
Outcome = Literal["Success", "Failed", "TimedOut", "Cancelled"]
_DURATION = re.compile(r"^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$")


# --------------------------------------------------------------------------------------------
# Behaviours: how the sandbox's executions end (the estate's `hooks:` or the admin path)


class Behaviour(BaseModel):
    """Outcomes of successive executions of one document (the last one repeats)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcomes: list[Outcome] = Field(default=["Success"], min_length=1)
    seconds: float = Field(default=1.0, ge=0, le=3600)
    message: str | None = Field(default=None, max_length=1000)


class BehavioursRequest(BaseModel):
    """`POST /_sandbox/ssm/automation` body."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(pattern=r"^\d{12}$")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    documents: dict[str, Behaviour]

    @field_validator("documents")
    @classmethod
    def _names(cls, value: dict[str, Behaviour]) -> dict[str, Behaviour]:
        for name in value:
            if not re.fullmatch(r"[a-zA-Z0-9_\-.]{3,128}", name):
                raise ValueError(f"{name!r} is not a document name")
        return value


# --------------------------------------------------------------------------------------------
# State


@dataclass
class _Execution:
    record: dict[str, Any]
    steps: list[dict[str, Any]]
    seconds: float
    outcome: Outcome
    message: str | None
    token: str | None
    request_hash: str
    generation: int

    @property
    def status(self) -> str:
        return str(self.record["AutomationExecutionStatus"])


@dataclass
class _RegionState:
    executions: dict[str, _Execution] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    queue: list[str] = field(default_factory=list)


def _ssm_backend(account: str, region: str) -> Any:
    from moto.ssm.models import ssm_backends

    return ssm_backends[account][region]


def _events_backend(account: str, region: str) -> Any:
    from moto.events.models import events_backends

    return events_backends[account][region]


def parse_duration(value: Any) -> float:
    """`aws:sleep` Duration (ISO 8601, PT...S) in seconds; 0 when not one."""
    found = _DURATION.match(str(value or ""))
    if not found or not any(found.groups()):
        return 0.0
    hours, minutes, seconds = (float(g) if g else 0.0 for g in found.groups())
    return hours * 3600 + minutes * 60 + seconds


def _event_time(moment: dt.datetime) -> str:
    """The native event's StartTime/EndTime format ("Nov 29, 2024 7:43:25 PM")."""
    hour = moment.strftime("%I").lstrip("0") or "12"
    return moment.strftime(f"%b %d, %Y {hour}:%M:%S %p")


class SsmAutomationEmulator:
    """The four Automation execution operations of `ssm`, validated against botocore's model."""

    service_name = "ssm"
    operations = (
        "StartAutomationExecution",
        "GetAutomationExecution",
        "StopAutomationExecution",
        "DescribeAutomationExecutions",
    )

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.codec = ServiceCodec(self.service_name)
        self._lock = threading.RLock()
        self._state: dict[tuple[str, str], _RegionState] = {}
        self._scheduler = Scheduler()
        self._generation = 0

    # -- lifecycle

    def targets(self) -> dict[str, SsmAutomationEmulator]:
        """X-Amz-Target values this emulator answers (the router's table)."""
        return {TARGET_PREFIX + op: self for op in self.operations}

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self._state.clear()
            self._scheduler.clear()

    def close(self) -> None:
        self._scheduler.stop()

    def _region(self, account: str, region: str) -> _RegionState:
        return self._state.setdefault((account, region), _RegionState())

    # -- admin

    def configure(self, data: Any) -> dict[str, Any]:
        """Register behaviours per document (`POST /_sandbox/ssm/automation`)."""
        try:
            payload = BehavioursRequest.model_validate(data)
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err, data)) from None
        with self._lock:
            state = self._region(payload.account, payload.region)
            state.behaviours.update(payload.documents)
            state.runs.update({name: 0 for name in payload.documents})
        return {"documents": sorted(payload.documents)}

    # -- the wire (JSON 1.1)

    def handle(self, request: Request, caller: Caller) -> Response:
        request_id = str(uuid.uuid4())
        target = request.headers.get("X-Amz-Target", "")
        op_name = target.removeprefix(TARGET_PREFIX)
        try:
            try:
                if op_name not in self.operations:
                    raise ServiceError(
                        "UnknownOperationException", f"{target} is not emulated", status=400
                    )
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
                status, headers, body = self.codec.serialize_error(err)
                document = json.loads(body or b"{}")
                document["__type"] = err.code  # JSON 1.1 clients read the code from here
                body = json.dumps(document).encode()
        except ResponseInvalid as bug:
            log.error("emulator bug: %s", bug)
            status, headers, body = (
                500,
                {},
                json.dumps(
                    {"__type": "InternalServerError", "Message": f"sandbox emulator bug: {bug}"}
                ).encode(),
            )
        except Exception as bug:
            log.exception("SSM Automation emulator crashed in %s", op_name)
            status, headers, body = (
                500,
                {},
                json.dumps(
                    {"__type": "InternalServerError", "Message": f"sandbox emulator bug: {bug!r}"}
                ).encode(),
            )
        headers["Content-Type"] = JSON_CONTENT_TYPE
        headers["x-amzn-RequestId"] = request_id
        return Response(body, status=status, headers=headers)

    # -- operations

    def _start_automation_execution(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._region(caller.account, caller.region)
        token = params.get("ClientToken")
        request_hash = hashlib.sha256(
            json.dumps(
                {k: v for k, v in params.items() if k != "ClientToken"}, sort_keys=True
            ).encode()
        ).hexdigest()
        if token:
            known = state.tokens.get(token.lower())
            if known is not None:
                if state.executions[known].request_hash != request_hash:
                    raise ServiceError(
                        "IdempotentParameterMismatch",
                        "The ClientToken was already used with different parameters",
                    )
                return {"AutomationExecutionId": known}
        name = str(params["DocumentName"]).rsplit("/", 1)[-1]
        document = self._document(caller, name, params.get("DocumentVersion"))
        parameters = self._parameters(document, params.get("Parameters") or {})
        active = [e for e in state.executions.values() if e.status not in TERMINAL]
        if len(active) >= MAX_RUNNING + MAX_QUEUED:
            raise ServiceError(
                "AutomationExecutionLimitExceededException",
                f"There are already {len(active)} automations running or queued in {caller.region}",
            )
        behaviour = state.behaviours.get(name)
        run = state.runs.get(name, 0)
        state.runs[name] = run + 1
        steps = [
            {
                "StepName": str(step.get("name", f"step{i + 1}")),
                "Action": str(step.get("action", "aws:sleep")),
                "StepStatus": "Pending",
                "StepExecutionId": str(uuid.uuid4()),
            }
            for i, step in enumerate(document.content_json.get("mainSteps") or [])
        ]
        if behaviour is not None:
            outcome = behaviour.outcomes[min(run, len(behaviour.outcomes) - 1)]
            seconds, message = behaviour.seconds, behaviour.message
        else:
            outcome, message = "Success", None
            seconds = sum(
                parse_duration((step.get("inputs") or {}).get("Duration"))
                for step in document.content_json.get("mainSteps") or []
                if step.get("action") == "aws:sleep"
            )
            seconds = seconds or DEFAULT_SECONDS
        execution_id = str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC)
        record: dict[str, Any] = {
            "AutomationExecutionId": execution_id,
            "DocumentName": name,
            "DocumentVersion": document.document_version,
            "ExecutionStartTime": now,
            "AutomationExecutionStatus": "Pending",
            "Parameters": parameters,
            "Mode": params.get("Mode", "Auto"),
            "ExecutedBy": f"arn:aws:iam::{caller.account}:root",
        }
        execution = _Execution(
            record=record,
            steps=steps,
            seconds=seconds,
            outcome=outcome,
            message=message,
            token=token,
            request_hash=request_hash,
            generation=self._generation,
        )
        state.executions[execution_id] = execution
        if token:
            state.tokens[token.lower()] = execution_id
        self._publish(caller, execution)
        running = sum(1 for e in state.executions.values() if e.status == "InProgress")
        if running < MAX_RUNNING:
            self._begin(caller, execution)
        else:
            state.queue.append(execution_id)
        return {"AutomationExecutionId": execution_id}

    def _get_automation_execution(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(caller, params["AutomationExecutionId"])
        record = copy.deepcopy(execution.record)
        record["StepExecutions"] = copy.deepcopy(execution.steps)
        record["StepExecutionsTruncated"] = False
        return {"AutomationExecution": record}

    def _stop_automation_execution(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(caller, params["AutomationExecutionId"])
        if execution.status in TERMINAL:
            raise ServiceError(
                "InvalidAutomationStatusUpdateException",
                f"The automation execution is already {execution.status}",
            )
        outcome: Outcome = "Success" if params.get("Type") == "Complete" else "Cancelled"
        self._finish(caller, execution, outcome, "Stopped by StopAutomationExecution")
        return {}

    def _describe_automation_executions(
        self, caller: Caller, params: dict[str, Any]
    ) -> dict[str, Any]:
        state = self._region(caller.account, caller.region)
        items = sorted(
            state.executions.values(), key=lambda e: e.record["ExecutionStartTime"], reverse=True
        )
        for flt in params.get("Filters") or []:
            items = [e for e in items if _matches(e, flt["Key"], flt["Values"])]
        token = str(params.get("NextToken") or "0")
        if not token.isdigit():
            raise ServiceError("InvalidNextToken", "The specified token is not valid")
        start = int(token)
        size = min(int(params.get("MaxResults") or PAGE_SIZE_DEFAULT), PAGE_SIZE_DEFAULT)
        page = items[start : start + size]
        metadata_keys = self.codec.model.shape_for("AutomationExecutionMetadata").members
        out: dict[str, Any] = {
            "AutomationExecutionMetadataList": [
                {k: copy.deepcopy(v) for k, v in e.record.items() if k in metadata_keys}
                for e in page
            ]
        }
        if start + size < len(items):
            out["NextToken"] = str(start + size)
        return out

    # -- helpers

    def _document(self, caller: Caller, name: str, version: str | None) -> Any:
        documents = _ssm_backend(caller.account, caller.region)._documents.get(name)
        if documents is None or documents.get_default_version().document_type != "Automation":
            raise ServiceError(
                "AutomationDefinitionNotFoundException",
                f"Automation definition {name} does not exist in {caller.region}",
            )
        if version in (None, "$DEFAULT"):
            return documents.get_default_version()
        if version == "$LATEST":
            return documents.get_latest_version()
        document = documents.find_by_version(version)
        if document is None:
            raise ServiceError(
                "AutomationDefinitionVersionNotFoundException",
                f"Automation definition {name} has no version {version}",
            )
        return document

    @staticmethod
    def _parameters(document: Any, given: Mapping[str, list[str]]) -> dict[str, list[str]]:
        declared: Mapping[str, Any] = document.content_json.get("parameters") or {}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise ServiceError(
                "InvalidAutomationExecutionParametersException",
                f"Parameter(s) {unknown} not defined in {document.name}",
            )
        out: dict[str, list[str]] = {}
        for name, spec in declared.items():
            if name in given:
                out[name] = list(given[name])
            elif isinstance(spec, Mapping) and "default" in spec:
                default = spec["default"]
                out[name] = (
                    [str(v) for v in default] if isinstance(default, list) else [str(default)]
                )
            else:
                raise ServiceError(
                    "InvalidAutomationExecutionParametersException",
                    f"Parameter {name} is required by {document.name} and was not given",
                )
        return {k: v for k, v in out.items() if all(v)}

    def _execution(self, caller: Caller, execution_id: str) -> _Execution:
        execution = self._region(caller.account, caller.region).executions.get(execution_id)
        if execution is None:
            raise ServiceError(
                "AutomationExecutionNotFoundException",
                f"Automation execution {execution_id} does not exist",
            )
        return execution

    def _begin(self, caller: Caller, execution: _Execution) -> None:
        execution.record["AutomationExecutionStatus"] = "InProgress"
        if execution.steps:
            execution.steps[0]["StepStatus"] = "InProgress"
            execution.steps[0]["ExecutionStartTime"] = dt.datetime.now(dt.UTC)
            execution.record["CurrentStepName"] = execution.steps[0]["StepName"]
            execution.record["CurrentAction"] = execution.steps[0]["Action"]
        self._publish(caller, execution)
        generation = execution.generation

        def finish() -> None:
            with self._lock:
                if generation != self._generation or execution.status in TERMINAL:
                    return
                self._finish(caller, execution, execution.outcome, execution.message)

        self._scheduler.call_at(time.monotonic() + execution.seconds, finish)

    def _finish(
        self, caller: Caller, execution: _Execution, outcome: Outcome, message: str | None
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        record = execution.record
        record["AutomationExecutionStatus"] = outcome
        record["ExecutionEndTime"] = now
        record.pop("CurrentStepName", None)
        record.pop("CurrentAction", None)
        if outcome != "Success":
            record["FailureMessage"] = message or f"Execution ended {outcome}"
        for index, step in enumerate(execution.steps):
            step.setdefault("ExecutionStartTime", record["ExecutionStartTime"])
            step["ExecutionEndTime"] = now
            last = index == len(execution.steps) - 1
            if outcome == "Success":
                step["StepStatus"] = "Success"
            elif last or step["StepStatus"] == "InProgress":
                step["StepStatus"] = outcome
                if outcome == "Failed":
                    step["FailureMessage"] = record["FailureMessage"]
            elif step["StepStatus"] == "Pending":
                step["StepStatus"] = "Cancelled" if outcome == "Cancelled" else "Pending"
        self._publish(caller, execution)
        state = self._region(caller.account, caller.region)
        while state.queue:
            waiting = state.executions.get(state.queue.pop(0))
            if waiting is not None and waiting.status == "Pending":
                self._begin(caller, waiting)
                break

    def _publish(self, caller: Caller, execution: _Execution) -> None:
        if self.knobs.drop_native_event():
            log.info("dropped native SSM event for %s", execution.record["AutomationExecutionId"])
            return
        record = execution.record
        start: dt.datetime = record["ExecutionStartTime"]
        end: dt.datetime | None = record.get("ExecutionEndTime")
        detail: dict[str, Any] = {
            "ExecutionId": record["AutomationExecutionId"],
            "Definition": record["DocumentName"],
            "DefinitionVersion": float(record["DocumentVersion"]),
            "Status": record["AutomationExecutionStatus"],
            "StartTime": _event_time(start),
            "EndTime": _event_time(end) if end else "",
            "Time": round(((end or dt.datetime.now(dt.UTC)) - start).total_seconds() * 1000, 1),
            "ExecutedBy": record["ExecutedBy"],
        }
        region, account = caller.region, caller.account
        event = {
            "Source": NATIVE_SOURCE,
            "DetailType": STATUS_DETAIL_TYPE,
            "Resources": [
                f"arn:aws:ssm:{region}:{account}:automation-execution/{detail['ExecutionId']}",
                f"arn:aws:ssm:{region}:{account}:automation-definition/"
                f"{record['DocumentName']}:{record['DocumentVersion']}",
            ],
            "Detail": json.dumps(detail),
            "Time": time.time(),
        }
        try:
            _events_backend(account, region).put_events([event])
        except Exception:
            log.exception("could not put native SSM event")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _matches(execution: _Execution, key: str, values: Iterable[str]) -> bool:
    record = execution.record
    wanted = list(values)
    if key == "DocumentNamePrefix":
        return any(str(record["DocumentName"]).startswith(v) for v in wanted)
    if key == "ExecutionStatus":
        return record["AutomationExecutionStatus"] in wanted
    if key == "ExecutionId":
        return record["AutomationExecutionId"] in wanted
    if key in ("StartTimeBefore", "StartTimeAfter"):
        moment = dt.datetime.fromisoformat(wanted[0].replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        started: dt.datetime = record["ExecutionStartTime"]
        return started < moment if key == "StartTimeBefore" else started > moment
    return True  # the other filter keys select nothing this emulator records


# --------------------------------------------------------------------------------------------
# Seeding an estate's hooks (documents, behaviours, Parameter Store configuration)


def hook_document(parameters: Iterable[str], seconds: float) -> dict[str, Any]:
    """An Automation document that takes the hook's context parameters and sleeps."""
    return {
        "schemaVersion": "0.3",
        "description": "Pre/post-wave hook (sandbox)",
        "parameters": {name: {"type": "String"} for name in parameters},
        "mainSteps": [
            {
                "name": "wait",
                "action": "aws:sleep",
                "inputs": {"Duration": f"PT{max(1, round(seconds))}S"},
            }
        ],
    }


def seed_hooks(estate: Any, endpoint_url: str, orchestration_region: str = "us-east-2") -> int:
    """Create every environment's hook documents (customer account, DR region), register their
    behaviours with the emulator, and write each hook configuration parameter (orchestration
    account). Returns the number of documents. Idempotent."""
    from services.coordinator.hooks import HookConfig, HookSpec, hook_parameter_name

    from ..admin import post_admin
    from ..seed import CALLER_SEED, DUMMY_KEY, external_id, role_arn

    config = Config(retries={"mode": "standard", "max_attempts": 5}, user_agent_extra=CALLER_SEED)
    plain = {"aws_access_key_id": DUMMY_KEY, "aws_secret_access_key": DUMMY_KEY}
    ssm = boto3.client(
        "ssm", endpoint_url=endpoint_url, region_name=orchestration_region, config=config, **plain
    )
    sts = boto3.client(
        "sts", endpoint_url=endpoint_url, region_name=orchestration_region, config=config, **plain
    )
    context = ("OperationId", "Operation", "Customer", "Environment", "Wave", "Phase")
    created = 0
    for customer in estate.customers:
        dr_region = estate.regions[customer.region]
        creds = None
        for env in customer.environments:
            hooks = getattr(env, "hooks", None)
            if hooks is None:
                continue
            if creds is None:
                creds = sts.assume_role(
                    RoleArn=role_arn(customer.account),
                    RoleSessionName=f"sandbox-hooks-{customer.name}"[:64],
                    ExternalId=external_id(customer.name),
                )["Credentials"]
            workload = boto3.client(
                "ssm",
                endpoint_url=endpoint_url,
                region_name=dr_region,
                config=config,
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
            specs: dict[str, HookSpec] = {}
            behaviours: dict[str, dict[str, Any]] = {}
            for phase in ("pre_wave", "post_wave"):
                hook = getattr(hooks, phase)
                if hook is None:
                    continue
                name = f"{customer.name}-{env.name}-{phase.replace('_', '-')}"
                content = json.dumps(hook_document(context, hook.seconds))
                try:
                    workload.create_document(
                        Name=name, Content=content, DocumentType="Automation", DocumentFormat="JSON"
                    )
                    created += 1
                except ClientError as err:
                    if err.response["Error"]["Code"] != "DocumentAlreadyExists":
                        raise
                specs[phase] = HookSpec(document_name=name, waves=hook.waves)
                behaviours[name] = {
                    "outcomes": list(hook.outcomes),
                    "seconds": hook.seconds,
                    "message": hook.message,
                }
            post_admin(
                endpoint_url,
                "/_sandbox/ssm/automation",
                {"account": customer.account, "region": dr_region, "documents": behaviours},
            )
            ssm.put_parameter(
                Name=hook_parameter_name(customer.name, env.name),
                Value=HookConfig(**specs).model_dump_json(exclude_none=True),
                Type="String",
                Overwrite=True,
            )
    return created


__all__ = [
    "Behaviour",
    "BehavioursRequest",
    "SsmAutomationEmulator",
    "hook_document",
    "parse_duration",
    "seed_hooks",
]
