"""Approval gates: modes and their defaults, one-time tokens, and the notification text. Pure.

A wave that needs approval waits in AWAITING_APPROVAL. The coordinator sends a token in an
`ApprovalRequested` event and an SNS notification; it stores only the token's SHA-256. The
approver answers with `drctl approve|reject OP --wave N --token T` (`ApprovalGranted` /
`ApprovalRejected` from `dr.approval`). A token is good for one decision on one wave until it
expires. Waiting too long re-notifies (escalation) with a fresh token, the earlier ones staying
valid until their own expiry; nothing is ever approved automatically.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from events.schemas import ApprovalMode, OperationType
from events.schemas.names import ApprovalDecision, ApprovalRefusalCode

TOKEN_PREFIX = "apv-"
TOKEN_BYTES = 24
# Issued tokens kept per wave (older ones are long expired).
KEEP_TOKENS = 10
SUBJECT_LIMIT = 100  # SNS subjects are at most 100 characters


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def default_approval_mode(
    operation: OperationType, production: bool | None
) -> tuple[ApprovalMode, str]:
    """The mode an operation gets when its request names none, and why."""
    if operation == OperationType.BUBBLE_TEST:
        return ApprovalMode.NONE, "default for a drill"
    if production is None:
        return ApprovalMode.REQUIRED, "default when the environment is not in the registry"
    if production:
        return ApprovalMode.REQUIRED, f"default for a production {operation.value}"
    return ApprovalMode.NONE, "default for a non-production environment"


def needs_approval(mode: ApprovalMode, wave: int, first_wave: int) -> bool:
    if mode == ApprovalMode.REQUIRED:
        return True
    return mode == ApprovalMode.FIRST_WAVE and wave == first_wave


@dataclass(frozen=True)
class IssuedToken:
    token_hash: str
    expires_at: datetime


@dataclass(frozen=True)
class Approval:
    """The approval state of one wave (stored as a map on the wave item)."""

    requested_at: datetime
    tokens: tuple[IssuedToken, ...] = ()
    notified_at: datetime | None = None
    notifications: int = 0
    decision: ApprovalDecision | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None
    # The decision event's own time: a redelivered decision is recognised, not refused.
    decision_event_at: datetime | None = None
    used_token_hash: str | None = None

    @property
    def expires_at(self) -> datetime | None:
        return max((t.expires_at for t in self.tokens), default=None)

    def issue(self, token_hash: str, now: datetime, expires_at: datetime) -> Approval:
        return replace(
            self,
            tokens=(*self.tokens, IssuedToken(token_hash, expires_at))[-KEEP_TOKENS:],
            notified_at=now,
            notifications=self.notifications + 1,
        )

    def decide(
        self,
        decision: ApprovalDecision,
        by: str,
        now: datetime,
        token_hash: str,
        event_at: datetime,
        comment: str | None,
    ) -> Approval:
        return replace(
            self,
            decision=decision,
            decided_by=by,
            decided_at=now,
            comment=comment,
            decision_event_at=event_at,
            used_token_hash=token_hash,
        )


@dataclass(frozen=True)
class TokenCheck:
    ok: bool = False
    duplicate: bool = False
    code: ApprovalRefusalCode | None = None
    reason: str = ""


def check_token(
    approval: Approval | None,
    *,
    wave: int,
    awaiting: bool,
    state: str,
    token: str,
    approver: str,
    event_at: datetime,
    decision: ApprovalDecision,
    now: datetime,
) -> TokenCheck:
    """Whether a decision with `token` may be applied to the wave now."""

    def refuse(code: ApprovalRefusalCode, reason: str) -> TokenCheck:
        return TokenCheck(code=code, reason=reason)

    if approval is None:
        return refuse(
            ApprovalRefusalCode.NOT_AWAITING_APPROVAL,
            f"wave {wave} has not asked for approval (it is {state})",
        )
    token_hash = hash_token(token)
    if approval.used_token_hash == token_hash:
        if (approval.decision, approval.decided_by, approval.decision_event_at) == (
            decision,
            approver,
            event_at,
        ):
            return TokenCheck(duplicate=True)
        return refuse(
            ApprovalRefusalCode.TOKEN_REUSED,
            f"the token was already used: wave {wave} {approval.decision} by "
            f"{approval.decided_by} at {_at(approval.decided_at)}",
        )
    issued = next((t for t in approval.tokens if t.token_hash == token_hash), None)
    if issued is None:
        return refuse(
            ApprovalRefusalCode.TOKEN_MISMATCH, f"the token is not one issued for wave {wave}"
        )
    if not awaiting:
        return refuse(
            ApprovalRefusalCode.NOT_AWAITING_APPROVAL,
            f"wave {wave} is {state}, not awaiting approval",
        )
    if now >= issued.expires_at:
        return refuse(
            ApprovalRefusalCode.TOKEN_EXPIRED,
            f"the token expired at {_at(issued.expires_at)}; use the newest approval request",
        )
    return TokenCheck(ok=True)


@dataclass(frozen=True)
class Notification:
    subject: str
    message: str
    attributes: Mapping[str, str]


def approval_notification(
    *,
    operation_id: str,
    operation: str,
    customer: str,
    environment: str,
    wave: int,
    wave_count: int,
    resources: Mapping[str, int],
    rto_target_minutes: int | None,
    token: str,
    expires_at: datetime,
    notification: int,
    pre_hook: str | None,
) -> Notification:
    """What the approver reads: what is about to happen, the token and how to answer."""
    total = sum(resources.values())
    scope = f"{customer}/{environment}"
    prefix = f"ESCALATION {notification - 1}: " if notification > 1 else ""
    subject = f"{prefix}Approve {operation} {scope} wave {wave}"[:SUBJECT_LIMIT]
    by_strategy = ", ".join(f"{n} {s}" for s, n in sorted(resources.items())) or "none"
    lines = [
        f"{prefix}Approval needed before wave {wave} of {wave_count} of the {operation} of "
        f"{scope} starts recovering.",
        "",
        f"Operation:   {operation_id}",
        f"Wave:        {wave} of {wave_count}: {total} resource(s) ({by_strategy})",
        f"RTO target:  {rto_target_minutes} min" if rto_target_minutes else "RTO target:  -",
    ]
    if pre_hook:
        lines.append(f"Pre-wave:    {pre_hook}")
    lines += [
        f"Token:       {token}",
        f"Valid until: {_at(expires_at)} (one decision; later notifications carry new tokens)",
        "",
        f"Approve: drctl approve {operation_id} --wave {wave} --token {token}",
        f"Reject:  drctl reject {operation_id} --wave {wave} --token {token} --reason '...'",
        "",
        "Nothing proceeds without a decision: waiting re-notifies, it never approves.",
    ]
    return Notification(
        subject=subject,
        message="\n".join(lines),
        attributes={
            "operation_id": operation_id,
            "customer": customer,
            "environment": environment,
            "wave": str(wave),
            "notification": str(notification),
        },
    )


def _at(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"
