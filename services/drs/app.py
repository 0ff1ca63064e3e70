"""What `drctl` asks the drs service without starting anything: readiness of a plan's DRS servers
(the rules a wave's part applies, `readiness.py`) and the drs side of an operation's status
(teardown, reverse replication). Read-only AWS calls through the service's own adapters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from drcore import tags as T
from drcore.aws import AwsClients
from drcore.plan import Plan, PlannedResource
from drcore.registry import CustomerEntry
from events.schemas import OperationType, Strategy

from . import readiness as R
from .adapters import BotoWorkloads, CachedRegistry, DynamoOperations
from .domain import index_source_servers
from .ports import AwsError, Instance, SourceServer, Workload, arn_region_and_id
from .records import OperationRecords, ProtectState


class ServerReadiness(BaseModel):
    model_config = ConfigDict(frozen=True)

    resource_id: str
    name: str
    wave: int
    ready: bool
    code: str | None = None
    message: str = ""
    retryable: bool = False
    warnings: list[str] = Field(default_factory=list)
    target: str | None = None  # the twin (failover) or original instance (failback)


def plan_readiness(
    plan: Plan, clients: AwsClients, *, force: bool = False
) -> list[ServerReadiness]:
    """One verdict per DRS resource of the plan, for the plan's operation."""
    resources = [r for w in plan.waves for r in w.resources if r.strategy == Strategy.DRS]
    if not resources:
        return []
    entry = CachedRegistry(clients.client("ssm")).customer(plan.customer)
    if entry is None:
        return [_unknown(r, f"customer {plan.customer!r} is not registered") for r in resources]
    workloads = BotoWorkloads(clients)
    out: list[ServerReadiness] = []
    groups: dict[str, list[PlannedResource]] = {}
    for resource in resources:
        groups.setdefault(resource.dr_region, []).append(resource)
    for region, group in sorted(groups.items()):
        dr = workloads.get(entry, region)
        try:
            if plan.operation == OperationType.FAILBACK:
                out += _failback(plan, entry, workloads, dr, group)
            elif plan.operation == OperationType.BUBBLE_TEST:
                out += _drill(plan, dr, group, force)
            else:
                out += _failover(plan, entry, workloads, dr, group, force)
        except AwsError as error:
            out += [_unknown(r, str(error)) for r in group]
    return sorted(out, key=lambda r: (r.wave, r.name))


def _unknown(resource: PlannedResource, why: str) -> ServerReadiness:
    return ServerReadiness(
        resource_id=resource.resource_id,
        name=resource.name,
        wave=resource.wave,
        ready=False,
        code="NOT_CHECKED",
        message=why,
        retryable=True,
    )


def _verdict(resource: PlannedResource, verdict: R.Verdict, *extra: str) -> ServerReadiness:
    return ServerReadiness(
        resource_id=resource.resource_id,
        name=resource.name,
        wave=resource.wave,
        ready=verdict.ok,
        code=verdict.code,
        message=verdict.message,
        retryable=verdict.retryable,
        warnings=[*verdict.warnings, *extra],
        target=verdict.target,
    )


def _server_verdict(
    plan: Plan,
    resource: PlannedResource,
    server: SourceServer | None,
    force: bool,
    drill: bool = False,
) -> R.Verdict | None:
    if server is None:
        return R.stop(R.NO_SOURCE_SERVER, f"no DRS source server replicates {resource.resource_id}")
    problem = R.scope_problem(
        f"source server {server.source_server_id}", server.tags, plan.customer, plan.environment
    )
    if problem:
        return problem
    verdict = R.job_in_progress(server) or R.replication(
        server, resource.rpo_target_minutes, force=force, drill=drill
    )
    return verdict if not verdict.ok else None


def _failover(
    plan: Plan,
    entry: CustomerEntry,
    workloads: BotoWorkloads,
    dr: Workload,
    resources: Sequence[PlannedResource],
    force: bool,
) -> list[ServerReadiness]:
    servers = index_source_servers(dr.source_servers())
    names = sorted({r.name for r in resources})
    twins: dict[str, list[Instance]] = {}
    for instance in dr.twins(plan.customer, plan.environment, names):
        if R.in_scope(instance.tags, plan.customer, plan.environment):
            twins.setdefault(instance.tags.get(T.NAME, ""), []).append(instance)
    primaries: dict[str, Instance] = {}
    for region in sorted({r.region for r in resources}):
        try:
            found = workloads.get(entry, region).instances([r.resource_id for r in resources])
            primaries.update({i.instance_id: i for i in found})
        except AwsError:
            pass  # the primary region may be down: boot mode unverified
    out = []
    for resource in resources:
        server = servers.get(resource.resource_id)
        stopped = _server_verdict(plan, resource, server, force)
        if stopped is not None or server is None:
            out.append(_verdict(resource, stopped or R.stop(R.NO_SOURCE_SERVER, "")))
            continue
        repl = R.replication(server, resource.rpo_target_minutes, force=force)
        verdict = R.twin(
            server,
            resource.private_ip or server.primary_ip,
            twins.get(resource.name, []),
            primaries.get(resource.resource_id),
        )
        out.append(_verdict(resource, verdict, *repl.warnings))
    return out


