"""Results counted together on DynamoDB (moto): one transaction per wave for a batch of results,
each resource under its own condition, duplicates left out and never counted twice."""

from __future__ import annotations

from typing import Any

import pytest

from drcore.state import OperationState, ResourceState
from services.coordinator.adapters import DynamoRepository
from services.coordinator.domain import (
    ResultOutcome,
    WavePhase,
    WaveRecord,
    record_from_request,
    resource_record,
)
from tests.unit.test_coordinator_domain import T0, request, resource

from .test_coordinator_dynamodb import OP, result


@pytest.fixture
def repo(tables: dict[str, Any]) -> DynamoRepository:
    return DynamoRepository(tables["operations"], sleep=lambda _: None)


def seed(repo: DynamoRepository, count: int, state: WavePhase = WavePhase.RECOVERING) -> None:
    repo.create_operation(record_from_request(request(), OperationState.RUNNING, T0))
    repo.put_plan_items(
        OP,
        [WaveRecord(number=1, state=state, expected=count, remaining=count, updated_at=T0)],
        [resource_record(resource(f"i-{n}", 1), 1) for n in range(count)],
        overwrite=True,
    )


def counting(repo: DynamoRepository, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    real = repo._client.transact_write_items

    def transact(**kwargs: Any) -> Any:
        sizes.append(len(kwargs["TransactItems"]))
        return real(**kwargs)

    monkeypatch.setattr(repo._client, "transact_write_items", transact)
    return sizes


def test_given_a_batch_of_results_then_one_transaction_moves_them_and_the_counters(
    repo: DynamoRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(repo, 4)
    sizes = counting(repo, monkeypatch)

    outcomes = repo.record_results(
        [result("i-0", 1), result("i-1", 1), result("i-2", 1, recovered=False)]
    )

    assert outcomes == [ResultOutcome.APPLIED] * 3
    assert sizes == [4]  # three resources and their wave
    wave = repo.get_wave(OP, 1)
    assert wave is not None
    assert (wave.recovered, wave.failed, wave.failed_resources) == (2, 1, frozenset({"i-2"}))
    states = {r.resource_id: r.state for r in repo.list_resources(OP)}
    assert states == {
        "i-0": ResourceState.RECOVERED,
        "i-1": ResourceState.RECOVERED,
        "i-2": ResourceState.FAILED,
        "i-3": ResourceState.PENDING,
    }


def test_given_duplicates_in_and_across_batches_then_each_resource_counts_once(
    repo: DynamoRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(repo, 3)
    assert repo.record_results([result("i-0", 1)]) == [ResultOutcome.APPLIED]
    sizes = counting(repo, monkeypatch)

    # i-0 again (counted before), i-1 twice in the same batch, i-2 new
    outcomes = repo.record_results(
        [result("i-0", 1), result("i-1", 1), result("i-1", 1), result("i-2", 1)]
    )

    # the last two of the wave: they may complete it
    assert outcomes == [
        ResultOutcome.DUPLICATE,
        ResultOutcome.COMPLETING,
        ResultOutcome.DUPLICATE,
        ResultOutcome.COMPLETING,
    ]
    # refused for i-0's condition; then refused as the wave's last results (nothing remains
    # after them); then counted without that condition
    assert sizes == [4, 3, 3]
    wave = repo.get_wave(OP, 1)
    assert wave is not None and (wave.recovered, wave.failed, wave.remaining) == (3, 0, 0)


def test_given_a_wave_written_before_remaining_was_kept_then_results_say_it_may_be_complete(
    repo: DynamoRepository,
) -> None:
    repo.create_operation(record_from_request(request(), OperationState.RUNNING, T0))
    repo.put_plan_items(
        OP,
        [WaveRecord(number=1, state=WavePhase.RECOVERING, expected=2, updated_at=T0)],
        [resource_record(resource(f"i-{n}", 1), 1) for n in range(2)],
        overwrite=True,
    )

    # Without `remaining` the repository cannot tell: the domain advances (and reads)
    assert repo.record_results([result("i-0", 1)]) == [ResultOutcome.COMPLETING]
    wave = repo.get_wave(OP, 1)
    assert wave is not None and wave.recovered == 1


def test_given_a_wave_not_recovering_then_no_result_of_the_batch_counts(
    repo: DynamoRepository,
) -> None:
    seed(repo, 2, WavePhase.PENDING)

    outcomes = repo.record_results([result("i-0", 1), result("i-1", 1), result("i-9", 1)])

    assert outcomes == [ResultOutcome.REJECTED, ResultOutcome.REJECTED, ResultOutcome.UNKNOWN]
    wave = repo.get_wave(OP, 1)
    assert wave is not None and wave.counted == 0
    assert {r.state for r in repo.list_resources(OP)} == {ResourceState.PENDING}


def test_given_more_results_than_a_transaction_holds_then_they_are_split(
    repo: DynamoRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(repo, 120)
    sizes = counting(repo, monkeypatch)

    outcomes = repo.record_results([result(f"i-{n}", 1) for n in range(120)])

    # 99 while results remain; the last 21 end the wave (refused once, then without condition)
    assert outcomes == [ResultOutcome.APPLIED] * 99 + [ResultOutcome.COMPLETING] * 21
    assert sizes == [100, 22, 22]
    wave = repo.get_wave(OP, 1)
    assert wave is not None and wave.recovered == 120
