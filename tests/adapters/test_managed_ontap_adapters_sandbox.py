"""Managed adapters for FSx for NetApp ONTAP (FSx, Secrets Manager, the ONTAP REST API over
urllib) and ElastiCache Global Datastores, against the sandbox endpoint and its emulators, in the
customer's account through AssumeRole (drcore.aws)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from drcore.registry import CustomerEntry, EnvironmentEntry
from drcore.settings import Settings
from services.managed import config as C
from services.managed.adapters import BotoWorkloads, OntapEndpoints
from services.managed.ports import OntapError

pytestmark = pytest.mark.sandbox

ACCOUNT = "333333333334"
CUSTOMER = "mgd-ontap-adapters"
PRIMARY, DR = "us-east-1", "us-east-2"
ESTATE = f"""
regions: {{{PRIMARY}: {DR}}}
customers:
  - name: {CUSTOMER}
    account: "{ACCOUNT}"
    region: {PRIMARY}
    environments:
      - name: production
        bubble_network: false
        fsx_ontap: [{{name: nas, wave: 1, volumes: [vol1]}}]
        caches: [{{name: sessions, wave: 1, global_datastore: true}}]
"""
ENTRY = CustomerEntry(
    name=CUSTOMER,
    account=ACCOUNT,
    regions={PRIMARY: DR},
    environments=[EnvironmentEntry(name="production")],
    external_id=f"dr-{CUSTOMER}",
)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    from sandbox.endpoint import SandboxEndpoint
    from sandbox.estate import parse_estate
    from sandbox.seed import seed_estate

    server = SandboxEndpoint()
    url = server.start(port=0)
    seed_estate(parse_estate(ESTATE, "<managed ONTAP adapters>"), url)
    yield url
    server.stop()


@pytest.fixture(scope="module")
def workloads(url: str, monkeypatch_module: Any) -> BotoWorkloads:
    monkeypatch_module.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch_module.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch_module.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    from drcore.aws import AwsClients

    return BotoWorkloads(AwsClients(Settings()))


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_ontap_file_system_secret_and_snapmirror_through_the_adapters(
    url: str, workloads: BotoWorkloads
) -> None:
    primary, dr = workloads.get(ENTRY, PRIMARY), workloads.get(ENTRY, DR)
    [source] = [f for f in primary.fsx_file_systems() if f.tags.get("Name") == "nas"]
    assert source.file_system_type == "ONTAP" and source.lifecycle == "AVAILABLE"
    dr_fs = dr.fsx_file_system(C.fsx_dr_file_system(source.tags))
    assert dr_fs is not None and dr_fs.management_dns and dr_fs.management_ips
    secret = dr.secret(C.ontap_secret(source.tags))
    assert secret is not None
    username, password = C.credentials(secret)

    ontap = OntapEndpoints(url + "/_ontap/{file_system_id}").connect(dr_fs, username, password)
    [relationship] = ontap.relationships()
    assert (relationship.state, relationship.healthy) == ("snapmirrored", True)
    assert relationship.destination_path == "nas-dr-svm:vol1_dst"
    assert C.iso_duration_seconds(relationship.lag_time or "") == 300
    job = ontap.set_state(relationship.uuid, "broken_off")
    assert ontap.job(job).state == "success"
    assert [r.state for r in ontap.relationships()] == ["broken_off"]
    with pytest.raises(OntapError, match="HTTP 401"):
        OntapEndpoints(url + "/_ontap/{file_system_id}").connect(
            dr_fs, username, "wrong"
        ).relationships()
    assert dr.secret("dr/fsx/nobody/fsxadmin") is None


def test_global_datastore_read_and_failover_through_the_adapters(workloads: BotoWorkloads) -> None:
    primary, dr = workloads.get(ENTRY, PRIMARY), workloads.get(ENTRY, DR)
    group = primary.replication_group("sessions")
    assert group is not None and group.global_group_id
    store = dr.global_datastore(group.global_group_id)
    assert store is not None and store.status == "available"
    assert {(m.region, m.role) for m in store.members} == {
        (PRIMARY, "PRIMARY"),
        (DR, "SECONDARY"),
    }
    dr.failover_global(group.global_group_id, DR, "sessions-dr")
    after = dr.global_datastore(group.global_group_id)
    assert after is not None
    member = after.member_in(DR)
    assert member is not None and member.role == "PRIMARY"
    assert dr.global_datastore("sbxgd-unknown") is None
