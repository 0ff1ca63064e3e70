"""The managed service's FSx for NetApp ONTAP flow with fakes: readiness, break, resync, drill."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from events.schemas import OperationType, ResourceRecovered, ResourceRecoveryFailed
from services.managed.domain import ManagedRecovery
from services.managed.ports import FsxFileSystem, OntapJob, SnapMirror

from .test_managed_domain import (
    SCOPE,
    D,
    FakeWorkload,
    Ledger,
    Log,
    P,
    Registry,
    Results,
    World,
    ref,
    wave,
)

FSX = "fsx:file-system"
SRC, DST = "fs-0123456789abcdef0", "fs-0fedcba987654321f"
TAGS = SCOPE | {
    "dr:managed:dr-file-system": DST,
    "dr:managed:ontap-secret": "dr/fsx/acme/fsxadmin",
    "dr:managed:ontap-failback": "resync",
}


class FsxWorkload(FakeWorkload):
    def fsx_file_system(self, file_system_id: str) -> FsxFileSystem | None:
        self._up()
        if self.region == P and file_system_id == SRC:
            return FsxFileSystem(SRC, "arn", P, "ONTAP", "AVAILABLE", tags=TAGS)
        if self.region == D and file_system_id == DST:
            return FsxFileSystem(DST, "arn", D, "ONTAP", "AVAILABLE", "mgmt.example", tags=SCOPE)
        return None

    def fsx_file_systems(self) -> list[FsxFileSystem]:
        # The DR file system carries the same Name and the secret's tag (primary region down).
        dr_tags = SCOPE | {"Name": SRC, "dr:managed:ontap-secret": "dr/fsx/acme/fsxadmin"}
        return [FsxFileSystem(DST, "arn", D, "ONTAP", "AVAILABLE", "mgmt.example", tags=dr_tags)]

    def secret(self, secret_id: str) -> str | None:
        return '{"username": "fsxadmin", "password": "pw"}'


class Workloads:
    def __init__(self, world: World) -> None:
        self.world = world

    def get(self, entry: Any, region: str) -> FsxWorkload:
        return FsxWorkload(self.world, region)


class Api:
    def __init__(self, *relationships: SnapMirror) -> None:
        self.rels = {r.uuid: r for r in relationships}
        self.patches: list[tuple[str, str]] = []

    def relationships(self) -> list[SnapMirror]:
        return list(self.rels.values())

    def set_state(self, uuid: str, state: str) -> str:
        self.patches.append((uuid, state))
        self.rels[uuid] = replace(self.rels[uuid], state=state)
        return f"job-{len(self.patches)}"

    def job(self, uuid: str) -> OntapJob:
        return OntapJob(uuid, "success")


class Connector:
    def __init__(self, api: Api) -> None:
        self.api = api

    def connect(self, file_system: FsxFileSystem, username: str, password: str) -> Api:
        assert (file_system.file_system_id, username, password) == (DST, "fsxadmin", "pw")
        return self.api


def rel(state: str = "snapmirrored", healthy: bool = True, lag: str = "PT5M") -> SnapMirror:
    return SnapMirror("u1", state, healthy, "svm:vol1", "svm-dr:vol1_dst", lag)


def run(operation: OperationType, api: Api, world: World | None = None) -> Any:
    results = Results()
    domain = ManagedRecovery(
        Registry(), Workloads(world or World()), Ledger(), results, Log(), ontap=Connector(api)
    )
    domain.recover_part(wave(operation, ref(SRC, FSX)))
    [result] = results.published
    return result


def test_given_healthy_snapmirror_when_failing_over_then_it_is_broken_off() -> None:
    api = Api(rel())
    result = run(OperationType.FAILOVER, api)
    assert isinstance(result, ResourceRecovered) and result.dr_resource_id == DST
    assert api.patches == [("u1", "broken_off")]
    assert result.details["lag_seconds"] == "300" and result.details["states"] == "broken_off"


def test_given_lag_over_rpo_then_it_fails_and_nothing_is_broken() -> None:
    api = Api(rel(lag="PT2H"))
    result = run(OperationType.FAILOVER, api)
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == "ONTAP_LAG_OVER_RPO" and api.patches == []


def test_given_an_unhealthy_relationship_then_it_fails_and_nothing_is_broken() -> None:
    api = Api(rel(healthy=False))
    result = run(OperationType.FAILOVER, api)
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == "ONTAP_SNAPMIRROR_UNHEALTHY" and api.patches == []


def test_given_a_drill_then_nothing_is_patched() -> None:
    api = Api(rel())
    result = run(OperationType.BUBBLE_TEST, api)
    assert isinstance(result, ResourceRecovered) and api.patches == []


def test_given_broken_off_when_failing_back_then_it_is_resynced() -> None:
    api = Api(rel(state="broken_off"))
    result = run(OperationType.FAILBACK, api)
    assert isinstance(result, ResourceRecovered) and result.dr_resource_id == SRC
    assert api.patches == [("u1", "snapmirrored")]


def test_given_already_broken_off_when_failing_over_again_then_nothing_is_patched_twice() -> None:
    api = Api(rel(state="broken_off"))
    result = run(OperationType.FAILOVER, api)
    assert isinstance(result, ResourceRecovered) and api.patches == []


def test_given_the_primary_region_down_then_the_dr_file_system_of_the_same_name_is_used() -> None:
    api = Api(rel())
    result = run(OperationType.FAILOVER, api, World(down={P}))
    assert isinstance(result, ResourceRecovered) and result.dr_resource_id == DST
    assert result.details["source_region_down"] == "true"
    assert api.patches == [("u1", "broken_off")]


def test_given_no_failback_mode_tag_then_failback_is_refused_and_nothing_resyncs() -> None:
    api = Api(rel(state="broken_off"))
    tags = dict(TAGS)
    del tags["dr:managed:ontap-failback"]

    class NoMode(FsxWorkload):
        def fsx_file_system(self, file_system_id: str) -> FsxFileSystem | None:
            found = super().fsx_file_system(file_system_id)
            return replace(found, tags=tags) if found and self.region == P else found

    results = Results()
    workloads = Workloads(World())
    workloads.get = lambda entry, region: NoMode(workloads.world, region)  # type: ignore[method-assign]
    ManagedRecovery(
        Registry(), workloads, Ledger(), results, Log(), ontap=Connector(api)
    ).recover_part(wave(OperationType.FAILBACK, ref(SRC, FSX)))
    [result] = results.published
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == "ONTAP_FAILBACK_MODE_REQUIRED" and api.patches == []
