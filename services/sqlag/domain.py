"""The sqlag domain: one availability group per resource, for failover, failback and drills.

Per resource (the AG's primary replica instance, `ec2:instance`): re-read its tags and check its
scope, then readiness, act, validate, and return exactly one `ResourceRecovered` or
`ResourceRecoveryFailed`. Every SQL Server step is a script run through SSM Run Command
(`commands.py`). Actions (failover, resume, clone drill) are tagged with a comment unique to the
operation, resource, step and attempt: before sending one, the instance's recent commands are
searched for it, so a redelivered or re-checked resource waits for the earlier command instead of
acting twice. The scripts themselves do nothing when the work is already done (already primary).

No AWS here: the ports in `ports.py` are implemented in `adapters.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict

from drcore import tags as T
from drcore.registry import CustomerEntry
from events.schemas import (
    Detail,
    OperationType,
    ResourceRecovered,
    ResourceRecoveryFailed,
    ResourceRef,
    Strategy,
)
from events.schemas.models import utc_now

from . import config as C
from . import readiness as R
from .commands import (
    CLONE_DRILL,
    FAILOVER,
    RESUME,
    STATUS,
    AgStatus,
    CloneOutput,
    FailoverOutput,
    ResumeOutput,
    Script,
    ScriptOutput,
    ScriptOutputError,
    ScriptParameterError,
    build_commands,
    parse_output,
)
from .ports import AwsError, Instance, Invocation, Log, Options, Registry, Workload, Workloads

OutputT = TypeVar("OutputT", bound=ScriptOutput)
LISTENER_TTL = 60
# Earlier commands of the same step are looked for this far back from the part's time.
COMMAND_LOOKBACK = timedelta(hours=6)
EC2_INSTANCE = "ec2:instance"  # Resource Explorer type of the primary replica
EC2_INSTANCE_ARN = ":instance/"
MESSAGE_CHARS = 900


class Task(BaseModel):
    """One resource of a `WaveStarted` part or of a `ResourceCheckRequested` (idempotency key:
    operation, resource, step and attempt)."""

    model_config = ConfigDict(frozen=True)

    operation_id: str
    customer: str
    environment: str
    operation: OperationType
    wave: int
    attempt: int
    step: str
    resource: ResourceRef
    occurred_at: AwareDatetime

    @property
    def resource_id(self) -> str:
        return self.resource.resource_id


class Refused(Exception):
    """The resource ends failed with this reason code."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message[:MESSAGE_CHARS]
        self.retryable = retryable


@dataclass
class _Ctx:
    task: Task
    entry: CustomerEntry
    config: C.SqlAgConfig
    dr: Workload
    dr_replica: Instance
    primary: Instance | None
    started_at: datetime
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Tuning:
    command_timeout_seconds: int = 600
    # Failback: how long the original primary may take to be SYNCHRONIZED again, and the pause
    # between two status reads while waiting.
    sync_wait_seconds: float = 120.0
    sync_poll_seconds: float = 2.0


def result_detail(data: Mapping[str, Any]) -> Detail:
    """The event a stored result describes (see `SqlAgRecovery.recover`)."""
    if data["kind"] == "recovered":
        return ResourceRecovered.model_validate(data["detail"])
    return ResourceRecoveryFailed.model_validate(data["detail"])


