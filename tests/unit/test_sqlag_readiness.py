"""Readiness rules: planned only when synchronized (synchronous commit), forced only with the
operator's permission and never onto REVERTING / INITIALIZING; estimated data loss."""

from __future__ import annotations

from typing import Any

import pytest

from services.sqlag import readiness as R
from services.sqlag.commands import AgStatus


def status(
    *states: str,
    role: str = "SECONDARY",
    mode: str = "SYNCHRONOUS_COMMIT",
    commits: tuple[str, ...] = (),
    primary_view: bool = False,
) -> AgStatus:
    databases: list[dict[str, Any]] = [
        {
            "name": f"Db{i}",
            "replica_server": "sql",
            "is_local": True,
            "is_primary_replica": primary_view,
            "sync_state": state,
            "last_commit_time": commits[i] if i < len(commits) else None,
        }
        for i, state in enumerate(states)
    ]
    return AgStatus.model_validate(
        {
            "script": "Get-SqlAgStatus",
            "ok": True,
            "ag_name": "ag1",
            "server": "sql",
            "ag_found": True,
            "collected_at": "2026-11-26T10:00:00Z",
            "replicas": [
                {"server": "sql", "role": role, "is_local": True, "availability_mode": mode}
            ],
            "databases": databases,
        }
    )


def test_given_every_database_synchronized_then_a_planned_failover() -> None:
    decision = R.assess_failover(status("SYNCHRONIZED", "SYNCHRONIZED"), allow_data_loss=False)
    assert decision.mode == R.PLANNED


@pytest.mark.parametrize("lagging", ["SYNCHRONIZING", "NOT SYNCHRONIZING", "REVERTING"])
def test_given_one_database_not_synchronized_without_permission_then_refused(
    lagging: str,
) -> None:
    decision = R.assess_failover(status("SYNCHRONIZED", lagging), allow_data_loss=False)
    assert decision.mode is None and decision.code == R.NOT_SYNCHRONIZED
    assert f"Db1={lagging}" in decision.message and "--allow-data-loss" in decision.message


def test_given_permission_then_a_forced_failover_onto_lagging_databases() -> None:
    decision = R.assess_failover(status("SYNCHRONIZING", "NOT SYNCHRONIZING"), True)
    assert decision.mode == R.FORCED


@pytest.mark.parametrize("unsafe", sorted(R.UNSAFE_STATES))
def test_given_permission_then_never_forced_onto_reverting_or_initializing(unsafe: str) -> None:
    decision = R.assess_failover(status("SYNCHRONIZING", unsafe), allow_data_loss=True)
    assert decision.mode is None and decision.code == R.UNSAFE_SYNC_STATE
    assert f"Db1={unsafe}" in decision.message


def test_given_asynchronous_commit_then_no_planned_failover() -> None:
    async_status = status("SYNCHRONIZED", mode="ASYNCHRONOUS_COMMIT")
    decision = R.assess_failover(async_status, allow_data_loss=False)
    assert decision.code == R.NOT_SYNCHRONIZED and "asynchronously" in decision.message


def test_given_no_database_then_refused() -> None:
    assert R.assess_failover(status(), allow_data_loss=True).code == R.NO_DATABASES


def test_data_loss_is_the_worst_commit_gap_per_database() -> None:
    dr = status(
        "SYNCHRONIZING",
        "SYNCHRONIZING",
        commits=("2026-11-26T10:00:00Z", "2026-11-26T09:58:00Z"),
    )
    primary = status(
        "SYNCHRONIZED",
        "SYNCHRONIZED",
        role="PRIMARY",
        primary_view=True,
        commits=("2026-11-26T10:00:30Z", "2026-11-26T10:00:00Z"),
    )
    assert R.estimate_data_loss(dr, primary) == 120.0
    assert R.estimate_data_loss(dr, None) is None


def test_a_secondary_ahead_of_a_stale_primary_view_counts_no_loss() -> None:
    dr = status("SYNCHRONIZED", commits=("2026-11-26T10:00:05Z",))
    primary = status("SYNCHRONIZED", primary_view=True, commits=("2026-11-26T10:00:00Z",))
    assert R.estimate_data_loss(dr, primary) == 0.0
