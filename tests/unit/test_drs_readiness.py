"""The readiness rules (`services/drs/readiness.py`): one verdict per server, pure."""

from __future__ import annotations

from typing import Any

import pytest

from drcore import tags as T
from services.drs import readiness as R

SCOPE = {T.CUSTOMER: "acme", T.ENVIRONMENT: "production"}


def server(**kw: Any) -> R.Server:
    values: dict[str, Any] = {
        "source_server_id": "s-1",
        "aws_instance_id": "i-1",
        "tags": SCOPE,
        "replication_state": "CONTINUOUS",
        "lag_seconds": 30.0,
        "primary_ip": "10.1.0.10",
        "os": "Microsoft Windows Server 2022 Datacenter",
        "architecture": "x86_64",
    }
    return R.Server(**(values | kw))


def machine(**kw: Any) -> R.Machine:
    values: dict[str, Any] = {
        "instance_id": "i-twin",
        "tags": {**SCOPE, T.NAME: "web-01", T.DRS_LAUNCH_INTO: T.DRS_LAUNCH_INTO_VALUE},
        "private_ip": "10.101.0.10",
        "state": "stopped",
        "platform": "windows",
        "architecture": "x86_64",
        "boot_mode": "legacy-bios",
    }
    return R.Machine(**(values | kw))


# --- replication ----------------------------------------------------------------------------------


def test_given_continuous_replication_within_rpo_then_go_with_the_lag_recorded() -> None:
    verdict = R.replication(server(lag_seconds=60), rpo_minutes=15, force=False)
    assert verdict.ok and verdict.lag_seconds == 60 and verdict.rpo_exceeded is False


@pytest.mark.parametrize("state", ["BACKLOG", "CREATING_SNAPSHOT", "RESCAN"])
def test_given_replication_catching_up_within_rpo_then_go(state: str) -> None:
    assert R.replication(server(replication_state=state), 15, force=False).ok


def test_given_lag_over_rpo_then_stop_unless_forced_which_is_recorded() -> None:
    late = server(lag_seconds=20 * 60)
    stopped = R.replication(late, 15, force=False)
    assert (stopped.code, stopped.retryable) == (R.LAG_OVER_RPO, True)
    forced = R.replication(late, 15, force=True)
    assert forced.ok and forced.forced and forced.rpo_exceeded
    assert any("--force" in w for w in forced.warnings)


def test_given_lag_over_rpo_in_a_drill_then_only_a_warning() -> None:
    verdict = R.replication(server(lag_seconds=3600), 15, force=False, drill=True)
    assert verdict.ok and not verdict.forced and verdict.warnings


@pytest.mark.parametrize("state", ["STALLED", "DISCONNECTED", "STOPPED", "PAUSED"])
def test_given_broken_replication_then_stop_unless_forced(state: str) -> None:
    broken = server(replication_state=state)
    assert R.replication(broken, 15, force=False).code == R.REPLICATION_NOT_READY
    forced = R.replication(broken, 15, force=True)
    assert forced.ok and forced.forced


@pytest.mark.parametrize("state", ["INITIATING", "INITIAL_SYNC"])
def test_given_no_snapshot_yet_then_stop_even_when_forced(state: str) -> None:
    verdict = R.replication(server(replication_state=state), 15, force=True)
    assert verdict.code == R.REPLICATION_NOT_READY and verdict.retryable


def test_given_reversed_replication_then_already_failed_over_even_when_forced() -> None:
    verdict = R.replication(
        server(replication_state="STOPPED", reversed_arn="arn:x"), 15, force=True
    )
    assert verdict.code == R.ALREADY_FAILED_OVER


def test_given_another_job_launching_the_server_then_job_in_progress_unless_it_is_ours() -> None:
    busy = server(last_launch_status="IN_PROGRESS", last_launch_job="drsjob-1")
    verdict = R.job_in_progress(busy)
    assert verdict is not None and verdict.code == R.JOB_IN_PROGRESS
    assert R.job_in_progress(busy, frozenset({"drsjob-1"})) is None
    assert R.job_in_progress(server(last_launch_status="LAUNCHED")) is None


# --- twins ----------------------------------------------------------------------------------------


def test_given_a_matching_twin_then_its_id_is_the_target_and_boot_mode_verified() -> None:
    verdict = R.twin(server(), "10.1.0.10", [machine()], machine(instance_id="i-1"))
    assert verdict.ok and verdict.target == "i-twin" and verdict.boot_mode == "verified"


def test_given_no_twin_then_a_standard_launch_with_a_warning() -> None:
    verdict = R.twin(server(), "10.1.0.10", [], None)
    assert verdict.ok and verdict.target is None and "not preserved" in verdict.warnings[0]