class SqlAgRecovery:
    def __init__(
        self,
        *,
        registry: Registry,
        workloads: Workloads,
        options: Options,
        log: Log,
        tuning: Tuning | None = None,
        now: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._registry = registry
        self._workloads = workloads
        self._options = options
        self._log = log
        self._tuning = tuning or Tuning()
        self._now = now
        self._sleep = sleep or (lambda seconds: None)

    # -- one resource ---------------------------------------------------------------------------

    def recover(self, task: Task) -> dict[str, Any]:
        """Readiness, action, validation for one resource. Returns the result event as data
        (`{"kind": "recovered" | "failed", "detail": {...}}`), which the idempotency layer
        stores: a repeated task gets the same result back and publishes it again."""
        started = self._now()
        details: dict[str, str] = {}
        try:
            ctx = self._context(task, started, details)
            if task.operation == OperationType.FAILOVER:
                target = self._failover(ctx)
            elif task.operation == OperationType.FAILBACK:
                target = self._failback(ctx)
            else:
                target = self._drill(ctx)
        except Refused as refused:
            return self._failed(task, started, refused, details)
        except AwsError as error:
            return self._failed(
                task, started, Refused(error.code, str(error), retryable=error.retryable), details
            )
        event = ResourceRecovered(
            operation_id=task.operation_id,
            customer=task.customer,
            environment=task.environment,
            operation=task.operation,
            resource_id=task.resource_id,
            wave=task.wave,
            strategy=Strategy.SQL_AG,
            step=task.step,
            dr_resource_id=target.instance_id,
            dr_private_ip=target.private_ip,
            dr_region=target.region,
            started_at=started,
            completed_at=self._now(),
            details=details,
        )
        return {"kind": "recovered", "detail": event.model_dump(mode="json")}

    def _failed(
        self, task: Task, started: datetime, refused: Refused, details: dict[str, str]
    ) -> dict[str, Any]:
        self._log.warning(
            "AG not recovered",
            extra={"resource_id": task.resource_id, "code": refused.code, "details": details},
        )
        event = ResourceRecoveryFailed(
            operation_id=task.operation_id,
            customer=task.customer,
            environment=task.environment,
            operation=task.operation,
            resource_id=task.resource_id,
            wave=task.wave,
            strategy=Strategy.SQL_AG,
            step=task.step,
            error_code=refused.code,
            error=refused.message,
            retryable=refused.retryable,
            started_at=started,
            failed_at=self._now(),
        )
        return {"kind": "failed", "detail": event.model_dump(mode="json")}

    # -- scope, configuration, instances ---------------------------------------------------------

    def _context(self, task: Task, started: datetime, details: dict[str, str]) -> _Ctx:
        ref = task.resource
        if ref.resource_type != EC2_INSTANCE or EC2_INSTANCE_ARN not in ref.arn:
            raise Refused(
                R.UNSUPPORTED_RESOURCE_TYPE,
                f"{ref.arn} ({ref.resource_type}) is not an EC2 instance: sql-ag resources are "
                "the AG's primary replica instance",
            )
        entry = self._registry.customer(task.customer)
        if entry is None:
            raise Refused(R.UNKNOWN_CUSTOMER, f"customer {task.customer!r} is not in the registry")
        if ref.account != entry.account:
            raise Refused(
                R.SCOPE_MISMATCH,
                f"account {ref.account} is not {task.customer}'s account {entry.account}",
            )
        dr = self._workloads.get(entry, ref.dr_region)
        primary: Instance | None = None
        try:
            primary = self._workloads.get(entry, ref.region, primary=True).instance(ref.resource_id)
        except AwsError as error:
            if task.operation == OperationType.FAILBACK:
                raise
            details["primary_region"] = f"unreachable ({error.code})"
        if primary is not None:
            self._in_scope(task, primary, "primary replica")
            if primary.tags.get(T.STRATEGY) != Strategy.SQL_AG.value:
                raise Refused(
                    R.SCOPE_MISMATCH,
                    f"{primary.instance_id} is tagged {T.STRATEGY}="
                    f"{primary.tags.get(T.STRATEGY)!r}, not {Strategy.SQL_AG.value}",
                )
            parsed = C.parse_config(dict(primary.tags))
            if isinstance(parsed, list):
                raise Refused(parsed[0].code, C.describe(parsed))
            config = parsed
            replica = self._one(
                dr, task, config.dr_replica, R.DR_REPLICA_NOT_FOUND, "DR replica", ref.dr_region
            )
            details["config_source"] = "primary replica tags"
        elif "primary_region" in details:
            # The primary region does not answer: the DR replica's own tags name the AG.
            found = dr.instances_tagged(
                task.customer, task.environment, {C.PRIMARY_REPLICA: ref.name}
            )
            replica = self._single(found, task, R.DR_REPLICA_NOT_FOUND, "DR replica", ref.name)
            parsed = C.parse_config(dict(replica.tags), dr_replica=replica.instance_id)
            if isinstance(parsed, list):
                raise Refused(parsed[0].code, C.describe(parsed))
            config = parsed
            details["config_source"] = "DR replica tags (primary region unreachable)"
        else:
            raise Refused(
                R.PRIMARY_NOT_FOUND, f"instance {ref.resource_id} not found in {ref.region}"
            )
        details |= {
            "ag_name": config.ag_name,
            "dr_replica": replica.instance_id,
            "dr_replica_name": replica.name,
        }
        if task.operation != OperationType.BUBBLE_TEST and config.listener is None:
            raise Refused(
                C.MISSING_MODULE_TAG,
                f"{C.LISTENER} and {C.HOSTED_ZONE} are needed to move clients on "
                f"{task.operation.value}",
            )
        return _Ctx(task, entry, config, dr, replica, primary, started, details)

    def _in_scope(self, task: Task, instance: Instance, what: str) -> None:
        customer = instance.tags.get(T.CUSTOMER)
        environment = instance.tags.get(T.ENVIRONMENT)
        if customer != task.customer or environment != task.environment:
            raise Refused(
                R.SCOPE_MISMATCH,
                f"{what} {instance.instance_id} is tagged {T.CUSTOMER}={customer!r} "
                f"{T.ENVIRONMENT}={environment!r}, outside {task.customer}/{task.environment}",
            )

    def _one(
        self,
        workload: Workload,
        task: Task,
        ref: C.InstanceRef,
        missing: str,
        what: str,
        region: str,
    ) -> Instance:
        if ref.is_id:
            instance = workload.instance(ref.value)
            found = [instance] if instance is not None else []
        else:
            found = workload.instances_tagged(task.customer, task.environment, {T.NAME: ref.value})
        return self._single(found, task, missing, what, f"{ref.value} in {region}")

    def _single(
        self, found: list[Instance], task: Task, missing: str, what: str, label: str
    ) -> Instance:
        live = [i for i in found if i.state not in ("terminated", "shutting-down")]
        if not live:
            raise Refused(missing, f"no {what} {label} in {task.customer}/{task.environment}")
        if len(live) > 1:
            ids = ", ".join(sorted(i.instance_id for i in live))
            raise Refused(R.DR_REPLICA_AMBIGUOUS, f"{what} {label} matches {ids}")
        instance = live[0]
        self._in_scope(task, instance, what)
        if instance.state != "running":
            raise Refused(
                R.INSTANCE_NOT_RUNNING,
                f"{what} {instance.instance_id} is {instance.state}: SSM cannot run commands",
                retryable=True,
            )
        return instance

    # -- failover -------------------------------------------------------------------------------

    def _failover(self, ctx: _Ctx) -> Instance:
        status = self._status(ctx, ctx.dr, ctx.dr_replica, "readiness")
        local = status.local
        self._record_sync(ctx, "before", status)
        if local is not None and local.role == "PRIMARY":
            ctx.details["action"] = "none (the DR replica is already the primary replica)"
        else:
            decision = R.assess_failover(status, allow_data_loss=False)
            if decision.code == R.NOT_SYNCHRONIZED:  # what did the operator allow?
                allow = self._options.allow_data_loss(ctx.task.operation_id)
                decision = R.assess_failover(status, allow_data_loss=allow)
            if decision.mode is None:
                raise Refused(decision.code or R.NOT_SYNCHRONIZED, decision.message)
            if decision.mode == R.FORCED:
                self._data_loss(ctx, status)
            else:
                ctx.details["estimated_data_loss_seconds"] = "0"
            out = self._action(
                ctx,
                ctx.dr,
                ctx.dr_replica,
                FAILOVER,
                "failover",
                FailoverOutput,
                Mode=decision.mode,
            )
            ctx.details["action"] = out.action
            ctx.details["failover_mode"] = decision.mode.lower()
        after = self._status(ctx, ctx.dr, ctx.dr_replica, "validate")
        self._require_primary(after, ctx.dr_replica)
        self._move_listener(ctx, ctx.dr_replica)
        return ctx.dr_replica

    def _data_loss(self, ctx: _Ctx, dr_status: AgStatus) -> None:
        primary_status: AgStatus | None = None
        if ctx.primary is not None:
            try:
                workload = self._workloads.get(ctx.entry, ctx.task.resource.region, primary=True)
                primary_status = self._status(ctx, workload, ctx.primary, "primary-status")
            except (Refused, AwsError) as error:
                ctx.details["primary_status"] = f"unavailable: {str(error)[:200]}"
        loss = R.estimate_data_loss(dr_status, primary_status)
        hardened = R.oldest([d.last_hardened_time for d in dr_status.local_databases])
        committed = R.oldest([d.last_commit_time for d in dr_status.local_databases])
        ctx.details["dr_last_hardened_time"] = hardened or "unknown"
        ctx.details["dr_last_commit_time"] = committed or "unknown"
        if loss is None:
            ctx.details["estimated_data_loss_seconds"] = "unknown (primary replica unreachable)"
        else:
            ctx.details["estimated_data_loss_seconds"] = f"{loss:.0f}"
            rpo = ctx.task.resource.rpo_target_minutes * 60
            if loss > rpo:
                ctx.details["rpo_exceeded"] = f"{loss:.0f} s > {rpo} s"

    # -- failback -------------------------------------------------------------------------------

    def _failback(self, ctx: _Ctx) -> Instance:
        primary = ctx.primary
        if primary is None:  # _context reads it for failback or fails
            raise Refused(R.PRIMARY_NOT_FOUND, f"{ctx.task.resource_id} not found")
        if primary.state != "running":
            raise Refused(
                R.INSTANCE_NOT_RUNNING,
                f"primary replica {primary.instance_id} is {primary.state}",
                retryable=True,
            )
        home = self._workloads.get(ctx.entry, ctx.task.resource.region, primary=False)
        status = self._status(ctx, home, primary, "readiness")
        self._record_sync(ctx, "before", status)
        local = status.local
        if local is None or not status.ag_found:
            raise Refused(R.AG_NOT_FOUND, f"{ctx.config.ag_name} has no replica on {status.server}")
        if local.role == "PRIMARY":
            ctx.details["action"] = "none (the original primary is already the primary replica)"
        else:
            if any(d.is_suspended for d in status.local_databases):
                resumed = self._action(ctx, home, primary, RESUME, "resume", ResumeOutput)
                ctx.details["resumed_databases"] = ",".join(resumed.resumed) or "none"
            status = self._wait_synchronized(ctx, home, primary, status)
            out = self._action(
                ctx, home, primary, FAILOVER, "failback", FailoverOutput, Mode=R.PLANNED
            )
            ctx.details["action"] = out.action
        after = self._status(ctx, home, primary, "validate")
        self._require_primary(after, primary)
        self._verify_dr_sync(ctx)
        self._move_listener(ctx, primary)
        return primary

    def _wait_synchronized(
        self, ctx: _Ctx, workload: Workload, instance: Instance, status: AgStatus
    ) -> AgStatus:
        waited = 0.0
        while True:
            decision = R.assess_failover(status, allow_data_loss=False)
            if decision.mode == R.PLANNED:
                return status
            if waited >= self._tuning.sync_wait_seconds:
                raise Refused(
                    R.PRIMARY_REPLICA_NOT_READY,
                    f"after {waited:.0f} s the original primary is not ready for a planned "
                    f"failback: {decision.message}",
                    retryable=True,
                )
            self._sleep(self._tuning.sync_poll_seconds)
            waited += self._tuning.sync_poll_seconds
            status = self._status(ctx, workload, instance, "catch-up")

    def _verify_dr_sync(self, ctx: _Ctx) -> None:
        """After failback the DR replica is a secondary again and its databases move data."""
        waited = 0.0
        while True:
            status = self._status(ctx, ctx.dr, ctx.dr_replica, "dr-sync")
            local = status.local
            states = {d.name: d.sync_state for d in status.local_databases}
            moving = bool(states) and all(
                s in (R.SYNCHRONIZED, R.SYNCHRONIZING) for s in states.values()
            )
            if local is not None and local.role == "SECONDARY" and moving:
                ctx.details["dr_replica_sync_after"] = ",".join(
                    f"{k}={v}" for k, v in sorted(states.items())
                )
                return
            if waited >= self._tuning.sync_wait_seconds:
                raise Refused(
                    R.SYNC_NOT_RESUMED,
                    f"the DR replica {ctx.dr_replica.instance_id} is "
                    f"{local.role if local else 'not in the group'} with {states}",
                    retryable=True,
                )
            self._sleep(self._tuning.sync_poll_seconds)
            waited += self._tuning.sync_poll_seconds

    # -- drill ----------------------------------------------------------------------------------

    def _drill(self, ctx: _Ctx) -> Instance:
        if ctx.config.clone is None:
            raise Refused(
                R.NO_CLONE_CONFIGURED,
                f"{C.CLONE} is not set on {ctx.task.resource_id}: a drill runs on a clone "
                "and never touches the production availability group",
            )
        try:
            clone = self._one(
                ctx.dr, ctx.task, ctx.config.clone, R.CLONE_NOT_FOUND, "clone", ctx.dr.region
            )
        except Refused as refused:
            if refused.code == R.DR_REPLICA_AMBIGUOUS:
                raise Refused(R.CLONE_NOT_FOUND, refused.message) from None
            raise
        production = {ctx.dr_replica.instance_id, ctx.task.resource_id}
        if clone.instance_id in production:
            raise Refused(
                R.CLONE_NOT_ISOLATED, f"{C.CLONE} names a production replica ({clone.instance_id})"
            )
        bubble = T.bubble_network_name(ctx.task.customer, ctx.task.environment)
        vpc = ctx.dr.vpc_name(clone.vpc_id) if clone.vpc_id else None
        if vpc != bubble:
            raise Refused(
                R.CLONE_NOT_ISOLATED,
                f"clone {clone.instance_id} is in VPC {clone.vpc_id} ({vpc!r}), not in the "
                f"bubble-test network {bubble!r}",
            )
        # The DR replica is only read: its sync state and lag are part of the drill's report.
        try:
            status = self._status(ctx, ctx.dr, ctx.dr_replica, "readiness")
            self._record_sync(ctx, "dr_replica", status)
            would = R.assess_failover(status, allow_data_loss=False)
            ctx.details["dr_replica_failover_ready"] = (
                "planned" if would.mode == R.PLANNED else f"no ({would.code})"
            )
        except Refused as refused:
            ctx.details["dr_replica_status"] = f"unavailable: {refused.message[:200]}"
        out = self._action(ctx, ctx.dr, clone, CLONE_DRILL, "clone-drill", CloneOutput)
        ctx.details |= {
            "clone": clone.instance_id,
            "clone_action": out.action,
            "clone_databases": ",".join(f"{d.name}={d.database_state}" for d in out.databases),
            "production_ag_touched": "no",
        }
        newest = [d.last_commit_time for d in out.databases]
        commits = [t for t in (R.parse_time(v) for v in newest) if t is not None]
        if commits:
            age = (ctx.started_at - max(commits)).total_seconds()
            ctx.details["clone_data_age_seconds"] = f"{max(age, 0.0):.0f}"
        return clone

    # -- steps ----------------------------------------------------------------------------------

    def _record_sync(self, ctx: _Ctx, label: str, status: AgStatus) -> None:
        local = status.local
        ctx.details[f"{label}_role"] = (local.role or "UNKNOWN") if local else "NOT_A_REPLICA"
        ctx.details[f"{label}_sync"] = ",".join(
            f"{d.name}={d.sync_state}" for d in sorted(status.local_databases, key=lambda d: d.name)
        )

    def _require_primary(self, status: AgStatus, instance: Instance) -> None:
        local = status.local
        offline = [
            d.name for d in status.local_databases if d.database_state not in (None, "ONLINE")
        ]
        if local is None or local.role != "PRIMARY" or offline:
            raise Refused(
                R.FAILOVER_NOT_VERIFIED,
                f"{instance.instance_id} is {local.role if local else 'not a replica'} "
                f"after failover; databases not online: {offline or 'none'}",
                retryable=True,
            )

    def _move_listener(self, ctx: _Ctx, target: Instance) -> None:
        config = ctx.config
        zone, name = config.zone_id, config.listener
        if zone is None or name is None:
            return
        if not target.private_ip:
            raise Refused(R.DNS_UPDATE_FAILED, f"{target.instance_id} has no private IP")
        dns = self._workloads.dns(ctx.entry)
        try:
            current = dns.a_record(zone, name)
            ctx.details["listener"] = name
            ctx.details["listener_before"] = ",".join(current.values) if current else "none"
            if current is None or current.values != (target.private_ip,):
                change = dns.upsert_a(
                    zone,
                    name,
                    [target.private_ip],
                    current.ttl if current else LISTENER_TTL,
                    f"dr-orchestrator {ctx.task.operation.value} {ctx.task.operation_id}"[:256],
                )
                dns.wait_in_sync(change)
            after = dns.a_record(zone, name)
        except AwsError as error:
            raise Refused(
                R.DNS_UPDATE_FAILED,
                f"the AG is on {target.instance_id} but {name} was not updated: {error}",
                retryable=error.retryable,
            ) from None
        answer = ",".join(after.values) if after else "none"
        ctx.details["dns_answer"] = answer
        if after is None or after.values != (target.private_ip,):
            raise Refused(
                R.DNS_NOT_VERIFIED,
                f"{name} answers {answer} after the update, not {target.private_ip}",
                retryable=True,
            )

    def _status(self, ctx: _Ctx, workload: Workload, instance: Instance, step: str) -> AgStatus:
        invocation = self._run(ctx, workload, instance, STATUS, step, adopt=False)
        status = self._parse(AgStatus, invocation, STATUS)
        if not status.ag_found:
            raise Refused(
                R.AG_NOT_FOUND,
                f"availability group {ctx.config.ag_name} has no replica on "
                f"{instance.instance_id} ({status.server})",
            )
        return status

    def _action(
        self,
        ctx: _Ctx,
        workload: Workload,
        instance: Instance,
        script: Script,
        step: str,
        model: type[OutputT],
        **params: str,
    ) -> OutputT:
        invocation = self._run(ctx, workload, instance, script, step, adopt=True, **params)
        output = self._parse(model, invocation, script)
        ctx.details[f"command_{step}"] = invocation.command_id
        return output

    def _parse(self, model: type[OutputT], invocation: Invocation, script: Script) -> OutputT:
        try:
            output = parse_output(model, invocation.stdout)
        except ScriptOutputError as error:
            if invocation.succeeded:
                raise Refused(R.BAD_SCRIPT_OUTPUT, f"{script.name}: {error}") from None
            raise Refused(
                R.COMMAND_FAILED,
                f"{script.name} on {invocation.instance_id} ended {invocation.status} "
                f"({invocation.status_details}): {invocation.stderr.strip()[:400] or 'no error'}",
                retryable=invocation.status in ("TimedOut", "Cancelled"),
            ) from None
        if not output.ok:
            raise Refused(
                output.error_code or R.COMMAND_FAILED,
                f"{script.name} on {invocation.instance_id}: {output.message or 'refused'}",
            )
        return output

    def _run(
        self,
        ctx: _Ctx,
        workload: Workload,
        instance: Instance,
        script: Script,
        step: str,
        *,
        adopt: bool,
        **params: str,
    ) -> Invocation:
        task = ctx.task
        try:
            commands = build_commands(script, AgName=ctx.config.ag_name, **params)
        except ScriptParameterError as error:
            raise Refused(C.INVALID_MODULE_TAG, str(error)) from None
        comment = command_comment(task, step)
        earlier = (
            workload.find_command(
                instance.instance_id, comment, task.occurred_at - COMMAND_LOOKBACK
            )
            if adopt
            else None
        )
        if earlier is not None:
            self._log.info(
                "Waiting for the earlier command of this step",
                extra={"resource_id": task.resource_id, "command_id": earlier.command_id},
            )
            command_id = earlier.command_id
        else:
            command_id = workload.send_command(
                instance.instance_id, commands, comment, self._tuning.command_timeout_seconds
            )
        return workload.wait_command(command_id, instance.instance_id)


def command_comment(task: Task, step: str) -> str:
    """SendCommand's Comment (<= 100 chars): the step and a digest of operation, resource and
    attempt, so that an earlier command of the same step is found again."""
    digest = hashlib.sha256(
        f"{task.operation_id}|{task.resource_id}|{task.attempt}|{step}".encode()
    ).hexdigest()[:20]
    return f"dr-orchestrator sqlag {step} {task.operation_id[:40]} {digest}"
