"""Approval gates: tokens (one-time, expiring, scoped), escalation that never approves,
rejection, and the record of who decided what and when. In-memory fakes, no network."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from drcore.state import OperationState
from events.schemas import (
    ApprovalGranted,
    ApprovalMode,
    ApprovalRejected,
    ApprovalRequested,
    OperationCancelled,
    OperationType,
    WaveStarted,
)
from events.schemas.models import ApprovalRefused
from events.schemas.names import ApprovalDecision, ApprovalRefusalCode
from services.coordinator.approvals import (
    approval_notification,
    default_approval_mode,
    hash_token,
    needs_approval,
)
from services.coordinator.domain import ErrorCode, WavePhase
from tests.unit.test_coordinator_domain import (
    CUSTOMER,
    ENVIRONMENT,
    T0,
    Harness,
    plan,
    resource,
)

OP = "op-000001"


def two_waves() -> Any:
    return plan({1: [resource("i-1", 1), resource("i-2", 1)], 2: [resource("i-3", 2)]})


def grant(token: str, wave: int = 1, approver: str = "lead@example.com", **fields: Any):
    values: dict[str, Any] = {
        "operation_id": OP,
        "customer": CUSTOMER,
        "environment": ENVIRONMENT,
        "operation": OperationType.FAILOVER,
        "occurred_at": T0 + timedelta(minutes=5),
        "wave": wave,
        "token": token,
        "approver": approver,
    }
    return ApprovalGranted.model_validate(values | fields)


def reject(token: str, wave: int = 1, **fields: Any) -> ApprovalRejected:
    values: dict[str, Any] = {
        "operation_id": OP,
        "customer": CUSTOMER,
        "environment": ENVIRONMENT,
        "operation": OperationType.FAILOVER,
        "wave": wave,
        "token": token,
        "approver": "cab@example.com",
        "reason": "change freeze",
    }
    return ApprovalRejected.model_validate(values | fields)


def started(mode: ApprovalMode = ApprovalMode.REQUIRED) -> Harness:
    h = Harness()
    h.start(the_plan=two_waves(), approval_mode=mode)
    return h


# --- pure ------------------------------------------------------------------------------------


def test_given_operations_and_environments_then_defaults_follow_the_policy():
    assert default_approval_mode(OperationType.FAILOVER, True)[0] == ApprovalMode.REQUIRED
    assert default_approval_mode(OperationType.FAILBACK, True)[0] == ApprovalMode.REQUIRED
    assert default_approval_mode(OperationType.FAILOVER, False)[0] == ApprovalMode.NONE
    assert default_approval_mode(OperationType.BUBBLE_TEST, True)[0] == ApprovalMode.NONE
    assert default_approval_mode(OperationType.FAILOVER, None)[0] == ApprovalMode.REQUIRED
    assert [needs_approval(ApprovalMode.FIRST_WAVE, n, 2) for n in (2, 3)] == [True, False]
    assert needs_approval(ApprovalMode.REQUIRED, 7, 1)
    assert not needs_approval(ApprovalMode.NONE, 1, 1)


def test_given_a_notification_then_it_says_what_happens_and_how_to_answer():
    note = approval_notification(
        operation_id=OP,
        operation="failover",
        customer=CUSTOMER,
        environment=ENVIRONMENT,
        wave=2,
        wave_count=4,
        resources={"drs": 12, "sql-ag": 1},
        rto_target_minutes=30,
        token="apv-secret",
        expires_at=T0,
        notification=3,
        pre_hook="acme-pre Success",
    )
    assert note.subject.startswith("ESCALATION 2: Approve failover acme/production wave 2")
    assert len(note.subject) <= 100
    for text in ("13 resource(s) (12 drs, 1 sql-ag)", "RTO target:  30 min", "apv-secret"):
        assert text in note.message
    assert f"drctl approve {OP} --wave 2 --token apv-secret" in note.message
    assert note.attributes["wave"] == "2"


# --- the gate ----------------------------------------------------------------------------------


def test_given_approval_required_when_the_wave_begins_then_it_waits_with_a_token_and_a_notice():
    h = started()

    # Then wave 1 waits: nothing recovers, the approver got a notification with the token
    assert h.wave(1).state == WavePhase.AWAITING_APPROVAL
    assert h.publisher.of(WaveStarted) == []
    [requested] = h.publisher.of(ApprovalRequested)
    assert (requested.wave, requested.resource_count, requested.token) == (1, 2, h.tokens.issued[0])
    assert requested.expires_at == T0 + timedelta(hours=1)
    [(subject, message, _)] = h.notifier.sent
    assert "wave 1" in subject and h.tokens.issued[0] in message
    # and only the token's hash is stored
    approval = h.wave(1).approval
    assert approval is not None
    assert [t.token_hash for t in approval.tokens] == [hash_token(h.tokens.issued[0])]
    assert h.tokens.issued[0] not in repr(approval)


def test_given_the_right_token_when_granted_then_the_wave_recovers_and_who_approved_is_kept():
    h = started()
    token = h.tokens.issued[0]
    h.clock.tick(120)

    h.coordinator.on_approval_granted(grant(token, comment="go"))

    assert h.wave(1).state == WavePhase.RECOVERING
    assert [e.wave for e in h.publisher.of(WaveStarted)] == [1]
    approval = h.wave(1).approval
    assert approval is not None
    assert (approval.decision, approval.decided_by, approval.decided_at, approval.comment) == (
        ApprovalDecision.GRANTED,
        "lead@example.com",
        T0 + timedelta(seconds=120),
        "go",
    )
    assert ("ApprovalWaitSeconds", 120.0) in [(n, v) for n, v, _ in h.metrics.records]

    # When wave 1 ends, then wave 2 asks again with a new token (mode required: every wave)
    h.answer(h.publisher.of(WaveStarted))
    assert h.wave(2).state == WavePhase.AWAITING_APPROVAL
    assert len(h.tokens.issued) == 2


def test_given_a_redelivered_grant_then_it_is_applied_once_and_not_refused():
    h = started()
    event = grant(h.tokens.issued[0])
    h.coordinator.on_approval_granted(event)
    h.coordinator.on_approval_granted(event)
    assert len(h.publisher.of(WaveStarted)) == 1
    assert h.publisher.of(ApprovalRefused) == []


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda tok: grant("apv-forged-token"), ApprovalRefusalCode.TOKEN_MISMATCH),
        (lambda tok: grant(tok, wave=2), ApprovalRefusalCode.NOT_AWAITING_APPROVAL),
        (lambda tok: grant(tok, customer="globex"), ApprovalRefusalCode.SCOPE_MISMATCH),
        (lambda tok: grant(tok, environment="staging"), ApprovalRefusalCode.SCOPE_MISMATCH),
        (
            lambda tok: grant(tok, operation=OperationType.BUBBLE_TEST),
            ApprovalRefusalCode.SCOPE_MISMATCH,
        ),
        (lambda tok: grant(tok, wave=9), ApprovalRefusalCode.SCOPE_MISMATCH),
        (lambda tok: grant(tok, operation_id="op-000777"), ApprovalRefusalCode.SCOPE_MISMATCH),
    ],
)
def test_given_a_bad_decision_when_received_then_refused_logged_and_nothing_moves(make, code):
    h = started()
    h.coordinator.on_approval_granted(make(h.tokens.issued[0]))

    assert h.wave(1).state == WavePhase.AWAITING_APPROVAL
    assert h.publisher.of(WaveStarted) == []
    [refused] = h.publisher.of(ApprovalRefused)
    assert refused.code == code and refused.reason


def test_given_a_used_token_when_presented_again_then_refused_as_reused_and_recorded():
    h = started()
    token = h.tokens.issued[0]
    h.coordinator.on_approval_granted(grant(token))

    # When someone else presents the same token again
    h.coordinator.on_approval_granted(grant(token, approver="mallory@example.com"))

    [refused] = h.publisher.of(ApprovalRefused)
    assert refused.code == ApprovalRefusalCode.TOKEN_REUSED
    assert "lead@example.com" in refused.reason
    [kept] = h.wave(1).refusals
    assert (kept.approver, kept.code) == ("mallory@example.com", ApprovalRefusalCode.TOKEN_REUSED)
    assert len(h.publisher.of(WaveStarted)) == 1


def test_given_an_expired_token_then_refused_and_escalation_sends_a_new_one_never_approving():
    h = started()
    first = h.tokens.issued[0]

    # When the approval waits past the escalation period, the reconciler notifies again
    h.clock.tick(16 * 60)
    h.coordinator.reconcile()
    assert len(h.notifier.sent) == 2 and h.notifier.sent[1][0].startswith("ESCALATION 1")
    assert h.wave(1).state == WavePhase.AWAITING_APPROVAL  # never approved by waiting
    second = h.tokens.issued[1]

    # When the first token is used after its hour
    h.clock.tick(50 * 60)
    h.coordinator.on_approval_granted(grant(first))
    [refused] = h.publisher.of(ApprovalRefused)
    assert refused.code == ApprovalRefusalCode.TOKEN_EXPIRED

    # Then the newer one still works
    h.coordinator.on_approval_granted(grant(second))
    assert h.wave(1).state == WavePhase.RECOVERING


def test_given_a_rejection_then_the_operation_is_cancelled_naming_who_and_why():
    h = started()
    h.coordinator.on_approval_rejected(reject(h.tokens.issued[0]))

    meta = h.meta()
    assert (meta.state, meta.error_code, meta.cancelled_by) == (
        OperationState.CANCELLED,
        ErrorCode.APPROVAL_REJECTED,
        "cab@example.com",
    )
    assert meta.reason == "wave 1 rejected by cab@example.com: change freeze"
    assert {h.wave(1).state, h.wave(2).state} == {WavePhase.CANCELLED}
    [cancelled] = h.publisher.of(OperationCancelled)
    assert cancelled.requested_by == "cab@example.com"
    assert h.repo.locks == {} and h.publisher.of(WaveStarted) == []


def test_given_first_wave_mode_then_only_the_first_wave_waits():
    h = started(ApprovalMode.FIRST_WAVE)
    h.coordinator.on_approval_granted(grant(h.tokens.issued[0]))
    h.answer(h.publisher.of(WaveStarted))
    assert h.wave(2).state == WavePhase.RECOVERING
    assert len(h.notifier.sent) == 1


def test_given_a_crash_before_notifying_when_taken_over_then_a_fresh_token_is_sent():
    h = Harness()
    h.repo.plans[OP] = two_waves()
    from tests.unit.test_coordinator_domain import plan_ready, request

    h.coordinator.on_operation_requested(request(approval_mode=ApprovalMode.REQUIRED))
    h.publisher.fail_next = 1  # ApprovalRequested cannot be published: the worker dies
    with pytest.raises(RuntimeError):
        h.coordinator.on_plan_ready(plan_ready())

    h.clock.tick(60)
    h.coordinator.advance(OP)

    assert len(h.tokens.issued) == 2
    [requested] = h.publisher.of(ApprovalRequested)
    assert requested.token == h.tokens.issued[1]
    assert h.wave(1).announced == WavePhase.AWAITING_APPROVAL
    # both tokens were issued: either one approves (the first never reached anyone)
    h.coordinator.on_approval_granted(grant(h.tokens.issued[1]))
    assert h.wave(1).state == WavePhase.RECOVERING
