"""Pre- and post-wave hooks: SSM Automation documents configured per customer + environment. Pure.

Configuration lives in Parameter Store of the orchestration account, one String parameter per
customer + environment, `/dr-orchestrator/hooks/<customer>/<environment>`, holding `HookConfig`
JSON:

    {"pre_wave":  {"document_name": "acme-prod-pre-wave", "timeout_seconds": 900},
     "post_wave": {"document_name": "acme-prod-post-wave", "waves": [2, 3],
                   "parameters": {"HealthCheckUrl": ["https://..."]}}}

A hook runs in the customer's workload account, in the operation's DR region (AssumeRole with
the registry's role and external id). Its parameters are the operation's context (`OperationId`,
`Operation`, `Customer`, `Environment`, `Wave`, `Phase`; the document must declare them, or set
`context_parameters: false`) plus the configured ones. Completion comes from the native `aws.ssm`
"EC2 Automation Execution Status-change Notification" event, with polling
(`GetAutomationExecution`) as reconciliation. A failed, timed-out or cancelled hook fails its wave.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from events.schemas.names import HookPhase

HOOK_PARAMETER_PREFIX = "/dr-orchestrator/hooks/"
HOOK_CHECK_KIND: Final = "coordinator-hook-check"
RECONCILE_KIND: Final = "coordinator-reconcile"
_TOKEN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "dr-orchestrator/hooks")

# AutomationExecutionStatus values that end an execution, and those that mean it succeeded.
TERMINAL_STATUSES = frozenset(
    {
        "Success",
        "Failed",
        "TimedOut",
        "Cancelled",
        "Rejected",
        "CompletedWithSuccess",
        "CompletedWithFailure",
        "Exited",
    }
)
SUCCEEDED_STATUSES = frozenset({"Success", "CompletedWithSuccess"})
TIMED_OUT = "TimedOut"
FAILED = "Failed"


def hook_parameter_name(customer: str, environment: str) -> str:
    return f"{HOOK_PARAMETER_PREFIX}{customer}/{environment}"


class HookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A document name or ARN (StartAutomationExecution's DocumentARN pattern).
    document_name: str = Field(pattern=r"^[a-zA-Z0-9_\-.:/]{3,128}$")
    document_version: str | None = Field(default=None, pattern=r"^([$]LATEST|[$]DEFAULT|[1-9]\d*)$")
    parameters: dict[str, list[str]] = Field(default_factory=dict)
    context_parameters: bool = True
    timeout_seconds: int | None = Field(default=None, ge=10, le=172800)
    # Only these waves (default: every wave).
    waves: list[int] | None = None

    def applies(self, wave: int) -> bool:
        return self.waves is None or wave in self.waves


class HookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pre_wave: HookSpec | None = None
    post_wave: HookSpec | None = None

    def spec(self, phase: HookPhase, wave: int) -> HookSpec | None:
        spec = self.pre_wave if phase == HookPhase.PRE_WAVE else self.post_wave
        return spec if spec is not None and spec.applies(wave) else None


class WorkloadTarget(BaseModel):
    """Where hooks run: the customer's account and the operation's DR region."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(pattern=r"^\d{12}$")
    region: str
    role_name: str
    external_id: str


@dataclass(frozen=True)
class HookRun:
    """One run of a wave's hook (stored on the wave item; a retry is a new attempt)."""

    phase: HookPhase
    attempt: int
    document_name: str
    execution_id: str | None = None
    started_at: datetime | None = None
    status: str | None = None  # None while running
    ended_at: datetime | None = None
    failure_message: str | None = None

    @property
    def running(self) -> bool:
        return self.status is None

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCEEDED_STATUSES


@dataclass(frozen=True)
class HookStatus:
    """An execution as SSM reports it."""

    status: str
    failure_message: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class HookRef:
    """Which operation, wave and phase an automation execution belongs to (lookup item)."""

    operation_id: str
    wave: int
    phase: HookPhase
    attempt: int


class HookConfigInvalid(ValueError):
    """The hook configuration parameter exists but is not valid `HookConfig` JSON."""


class HookStartFailed(Exception):
    """SSM refused to start the hook (unknown document, bad parameters): the hook failed."""


class HookCheck(BaseModel):
    """The coordinator's own delayed message: poll a running hook."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["coordinator-hook-check"] = HOOK_CHECK_KIND
    operation_id: str
    wave: int = Field(ge=1)
    execution_id: str
    check: int = Field(default=0, ge=0)


class ReconcileRequest(BaseModel):
    """The scheduled reconciliation tick; `operation_id` narrows it, `force` re-checks everything
    in flight now regardless of how long it has been."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["coordinator-reconcile"] = RECONCILE_KIND
    operation_id: str | None = None
    force: bool = False


def client_token(operation_id: str, wave: int, phase: HookPhase, attempt: int) -> str:
    """StartAutomationExecution's idempotency token for one hook attempt: a redelivered or taken
    over start gets the same execution back instead of starting a second one."""
    return str(uuid.uuid5(_TOKEN_NAMESPACE, f"{operation_id}/{wave}/{phase.value}/{attempt}"))


def hook_parameters(
    spec: HookSpec,
    *,
    operation_id: str,
    operation: str,
    customer: str,
    environment: str,
    wave: int,
    phase: HookPhase,
) -> dict[str, list[str]]:
    context = (
        {
            "OperationId": [operation_id],
            "Operation": [operation],
            "Customer": [customer],
            "Environment": [environment],
            "Wave": [str(wave)],
            "Phase": [phase.value],
        }
        if spec.context_parameters
        else {}
    )
    return context | {k: list(v) for k, v in spec.parameters.items()}
