"""End to end in the sandbox for FSx for NetApp ONTAP (SnapMirror through the emulated ONTAP
REST API of the DR file system's management endpoint) and an ElastiCache Global Datastore
(emulated): discovery, the coordinator's waves and the
managed service, driven with `drctl` as the operator runs it.

- failover breaks the SnapMirror relationships (the DR volumes become writable) and makes the
  Global Datastore's DR member primary; failback resyncs them (primary -> DR) and moves the
  primary back;
- a drill validates and breaks nothing;
- an unhealthy relationship with its lag over the RPO: a clear failure, nothing broken.

Each scenario has its own customer (seeded into the package's sandbox) so nothing is shared.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from drcore.aws import AccountAccess, AwsClients
from drcore.state import read_operation
from sandbox.daemon import Sandbox
from sandbox.estate import Estate, parse_estate
from sandbox.seed import seed_estate

from .test_managed_sandbox import by_strategy, drctl_json, eventually

pytestmark = pytest.mark.sandbox

PRIMARY, DR = "us-east-1", "us-east-2"
ROUND, DRILL, SICK = "nas-round", "nas-drill", "nas-sick"
ACCOUNTS = {ROUND: "444444444451", DRILL: "444444444452", SICK: "444444444453"}


def estate_yaml() -> str:
    def one(customer: str, spec: str) -> str:
        return f"""
  - name: {customer}
    account: "{ACCOUNTS[customer]}"
    region: {PRIMARY}
    environments:
      - name: staging
        bubble_network: false
        fsx_ontap: [{spec}]"""

    return f"""
regions: {{{PRIMARY}: {DR}}}
customers:{one(ROUND, f"{{name: {ROUND}-nas, wave: 1, volumes: [vol1, vol2]}}")}
        caches: [{{name: {ROUND}-cache, wave: 1, global_datastore: true}}]{
        one(DRILL, f"{{name: {DRILL}-nas, wave: 1}}")
    }{one(SICK, f"{{name: {SICK}-nas, wave: 1, lag_seconds: 7200, healthy: false}}")}
"""


@pytest.fixture(scope="module")
def estate(sandbox: Sandbox) -> Estate:
    parsed = parse_estate(estate_yaml(), "<managed ONTAP e2e estate>")
    summary = seed_estate(parsed, sandbox.url, orchestration_region=DR)
    sandbox.connect(summary.customers)
    return parsed


def workload(sandbox: Sandbox, customer: str, service: str, region: str) -> Any:
    access = AccountAccess(ACCOUNTS[customer], "dr-orchestrator-workload", f"dr-{customer}")
    return AwsClients(sandbox.settings).workload_client(service, region, access)


def snapmirror(sandbox: Sandbox, customer: str) -> dict[str, str]:
    """Destination path -> state, as the DR file system's ONTAP API reports them."""
    fsx = workload(sandbox, customer, "fsx", DR)
    [dr_fs] = fsx.describe_file_systems()["FileSystems"]
    return sandbox.app.ontap.state(dr_fs["FileSystemId"])


def global_roles(sandbox: Sandbox, customer: str) -> dict[str, str]:
    cache = workload(sandbox, customer, "elasticache", DR)
    [store] = cache.describe_global_replication_groups(ShowMemberInfo=True)[
        "GlobalReplicationGroups"
    ]
    return {m["ReplicationGroupId"]: m["Role"] for m in store["Members"]}


def test_given_ontap_when_failing_over_and_back_then_snapmirror_breaks_then_resyncs(
    sandbox: Sandbox, estate: Estate
) -> None:
    dst = {f"{ROUND}-nas-dr-svm:vol1_dst", f"{ROUND}-nas-dr-svm:vol2_dst"}
    assert snapmirror(sandbox, ROUND) == dict.fromkeys(dst, "snapmirrored")
    cache, cache_dr = f"{ROUND}-cache", f"{ROUND}-cache-dr"
    assert global_roles(sandbox, ROUND) == {cache: "PRIMARY", cache_dr: "SECONDARY"}

    code, failover = drctl_json(
        sandbox, "failover", "-c", ROUND, "-e", "staging", "--yes", "--wait"
    )

    assert code == 0, failover
    assert by_strategy(failover) == {"managed-service": {"RECOVERED"}}
    assert snapmirror(sandbox, ROUND) == dict.fromkeys(dst, "broken_off")
    assert global_roles(sandbox, ROUND) == {cache: "SECONDARY", cache_dr: "PRIMARY"}
    recovered_to = {r["resource_id"]: r["dr_resource_id"] for r in failover["resources"]}
    assert recovered_to[cache] == cache_dr, recovered_to

    code, failback = drctl_json(
        sandbox, "failback", "-c", ROUND, "-e", "staging", "--yes", "--no-reprotect", "--wait"
    )

    assert code == 0, failback
    assert by_strategy(failback) == {"managed-service": {"RECOVERED"}}
    assert snapmirror(sandbox, ROUND) == dict.fromkeys(dst, "snapmirrored")
    assert global_roles(sandbox, ROUND) == {cache: "PRIMARY", cache_dr: "SECONDARY"}


def test_given_ontap_drill_then_it_is_validated_and_nothing_breaks(
    sandbox: Sandbox, estate: Estate
) -> None:
    code, drill = drctl_json(sandbox, "drill", "-c", DRILL, "-e", "staging", "--wait")
    assert code == 0, drill
    assert by_strategy(drill) == {"managed-service": {"RECOVERED"}}
    assert snapmirror(sandbox, DRILL) == {f"{DRILL}-nas-dr-svm:vol1_dst": "snapmirrored"}


def test_given_unhealthy_snapmirror_when_failing_over_then_it_fails_clearly_and_breaks_nothing(
    sandbox: Sandbox, estate: Estate
) -> None:
    code, started = drctl_json(sandbox, "failover", "-c", SICK, "-e", "staging", "--yes")
    assert code == 0, started
    operation_id = started["operation_id"]
    table = boto3.resource("dynamodb", endpoint_url=sandbox.url, region_name=DR).Table(
        sandbox.settings.operations_table
    )

    def ended() -> bool:
        view = read_operation(table, operation_id)
        return view is not None and view.state in ("PAUSED", "FAILED", "COMPLETED")

    assert eventually(ended, timeout=60), f"{operation_id} did not stop"
    status: dict[str, Any]
    _, status = drctl_json(sandbox, "status", operation_id)
    assert status["state"] in ("PAUSED", "FAILED"), status
    [resource] = status["resources"]
    assert resource["state"] == "FAILED"
    assert "ONTAP_SNAPMIRROR_UNHEALTHY" in json.dumps(resource), resource
    assert snapmirror(sandbox, SICK) == {f"{SICK}-nas-dr-svm:vol1_dst": "snapmirrored"}
