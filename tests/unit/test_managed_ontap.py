"""FSx for NetApp ONTAP rules of the managed service: tags, lag_time, SnapMirror readiness."""

from __future__ import annotations

import pytest

from services.managed import config as C


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("PT5M12S", 312), ("PT0S", 0), ("P1DT2H", 93600), ("PT1H0M1.5S", 3601), ("P2D", 172800)],
)
def test_lag_time_durations_become_seconds(value: str, seconds: int) -> None:
    assert C.iso_duration_seconds(value) == seconds


@pytest.mark.parametrize("value", ["", "PT", "P", "5M", "PT5X", "P1DT"])
def test_a_bad_lag_time_is_refused_naming_it(value: str) -> None:
    with pytest.raises(ValueError, match="lag_time"):
        C.iso_duration_seconds(value)


def test_a_healthy_snapmirrored_relationship_within_the_rpo_is_ready() -> None:
    problem, lag = C.snapmirror_problem("u1", "svm:v_dst", "snapmirrored", True, "PT5M", 900)
    assert problem is None and lag == 300


@pytest.mark.parametrize(
    ("state", "healthy", "lag_time", "code"),
    [
        ("snapmirrored", False, "PT1M", "ONTAP_SNAPMIRROR_UNHEALTHY"),
        ("broken_off", True, "PT1M", "ONTAP_SNAPMIRROR_STATE"),
        ("uninitialized", True, None, "ONTAP_SNAPMIRROR_STATE"),
        ("snapmirrored", True, None, "ONTAP_NEVER_TRANSFERRED"),
        ("snapmirrored", True, "PT2H", "ONTAP_LAG_OVER_RPO"),
    ],
)
def test_a_relationship_not_ready_names_why(
    state: str, healthy: bool, lag_time: str | None, code: str
) -> None:
    problem, _ = C.snapmirror_problem("u1", "svm:v_dst", state, healthy, lag_time, 900)
    assert problem is not None and problem.code == code
    assert "svm:v_dst" in problem.message


def test_the_module_tags_are_read_and_bad_values_named() -> None:
    tags = {
        C.DR_FILE_SYSTEM: "fs-0123456789abcdef0",
        C.ONTAP_SECRET: "dr/fsx/acme/fsxadmin",
        C.ONTAP_VOLUMES: "svm1:vol1_dst, svm1:vol2_dst",
        C.ONTAP_FAILBACK: "resync",
    }
    assert C.fsx_dr_file_system(tags) == "fs-0123456789abcdef0"
    assert C.ontap_secret(tags) == "dr/fsx/acme/fsxadmin"
    assert C.ontap_volumes(tags) == ("svm1:vol1_dst", "svm1:vol2_dst")
    assert C.ontap_failback(tags) == "resync"
    with pytest.raises(C.TagError, match="dr:managed:dr-file-system='efs-1'"):
        C.fsx_dr_file_system({C.DR_FILE_SYSTEM: "efs-1"})
    with pytest.raises(C.TagError, match="dr:managed:ontap-secret is missing"):
        C.ontap_secret({})
    with pytest.raises(C.TagError, match="'vol1'"):
        C.ontap_volumes({C.ONTAP_VOLUMES: "vol1"})
    with pytest.raises(C.TagError, match="'discard'"):
        C.ontap_failback({C.ONTAP_FAILBACK: "discard"})


def test_credentials_come_from_json_or_a_bare_password() -> None:
    assert C.credentials('{"username": "admin", "password": "pw"}') == ("admin", "pw")
    assert C.credentials("pw") == ("fsxadmin", "pw")
    with pytest.raises(ValueError, match="password"):
        C.credentials('{"username": "admin"}')