@pytest.mark.parametrize(
    ("twin", "primary_ip", "code"),
    [
        (machine(private_ip="10.101.0.11"), "10.1.0.10", R.TWIN_IP_MISMATCH),
        (machine(), None, R.PRIMARY_IP_UNKNOWN),
        (machine(tags={**SCOPE, T.NAME: "web-01"}), "10.1.0.10", R.TWIN_NOT_LAUNCH_TARGET),
        (machine(platform="linux"), "10.1.0.10", R.TWIN_OS_MISMATCH),
        (machine(architecture="arm64"), "10.1.0.10", R.TWIN_ARCHITECTURE_MISMATCH),
        (machine(boot_mode="uefi"), "10.1.0.10", R.TWIN_BOOT_MODE_MISMATCH),
    ],
)
def test_given_a_twin_that_cannot_take_the_server_then_the_rule_names_why(
    twin: R.Machine, primary_ip: str | None, code: str
) -> None:
    primary = machine(instance_id="i-1", tags=SCOPE)
    assert R.twin(server(), primary_ip, [twin], primary).code == code


def test_given_two_twins_then_ambiguous() -> None:
    verdict = R.twin(server(), "10.1.0.10", [machine(), machine(instance_id="i-twin2")], None)
    assert verdict.code == R.AMBIGUOUS_TWIN and "i-twin2" in verdict.message


def test_given_an_unknown_or_flexible_boot_mode_then_not_a_mismatch() -> None:
    unknown = R.twin(server(), "10.1.0.10", [machine()], None)
    assert unknown.ok and unknown.boot_mode == "unverified"
    flexible = R.twin(
        server(), "10.1.0.10", [machine(boot_mode="uefi-preferred")], machine(boot_mode="uefi")
    )
    assert flexible.ok


# --- failback -------------------------------------------------------------------------------------


def failed_over(**kw: Any) -> R.Server:
    return server(
        replication_state="STOPPED",
        recovery_instance_id="i-twin",
        reversed_arn="arn:aws:drs:us-east-1:111111111111:source-server/s-rev",
        **kw,
    )


def test_given_continuous_reverse_replication_then_failback_into_the_original_instance() -> None:
    reversed_server = server(source_server_id="s-rev", aws_instance_id="i-twin")
    original = machine(instance_id="i-1", tags=SCOPE, private_ip="10.1.0.10")
    verdict = R.failback(
        "acme", "production", failed_over(), reversed_server, original, "10.1.0.10", "i-1"
    )
    assert verdict.ok and verdict.target == "i-1"


@pytest.mark.parametrize(
    ("dr_server", "reversed_state", "target", "code"),
    [
        (None, "CONTINUOUS", True, R.NO_SOURCE_SERVER),
        (server(), "CONTINUOUS", True, R.NOT_FAILED_OVER),
        (
            server(recovery_instance_id="i-twin"),
            "CONTINUOUS",
            True,
            R.REVERSE_REPLICATION_NOT_STARTED,
        ),
        (failed_over(), "INITIAL_SYNC", True, R.REVERSE_REPLICATION_NOT_CONTINUOUS),
        (failed_over(), "CONTINUOUS", False, R.FAILBACK_TARGET_MISSING),
        (
            failed_over(tags={T.CUSTOMER: "globex", T.ENVIRONMENT: "production"}),
            "CONTINUOUS",
            True,
            R.SCOPE_MISMATCH,
        ),
    ],
)
def test_given_a_server_not_ready_for_failback_then_a_clear_reason(
    dr_server: R.Server | None, reversed_state: str, target: bool, code: str
) -> None:
    reversed_server = (
        None
        if dr_server is not None and not dr_server.reversed_arn
        else server(source_server_id="s-rev", replication_state=reversed_state)
    )
    original = machine(instance_id="i-1", tags=SCOPE, private_ip="10.1.0.10") if target else None
    verdict = R.failback(
        "acme", "production", dr_server, reversed_server, original, "10.1.0.10", "i-1"
    )
    assert verdict.code == code and verdict.message


def test_given_an_original_instance_with_another_ip_then_failback_target_ip_mismatch() -> None:
    reversed_server = server(source_server_id="s-rev")
    moved = machine(instance_id="i-1", tags=SCOPE, private_ip="10.1.0.99")
    verdict = R.failback(
        "acme", "production", failed_over(), reversed_server, moved, "10.1.0.10", "i-1"
    )
    assert verdict.code == R.FAILBACK_TARGET_IP_MISMATCH


# --- the bubble -----------------------------------------------------------------------------------


def test_given_a_bubble_mirroring_the_cidr_then_the_server_keeps_its_ip_there() -> None:
    bubble = R.Bubble(
        "vpc-b", (R.Subnet("subnet-a", "10.9.0.0/24"), R.Subnet("subnet-b", "10.1.0.0/16"))
    )
    subnet, keeps = bubble.placement("10.1.0.10")
    assert (subnet.subnet_id, keeps) == ("subnet-b", True)
    other, keeps = bubble.placement("192.168.1.1")
    assert (other.subnet_id, keeps) == ("subnet-a", False)
