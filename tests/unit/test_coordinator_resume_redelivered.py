"""A resume request delivered again after the operation paused anew never decides the new
pause (found by the duplicated-deliveries property): only the operator's next request does."""

from __future__ import annotations

from drcore.state import OperationState
from events.schemas import ResumeMode, WaveStarted
from services.coordinator.domain import WavePhase

from .test_coordinator_controls import OP, paused_on_wave_1, resume
from .test_coordinator_domain import Harness


def test_given_a_skip_delivered_again_after_the_next_wave_failed_then_it_stays_paused() -> None:
    h = Harness()
    paused_on_wave_1(h)
    h.clock.tick(600)
    skip = resume(ResumeMode.SKIP_FAILED, occurred_at=h.clock.now)
    h.coordinator.on_resume_requested(skip)
    # wave 2 runs and fails: paused again, on wave 2
    h.answer([e for e in h.publisher.of(WaveStarted) if e.wave == 2], fail={"i-4"})
    assert (h.meta().state, h.meta().paused_wave) == (OperationState.PAUSED, 2)

    # When the first request (skip-failed for wave 1) is delivered again
    h.coordinator.on_resume_requested(skip)

    # Then wave 2's failure is not accepted by it: still paused, nothing further started
    assert (h.meta().state, h.wave(2).state) == (OperationState.PAUSED, WavePhase.FAILED)
    assert h.wave(2).failures_accepted_by is None
    assert 3 not in {e.wave for e in h.publisher.of(WaveStarted)}

    # and the operator's own next request does resume it
    h.clock.tick(60)
    h.coordinator.on_resume_requested(resume(ResumeMode.SKIP_FAILED, occurred_at=h.clock.now))
    assert h.meta().state == OperationState.RUNNING
    assert h.wave(2).failures_accepted_by == "sre@example.com"
    assert OP in h.repo.operations