def _drill(
    plan: Plan, dr: Workload, resources: Sequence[PlannedResource], force: bool
) -> list[ServerReadiness]:
    bubble = dr.bubble_network(T.bubble_network_name(plan.customer, plan.environment))
    if bubble.problem:
        verdict = R.stop(bubble.problem, bubble.reason)
        return [_verdict(r, verdict) for r in resources]
    servers = index_source_servers(dr.source_servers())
    out = []
    for resource in resources:
        server = servers.get(resource.resource_id)
        stopped = _server_verdict(plan, resource, server, force, drill=True)
        if stopped is not None or server is None:
            out.append(_verdict(resource, stopped or R.stop(R.NO_SOURCE_SERVER, "")))
            continue
        repl = R.replication(server, resource.rpo_target_minutes, force=force, drill=True)
        subnet, keeps = bubble.placement(resource.private_ip or server.primary_ip)
        note = f"bubble subnet {subnet.subnet_id}" + ("" if keeps else " (IP not kept)")
        out.append(_verdict(resource, R.Verdict(target=subnet.subnet_id), *repl.warnings, note))
    return out


def _failback(
    plan: Plan,
    entry: CustomerEntry,
    workloads: BotoWorkloads,
    dr: Workload,
    resources: Sequence[PlannedResource],
) -> list[ServerReadiness]:
    servers = index_source_servers(dr.source_servers())
    out = []
    for region in sorted({r.region for r in resources}):
        group = [r for r in resources if r.region == region]
        primary = workloads.get(entry, region)
        reversed_ids: dict[str, str] = {}
        for resource in group:
            server = servers.get(resource.resource_id)
            located = (
                arn_region_and_id(server.reversed_arn) if server and server.reversed_arn else None
            )
            if located and located[0] == region:
                reversed_ids[resource.resource_id] = located[1]
        reversed_servers = {
            s.source_server_id: s
            for s in primary.source_servers_by_id(sorted(set(reversed_ids.values())))
        }
        targets = {i.instance_id: i for i in primary.instances([r.resource_id for r in group])}
        for resource in group:
            server = servers.get(resource.resource_id)
            verdict = R.failback(
                plan.customer,
                plan.environment,
                server,
                reversed_servers.get(reversed_ids.get(resource.resource_id, "")),
                targets.get(resource.resource_id),
                resource.private_ip or (server.primary_ip if server else None),
                resource.resource_id,
            )
            out.append(_verdict(resource, verdict))
    return out


# --- status ---------------------------------------------------------------------------------------


def operation_records(clients: AwsClients, table: str, operation_id: str) -> OperationRecords:
    return DynamoOperations(clients.client("dynamodb"), table).load(operation_id)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def status_of(records: OperationRecords) -> dict[str, Any]:
    """The drs side of an operation, for `drctl status` and `drctl drill status` (JSON-ready)."""
    out: dict[str, Any] = {}
    if records.jobs:
        out["jobs"] = {
            "launch": len(records.launch_jobs()),
            "terminate": len(records.terminate_jobs()),
        }
    if records.options is not None:
        options = records.options
        out["options"] = {
            "keep_drill_resources": options.keep_drill_resources,
            "reprotect": options.reprotect,
            "allow_data_loss": options.allow_data_loss,
        }
    teardown = records.teardown
    if teardown is not None:
        out["teardown"] = {
            "state": teardown.state.value,
            "trigger": teardown.trigger.value,
            "terminated": len(teardown.terminated),
            "recovery_instance_ids": teardown.terminated or teardown.kept,
            "kept": len(teardown.kept),
            "terminate_jobs": teardown.terminate_jobs,
            "templates_restored": teardown.templates_restored,
            "started_at": _time(teardown.started_at),
            "completed_at": _time(teardown.completed_at),
            "expires_at": _time(teardown.expires_at),
        }
    protect = records.reprotect
    if protect is not None:
        by_state: dict[str, int] = {}
        for server in protect.servers:
            by_state[server.state] = by_state.get(server.state, 0) + 1
        out["reprotect"] = {
            "state": protect.state.value,
            "target_region": protect.target_region,
            "servers": len(protect.servers),
            "continuous": len(protect.continuous),
            "by_state": dict(sorted(by_state.items())),
            "failures": [f.model_dump() for f in protect.failures],
            "started_at": _time(protect.started_at),
            "completed_at": _time(protect.completed_at),
            "ready_for_next_step": protect.state == ProtectState.COMPLETED and not protect.failures,
        }
    return out
