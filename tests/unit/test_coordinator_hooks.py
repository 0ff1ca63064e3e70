"""Pre/post-wave hooks: SSM Automation started once per attempt with the operation's context,
completed by native status events or polling, failing (or timing out) fails the wave and pauses
the operation; resume re-runs the hook or accepts its failure. In-memory fakes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from drcore.state import OperationState
from events.schemas import (
    ApprovalMode,
    OperationPaused,
    OperationResumeRequested,
    OperationType,
    ResumeMode,
    WaveFailed,
    WaveStarted,
)
from events.schemas.models import HookFinished, HookStarted
from events.schemas.names import HookPhase
from services.coordinator.domain import ErrorCode, FailedPhase, WavePhase
from services.coordinator.hooks import (
    HookCheck,
    HookConfig,
    HookSpec,
    client_token,
    hook_parameters,
)
from tests.unit.test_coordinator_domain import (
    CUSTOMER,
    ENVIRONMENT,
    Harness,
    plan,
    request,
    resource,
)

OP = "op-000001"


def hooked(pre: bool = True, post: bool = True, **spec: Any) -> Harness:
    h = Harness()
    h.hooks.configs[(CUSTOMER, ENVIRONMENT)] = HookConfig(
        pre_wave=HookSpec(document_name="acme-pre-wave", **spec) if pre else None,
        post_wave=HookSpec(document_name="acme-post-wave", waves=[2]) if post else None,
    )
    h.start(the_plan=plan({1: [resource("i-1", 1)], 2: [resource("i-2", 2)]}))
    return h


def resume(mode: ResumeMode) -> OperationResumeRequested:
    return OperationResumeRequested(
        operation_id=OP,
        customer=CUSTOMER,
        environment=ENVIRONMENT,
        operation=OperationType.FAILOVER,
        requested_by="sre@example.com",
        mode=mode,
    )


def latest_execution(h: Harness) -> str:
    return h.hooks.started[-1][3]


def test_given_parameters_then_the_context_is_passed_and_the_token_is_per_attempt():
    spec = HookSpec(document_name="doc-1", parameters={"Url": ["https://x"]})
    params = hook_parameters(
        spec,
        operation_id=OP,
        operation="failover",
        customer="acme",
        environment="production",
        wave=3,
        phase=HookPhase.PRE_WAVE,
    )
    assert params["Wave"] == ["3"] and params["Url"] == ["https://x"]
    assert params["Phase"] == ["pre-wave"] and params["OperationId"] == [OP]
    bare = HookSpec(document_name="doc-1", context_parameters=False)
    assert (
        hook_parameters(
            bare,
            operation_id=OP,
            operation="failover",
            customer="acme",
            environment="production",
            wave=3,
            phase=HookPhase.PRE_WAVE,
        )
        == {}
    )
    first = client_token(OP, 3, HookPhase.PRE_WAVE, 1)
    assert first == client_token(OP, 3, HookPhase.PRE_WAVE, 1)
    assert first != client_token(OP, 3, HookPhase.PRE_WAVE, 2)


def test_given_a_pre_wave_hook_when_the_wave_begins_then_it_runs_in_the_workload_account_first():
    h = hooked()

    assert h.wave(1).state == WavePhase.PRE_HOOKS
    assert h.publisher.of(WaveStarted) == []
    [(target, spec, params, execution)] = h.hooks.started
    assert (target.account, target.region, target.external_id) == (
        "111111111111",
        "us-east-2",
        "dr-acme",
    )
    assert spec.document_name == "acme-pre-wave" and params["Wave"] == ["1"]
    [started] = h.publisher.of(HookStarted)
    assert (started.execution_id, started.phase) == (execution, HookPhase.PRE_WAVE)
    assert h.repo.get_hook_ref(execution) is not None
    # and a poll is scheduled as reconciliation of the native event
    [(check, delay)] = h.scheduler.scheduled
    assert isinstance(check, HookCheck) and check.execution_id == execution and delay == 5


def test_given_the_native_success_event_then_recovery_starts_and_the_post_hook_follows():
    h = hooked()
    execution = latest_execution(h)
    h.hooks.complete(execution)

    h.coordinator.on_hook_status(execution, "Success")
    h.coordinator.on_hook_status(execution, "Success")  # delivered twice

    assert h.wave(1).state == WavePhase.RECOVERING
    assert len(h.publisher.of(WaveStarted)) == 1
    [finished] = h.publisher.of(HookFinished)
    assert finished.succeeded and finished.status == "Success"
    pre = h.wave(1).pre_hook
    assert pre is not None and pre.status == "Success" and h.wave(1).hook_execution_id is None

    # When wave 1 recovers, wave 2 runs its pre hook, recovers, then its post hook (waves: [2])
    h.answer(h.publisher.of(WaveStarted))
    assert h.wave(1).state == WavePhase.COMPLETED
    h.coordinator.on_hook_status(latest_execution(h), "Success")
    h.answer([e for e in h.publisher.of(WaveStarted) if e.wave == 2])
    assert h.wave(2).state == WavePhase.POST_HOOKS
    assert h.hooks.started[-1][1].document_name == "acme-post-wave"
    h.coordinator.on_hook_status(latest_execution(h), "Success")
    assert h.meta().state == OperationState.COMPLETED


def test_given_events_for_other_executions_then_they_are_ignored():
    h = hooked()
    h.coordinator.on_hook_status("foreign-execution-0000", "Failed")
    h.coordinator.on_hook_status(latest_execution(h), "InProgress")
    assert h.wave(1).state == WavePhase.PRE_HOOKS


def test_given_a_failed_hook_then_the_wave_fails_and_pauses_and_retry_runs_it_again():
    h = hooked()
    first = latest_execution(h)
    h.hooks.complete(first, "Failed", "step checkBackups: no backup in 24 h")

    # When the native event says Failed (the message is fetched from SSM)
    h.coordinator.on_hook_status(first, "Failed")

    # Then the wave FAILED on its pre hook and the operation is PAUSED, nothing recovering
    wave = h.wave(1)
    assert (wave.state, wave.failed_phase) == (WavePhase.FAILED, FailedPhase.PRE_WAVE_HOOK)
    [failed] = h.publisher.of(WaveFailed)
    assert "acme-pre-wave" in failed.reason and "no backup in 24 h" in failed.reason
    [paused] = h.publisher.of(OperationPaused)
    assert paused.wave == 1 and h.meta().state == OperationState.PAUSED
    assert h.publisher.of(WaveStarted) == []

    # When the operator resumes with retry-failed, then the hook runs again (attempt 2)
    h.clock.tick(300)
    h.coordinator.on_resume_requested(resume(ResumeMode.RETRY_FAILED))
    second = latest_execution(h)
    assert second != first and h.wave(1).state == WavePhase.PRE_HOOKS
    pre = h.wave(1).pre_hook
    assert pre is not None and pre.attempt == 2 and h.meta().state == OperationState.RUNNING
    h.hooks.complete(second)
    h.coordinator.on_hook_check(HookCheck(operation_id=OP, wave=1, execution_id=second))
    assert h.wave(1).state == WavePhase.RECOVERING


def test_given_a_failed_hook_when_skipped_then_the_wave_goes_on_without_it():
    h = hooked()
    h.hooks.complete(latest_execution(h), "TimedOut")
    h.coordinator.on_hook_status(latest_execution(h), "TimedOut")
    h.coordinator.on_resume_requested(resume(ResumeMode.SKIP_FAILED))
    wave = h.wave(1)
    assert (wave.state, wave.failures_accepted_by) == (WavePhase.RECOVERING, "sre@example.com")


def test_given_a_hook_ssm_refuses_when_starting_then_it_fails_at_once():
    h = Harness()
    h.hooks.refuse = "AutomationDefinitionNotFoundException: acme-pre-wave"
    h.hooks.configs[(CUSTOMER, ENVIRONMENT)] = HookConfig(
        pre_wave=HookSpec(document_name="acme-pre-wave")
    )
    h.start(the_plan=plan({1: [resource("i-1", 1)]}))
    assert h.wave(1).failed_phase == FailedPhase.PRE_WAVE_HOOK
    assert h.meta().state == OperationState.PAUSED
    [finished] = h.publisher.of(HookFinished)
    assert finished.execution_id is None and "NotFound" in (finished.failure_message or "")


def test_given_a_hook_without_an_answer_when_polled_past_its_timeout_then_stopped_and_failed():
    h = hooked(timeout_seconds=60)
    execution = latest_execution(h)

    # Polling before the time limit keeps polling with backoff
    h.clock.tick(30)
    h.coordinator.on_hook_check(HookCheck(operation_id=OP, wave=1, execution_id=execution))
    assert h.scheduler.scheduled[-1][1] == 10

    # After it, the execution is stopped and the wave fails as TimedOut
    h.clock.tick(40)
    h.coordinator.on_hook_check(HookCheck(operation_id=OP, wave=1, execution_id=execution, check=1))
    assert h.hooks.stopped == [execution]
    pre = h.wave(1).pre_hook
    assert pre is not None and pre.status == "TimedOut"
    assert h.meta().state == OperationState.PAUSED


def test_given_a_lost_status_event_then_the_reconciler_polls_the_hook():
    h = hooked()
    h.hooks.complete(latest_execution(h))
    h.clock.tick(120)
    h.coordinator.reconcile()
    assert h.wave(1).state == WavePhase.RECOVERING


def test_given_hooks_and_approval_then_the_pre_hook_runs_before_the_approval_request():
    h = Harness()
    h.hooks.configs[(CUSTOMER, ENVIRONMENT)] = HookConfig(
        pre_wave=HookSpec(document_name="acme-pre-wave")
    )
    h.start(the_plan=plan({1: [resource("i-1", 1)]}), approval_mode=ApprovalMode.REQUIRED)
    assert h.notifier.sent == []
    h.coordinator.on_hook_status(latest_execution(h), "Success")
    assert h.wave(1).state == WavePhase.AWAITING_APPROVAL
    assert "acme-pre-wave Success" in h.notifier.sent[0][1]


def test_given_an_invalid_hook_configuration_then_the_operation_is_refused():
    from services.coordinator.hooks import HookConfigInvalid

    h = Harness()

    def broken(customer: str, environment: str) -> HookConfig:
        raise HookConfigInvalid("hook configuration /dr-orchestrator/hooks/acme/production ...")

    h.hooks.get = broken  # type: ignore[method-assign]
    h.coordinator.on_operation_requested(request())
    assert h.meta().error_code == ErrorCode.HOOK_CONFIG_INVALID
    assert h.repo.locks == {}


def test_given_a_crash_after_starting_a_hook_when_taken_over_then_the_same_execution_is_kept():
    h = Harness()
    h.hooks.configs[(CUSTOMER, ENVIRONMENT)] = HookConfig(
        pre_wave=HookSpec(document_name="acme-pre-wave")
    )
    h.publisher.fail_next = 0
    h.repo.plans[OP] = plan({1: [resource("i-1", 1)]})
    h.coordinator.on_operation_requested(request())
    from tests.unit.test_coordinator_domain import plan_ready

    h.publisher.fail_next = 1  # HookStarted cannot be published: the worker dies
    with pytest.raises(RuntimeError):
        h.coordinator.on_plan_ready(plan_ready())
    assert h.wave(1).announced is None
    h.clock.tick(timedelta(minutes=1).total_seconds())
    h.coordinator.advance(OP)
    assert len(h.hooks.started) == 1  # the client token returned the same execution
    assert h.wave(1).announced == WavePhase.PRE_HOOKS
