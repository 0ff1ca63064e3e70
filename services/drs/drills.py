"""Bubble-test drills: launch settings for the bubble, their restoration, guaranteed teardown and
the janitor. Pure logic over the ports of `ports.py`.

Launch (`DrillLaunches.prepare`, per server, right before `StartRecovery(isDrill=True)`):
  DRS launches a drill with the source server's launch settings, the same ones a recovery uses.
  So for the drill's job, and only while it runs: the launch-into target (a production twin) is
  cleared, `copyPrivateIp` follows the bubble (a bubble subnet mirroring the production CIDR keeps
  the IP), and the server's EC2 launch template gets a new default version placing the instance
  in the bubble subnet with the drill security group and tagging it (and its volumes)
  `bubble-test:enabled=true`, `bubble-test:id=<operation>`, `bubble-test:timestamp=<start>`,
  `Customer`, `Environment`, `Name`. The template itself is tagged first with the version to
  restore (`bubble-test:restore-version`), so a crash never leaves a template that nothing knows
  how to restore. While the drill's job runs the server cannot join any other job (one job per
  server), so no recovery can launch from the drill's settings.
Restore (`DrillLaunches.restore`, when the drill's launch job is over): the previous default
  version and launch-into target come back and the template's bubble tags go.
Teardown (`Drills`, when the drill operation ends, or `drctl drill cleanup`, or the janitor):
  sweeps until nothing of the drill is left: every recovery instance its jobs launched, and every
  instance tagged `bubble-test:id=<operation>` (so a crash before anything was recorded is still
  cleaned), is terminated with `TerminateRecoveryInstances` (within the DRS quotas: the terminate
  jobs hold budget like launches), instances DRS no longer knows with EC2 `TerminateInstances`;
  templates still tagged for the drill are restored. Then `DrillTeardownCompleted`.
  `--keep` records the instances as kept (`DrillResourcesKept`) until a cleanup or the janitor.
Janitor (scheduled, hourly): any bubble-test resource older than `max_age` (8 h) in any
  registered customer's DR regions: drill instances by their tags (or, untagged, by their drill
  job's tags) get a teardown of their operation; templates are restored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from drcore import tags as T
from drcore.registry import CustomerEntry
from events.schemas import OperationType
from events.schemas.models import (
    Detail,
    DrillCleanupRequested,
    DrillResourcesKept,
    DrillTeardownCompleted,
    utc_now,
)
from events.schemas.names import TeardownTrigger

from .ports import (
    LAUNCHED,
    WAIT_CODES,
    AwsError,
    Budget,
    Checks,
    Log,
    Operations,
    Quotas,
    Registry,
    Results,
    Workload,
    Workloads,
    chunks,
    step,
)
from .readiness import in_scope
from .records import (
    Hold,
    LaunchBatch,
    LaunchContext,
    OperationRecords,
    OpJob,
    TeardownCheck,
    TeardownRecord,
    TeardownState,
)

LAUNCH_CONFIGURATION_FAILED = "LAUNCH_CONFIGURATION_FAILED"
# Teardown sweeps stop after this many (~4 h at the last backoff step).
MAX_SWEEPS = 240
GONE_STATES = frozenset({"terminated", "shutting-down"})


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def bubble_tags(operation_id: str, started: datetime) -> dict[str, str]:
    return {
        T.BUBBLE_ENABLED: "true",
        T.BUBBLE_ID: operation_id,
        T.BUBBLE_TIMESTAMP: iso(started),
    }


def bubble_template_data(context: LaunchContext, tags: Mapping[str, str]) -> dict[str, Any]:
    """The launch template data of a drill: the bubble subnet and security group, and tags."""
    tag_list = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    nic: dict[str, Any] = {
        "DeviceIndex": 0,
        "SubnetId": context.bubble_subnet,
        "AssociatePublicIpAddress": False,
        "DeleteOnTermination": True,
    }
    if context.bubble_groups:
        nic["Groups"] = list(context.bubble_groups)
    return {
        "NetworkInterfaces": [nic],
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tag_list},
            {"ResourceType": "volume", "Tags": tag_list},
        ],
    }


class DrillLaunches:
    """Switch a drill's servers to the bubble right before their job, and back after it."""

    def prepare(
        self, workload: Workload, batch: LaunchBatch, now: datetime
    ) -> tuple[dict[str, LaunchContext], list[tuple[str, str, str, bool]]]:
        contexts = {m.source_server_id: m.context for m in batch.members}
        failures: list[tuple[str, str, str, bool]] = []

        def fail(sid: str, message: str, error: AwsError | None = None) -> None:
            failures.append(
                (sid, LAUNCH_CONFIGURATION_FAILED, message, bool(error and error.retryable))
            )

        configs = {}
        for sid in contexts:
            try:
                configs[sid] = workload.launch_configuration(sid)
            except AwsError as error:
                fail(sid, f"launch settings of {sid} not readable: {error}", error)
        try:
            templates = {
                t.template_id: t
                for t in workload.templates(sorted({c.template_id or "" for c in configs.values()}))
            }
        except AwsError as error:
            for sid in configs:
                fail(sid, f"launch templates not readable: {error}", error)
            return contexts, failures
        tags = bubble_tags(batch.operation_id, batch.enqueued_at)
        plans: dict[str, tuple[str, int]] = {}
        for sid, config in configs.items():
            template = templates.get(config.template_id or "")
            if template is None:
                fail(sid, f"launch template {config.template_id} of {sid} not found")
                continue
            # A template an earlier drill left switched restores to what that drill recorded,
            # never to its bubble version.
            restore = int(template.tags.get(T.BUBBLE_RESTORE_VERSION) or template.default_version)
            plans[sid] = (template.template_id, restore)
        by_restore: dict[int, list[str]] = {}
        for template_id, restore in plans.values():
            by_restore.setdefault(restore, []).append(template_id)
        for restore, ids in sorted(by_restore.items()):
            try:  # first: what to restore, so that a crash leaves nothing unknown behind
                workload.tag_templates(
                    sorted(set(ids)), {**tags, T.BUBBLE_RESTORE_VERSION: str(restore)}
                )
            except AwsError as error:
                for sid, (template_id, _) in list(plans.items()):
                    if template_id in ids:
                        fail(sid, f"launch template {template_id} not tagged: {error}", error)
                        plans.pop(sid)
        for sid, (template_id, restore) in plans.items():
            context = contexts[sid]
            config = configs[sid]
            instance_tags = {
                **tags,
                T.CUSTOMER: batch.customer,
                T.ENVIRONMENT: batch.environment,
                T.NAME: context.name,
            }
            try:
                if config.launch_into or config.copy_private_ip != bool(context.copy_private_ip):
                    workload.set_launch(
                        sid, launch_into=None, copy_private_ip=bool(context.copy_private_ip)
                    )
                version = workload.bubble_template_version(
                    template_id,
                    bubble_template_data(context, instance_tags),
                    f"bubble-test {batch.operation_id}",
                )
                workload.set_default_template_version(template_id, version)
            except AwsError as error:
                fail(sid, f"drill launch settings of {sid}: {error}", error)
                continue
            contexts[sid] = context.model_copy(
                update={
                    "template_id": template_id,
                    "restore_version": restore,
                    "restore_launch_into": config.launch_into,
                }
            )
        return contexts, failures

    @staticmethod
    def restore(workload: Workload, contexts: Mapping[str, LaunchContext], log: Log) -> int:
        """Give the drilled servers their launch settings back (template default version,
        launch-into target, copyPrivateIp off); returns the templates restored."""
        done: list[str] = []
        for sid, context in contexts.items():
            if not context.template_id or context.restore_version is None:
                continue
            try:
                workload.set_default_template_version(context.template_id, context.restore_version)
                done.append(context.template_id)
                if context.restore_launch_into or context.copy_private_ip:
                    workload.set_launch(
                        sid, launch_into=context.restore_launch_into, copy_private_ip=False
                    )
            except AwsError as error:
                log.warning(
                    "Launch settings not restored (the teardown and the janitor retry)",
                    extra={"source_server": sid, "error": str(error)},
                )
        if done:
            try:
                workload.untag_templates(sorted(set(done)), list(T.BUBBLE_TAG_KEYS))
            except AwsError as error:
                log.warning("Template tags not removed", extra={"error": str(error)})
        return len(done)


def restore_templates(workload: Workload, operation_id: str | None, log: Log) -> int:
    """Templates still tagged by a drill (`operation_id`, or any when None): restored."""
    restored = 0
    for template in workload.tagged_templates(T.BUBBLE_ID):
        if operation_id is not None and template.tags.get(T.BUBBLE_ID) != operation_id:
            continue
        version = template.tags.get(T.BUBBLE_RESTORE_VERSION)
        try:
            if version:
                workload.set_default_template_version(template.template_id, int(version))
            workload.untag_templates([template.template_id], list(T.BUBBLE_TAG_KEYS))
            restored += 1
        except (AwsError, ValueError) as error:
            log.warning(
                "Template not restored",
                extra={"template": template.template_id, "error": str(error)},
            )
    return restored


class Drills:
    """Guaranteed teardown of drills, and the janitor."""

    def __init__(
        self,
        *,
        registry: Registry,
        workloads: Workloads,
        results: Results,
        checks: Checks,
        log: Log,
        budget: Budget,
        operations: Operations,
        quotas: Quotas,
        backoff: Sequence[int] = (5, 10, 20, 40, 60),
        max_age: timedelta = timedelta(hours=8),
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._registry = registry
        self._workloads = workloads
        self._results = results
        self._checks = checks
        self._log = log
        self._budget = budget
        self._ops = operations
        self._quotas = quotas
        self._backoff = tuple(backoff) or (60,)
        self._max_age = max_age
        self._now = now

    # -- triggers -------------------------------------------------------------------------------

    def on_drill_ended(self, operation_id: str, customer: str, environment: str) -> None:
        """The drill operation ended (completed, failed or cancelled): tear down, unless kept."""
        records = self._ops.load(operation_id)
        if records.teardown is not None:
            self._continue(records)
            return
        if records.options is not None and records.options.keep_drill_resources:
            kept = self._drill_instances(records, customer)
            expires = self._now() + self._max_age
            record = TeardownRecord(
                operation_id=operation_id,
                customer=customer,
                environment=environment,
                state=TeardownState.KEPT,
                trigger=TeardownTrigger.OPERATION_END,
                started_at=self._now(),
                kept=kept,
                expires_at=expires,
            )
            if self._ops.put_teardown(record, new=True):
                self._results.publish(
                    [
                        DrillResourcesKept(
                            operation_id=operation_id,
                            customer=customer,
                            environment=environment,
                            operation=OperationType.BUBBLE_TEST,
                            recovery_instance_ids=kept,
                            expires_at=expires,
                        )
                    ]
                )
            return
        self.teardown(operation_id, customer, environment, TeardownTrigger.OPERATION_END)

    def on_cleanup_requested(self, request: DrillCleanupRequested) -> None:
        records = self._ops.load(request.operation_id)
        options = records.options
        if request.operation != OperationType.BUBBLE_TEST or (
            options is not None and options.operation != OperationType.BUBBLE_TEST
        ):
            self._log.warning(
                "Cleanup requested for an operation that is not a drill: ignored",
                extra={"operation_id": request.operation_id},
            )
            return
        if options is not None and (options.customer, options.environment) != (
            request.customer,
            request.environment,
        ):
            self._log.error(
                "Cleanup request names another scope than the drill's: ignored",
                extra={"operation_id": request.operation_id},
            )
            return
        self.teardown(
            request.operation_id,
            request.customer,
            request.environment,
            TeardownTrigger.CLEANUP_REQUEST,
        )

    def teardown(
        self, operation_id: str, customer: str, environment: str, trigger: TeardownTrigger
    ) -> None:
        records = self._ops.load(operation_id)
        current = records.teardown
        if current is None or current.state != TeardownState.IN_PROGRESS:
            record = TeardownRecord(
                operation_id=operation_id,
                customer=customer,
                environment=environment,
                state=TeardownState.IN_PROGRESS,
                trigger=trigger,
                started_at=self._now(),
                terminated=list(current.terminated) if current else [],
            )
            if not self._ops.put_teardown(record, new=current is None):
                self._log.info("Teardown already started", extra={"operation_id": operation_id})
        self.sweep(operation_id, 0)

    def on_check(self, check: TeardownCheck) -> None:
        self.sweep(check.operation_id, check.attempt)

    def _continue(self, records: OperationRecords) -> None:
        teardown = records.teardown
        if teardown is not None and teardown.state == TeardownState.IN_PROGRESS:
            self.sweep(teardown.operation_id, 0)

    # -- the sweep ------------------------------------------------------------------------------

    def sweep(self, operation_id: str, attempt: int) -> None:
        """One pass over what is left of the drill; again later until nothing is."""
        records = self._ops.load(operation_id)
        record = records.teardown
        if record is None or record.state != TeardownState.IN_PROGRESS:
            return
        entry = self._registry.customer(record.customer)
        if entry is None:
            self._log.error("Teardown of an unknown customer", extra={"operation_id": operation_id})
            return
        pending = False
        terminated = set(record.terminated)
        terminate_jobs = list(record.terminate_jobs)
        restored = record.templates_restored
        regions = sorted(
            {j.region for j in records.jobs if j.account == entry.account}
            | set(entry.regions.values())
        )
        for region in regions:
            workload = self._workloads.get(entry, region)
            try:
                region_pending, gone, started, count = self._sweep_region(
                    workload, entry, region, record, records
                )
            except AwsError as error:
                self._log.warning(
                    "Teardown sweep failed; retried", extra={"region": region, "error": str(error)}
                )
                pending = True
                continue
            pending |= region_pending
            terminated |= set(gone)
            terminate_jobs += [j for j in started if j not in terminate_jobs]
            restored += count
        now = self._now()
        if pending and attempt < MAX_SWEEPS:
            self._ops.put_teardown(
                record.model_copy(
                    update={
                        "terminated": sorted(terminated),
                        "terminate_jobs": terminate_jobs,
                        "templates_restored": restored,
                        "sweeps": record.sweeps + 1,
                    }
                )
            )
            self._checks.schedule(
                [
                    (
                        TeardownCheck(operation_id=operation_id, attempt=attempt + 1),
                        step(self._backoff, attempt),
                    )
                ]
            )
            return
        if pending:
            self._log.error(
                "Teardown gave up; the janitor goes on", extra={"operation_id": operation_id}
            )
        done = record.model_copy(
            update={
                "state": TeardownState.COMPLETED,
                "completed_at": now,
                "terminated": sorted(terminated),
                "terminate_jobs": terminate_jobs,
                "templates_restored": restored,
                "sweeps": record.sweeps + 1,
            }
        )
        self._ops.put_teardown(done)
        self._results.publish([self._completed_event(done, now)])
        self._log.info(
            "Drill torn down",
            extra={"operation_id": operation_id, "terminated": len(terminated)},
        )

    def _sweep_region(
        self,
        workload: Workload,
        entry: CustomerEntry,
        region: str,
        record: TeardownRecord,
        records: OperationRecords,
    ) -> tuple[bool, list[str], list[str], int]:
        """(still pending, recovery instances gone, terminate jobs started, templates restored)."""
        account = entry.account
        ours = [j for j in records.jobs if j.account == account and j.region == region]
        jobs = {j.job_id: j for j in workload.jobs([j.job_id for j in ours])}
        pending = False
        candidates: set[str] = set()
        busy: set[str] = set()
        gone: list[str] = []
        for op_job in ours:
            job = jobs.get(op_job.job_id)
            if job is None:
                continue
            if op_job.kind == "launch":
                if not job.completed:
                    pending = True  # still launching: those instances are terminated next pass
                    continue
                candidates |= {
                    s.recovery_instance_id
                    for s in job.servers
                    if s.launch_status == LAUNCHED and s.recovery_instance_id
                }
            else:
                participants = {
                    s.recovery_instance_id for s in job.servers if s.recovery_instance_id
                }
                if job.completed:
                    if op_job.hold:
                        self._budget.release(account, region, op_job.hold, op_job.servers)
                    gone += [
                        s.recovery_instance_id or ""
                        for s in job.servers
                        if s.launch_status == "TERMINATED"
                    ]
                else:
                    busy |= participants
                    pending = True
        # Whatever carries the drill's tag, recorded or not (a crash before any record).
        tagged = {
            i.instance_id: i
            for i in workload.tagged_instances(T.BUBBLE_ID, record.operation_id)
            if i.state not in GONE_STATES and in_scope(i.tags, record.customer, record.environment)
        }
        candidates |= set(tagged)
        known = {
            r.recovery_instance_id: r
            for r in workload.recovery_instances(sorted(candidates), [])
            if r.is_drill
        }
        to_terminate = sorted(set(known) - busy)
        launching = any(
            j.kind == "launch" and (jobs.get(j.job_id) is None or not jobs[j.job_id].completed)
            for j in ours
        )
        ec2_known = {r.ec2_instance_id for r in known.values()}
        orphans = sorted(i for i in tagged if i not in known and i not in ec2_known)
        if orphans and not launching:
            # DRS does not know them (its record is gone): EC2 terminates them.
            workload.terminate_instances(orphans)
            gone += orphans
        started: list[str] = []
        if to_terminate:
            pending = True
            limits = self._quotas.limits(entry, region)
            for chunk in chunks(to_terminate, limits.servers_per_job):
                job_id = self._terminate(workload, entry, region, record, list(chunk), limits)
                if job_id is None:
                    break
                started.append(job_id)
        restored = restore_templates(workload, record.operation_id, self._log)
        return pending, gone, started, restored

    def _terminate(
        self,
        workload: Workload,
        entry: CustomerEntry,
        region: str,
        record: TeardownRecord,
        ids: list[str],
        limits: Any,
    ) -> str | None:
        """One TerminateRecoveryInstances job within the budget; None when it must wait."""
        now = self._now()
        digest = hashlib.sha256(f"{record.operation_id}|{','.join(ids)}".encode()).hexdigest()
        hold = Hold(hold_id="t" + digest[:23], servers=len(ids), created_at=now)
        if not self._budget.reserve(entry.account, region, hold, limits):
            return None
        try:
            job = workload.terminate_recovery_instances(ids)
        except AwsError as error:
            self._budget.release(entry.account, region, hold.hold_id, hold.servers)
            level = (
                self._log.info if error.code in WAIT_CODES or error.retryable else self._log.error
            )
            level("Termination postponed", extra={"error": str(error), "instances": len(ids)})
            return None
        self._budget.attach(entry.account, region, hold.hold_id, job.job_id)
        self._ops.record_job(
            record.operation_id,
            OpJob(
                job_id=job.job_id,
                account=entry.account,
                region=region,
                kind="terminate",
                hold=hold.hold_id,
                servers=len(ids),
                created_at=job.created_at or now,
            ),
        )
        return job.job_id

    def _drill_instances(self, records: OperationRecords, customer: str) -> list[str]:
        entry = self._registry.customer(customer)
        if entry is None:
            return []
        found: list[str] = []
        for (account, region), jobs in _by_place(records.launch_jobs()).items():
            if account != entry.account:
                continue
            try:
                described = self._workloads.get(entry, region).jobs([j.job_id for j in jobs])
            except AwsError:
                continue
            found += [
                s.recovery_instance_id
                for job in described
                for s in job.servers
                if s.launch_status == LAUNCHED and s.recovery_instance_id
            ]
        return sorted(found)

    def _completed_event(self, record: TeardownRecord, now: datetime) -> Detail:
        return DrillTeardownCompleted(
            operation_id=record.operation_id,
            customer=record.customer,
            environment=record.environment,
            operation=OperationType.BUBBLE_TEST,
            trigger=record.trigger,
            terminated=len(record.terminated),
            recovery_instance_ids=list(record.terminated),
            terminate_job_ids=list(record.terminate_jobs),
            templates_restored=record.templates_restored,
            started_at=record.started_at,
            completed_at=now,
            duration_seconds=max(0.0, (now - record.started_at).total_seconds()),
        )

    # -- the janitor ----------------------------------------------------------------------------

    def janitor(self, max_age_seconds: int | None = None) -> dict[str, int]:
        """Tear down any bubble-test drill whose resources are older than the age limit."""
        max_age = (
            timedelta(seconds=max_age_seconds) if max_age_seconds is not None else self._max_age
        )
        now = self._now()
        stale: dict[str, tuple[str, str]] = {}
        templates = 0
        places: dict[tuple[str, str], CustomerEntry] = {}
        for entry in self._registry.all():
            for region in sorted(set(entry.regions.values())):
                places.setdefault((entry.account, region), entry)
        for (account, region), entry in sorted(places.items()):
            workload = self._workloads.get(entry, region)
            try:
                stale.update(self._stale_drills(workload, account, now, max_age))
                templates += self._stale_templates(workload, now, max_age)
            except AwsError as error:
                self._log.warning(
                    "Janitor could not look at a region",
                    extra={"account": account, "region": region, "error": str(error)},
                )
        for operation_id, (customer, environment) in sorted(stale.items()):
            self._log.warning(
                "Janitor tears down a stale drill",
                extra={"operation_id": operation_id, "customer": customer},
            )
            self.teardown(operation_id, customer, environment, TeardownTrigger.JANITOR)
        summary = {"drills": len(stale), "templates_restored": templates}
        self._log.info("Janitor pass", extra=summary)
        return summary

    def _owned(self, account: str, customer: str | None) -> bool:
        entry = self._registry.customer(customer or "")
        return entry is not None and entry.account == account

    def _stale_drills(
        self, workload: Workload, account: str, now: datetime, max_age: timedelta
    ) -> dict[str, tuple[str, str]]:
        stale: dict[str, tuple[str, str]] = {}
        tagged = {
            i.instance_id: i
            for i in workload.tagged_instances(T.BUBBLE_ENABLED, "true")
            if i.state not in GONE_STATES
        }
        for instance in tagged.values():
            born = parse_iso(instance.tags.get(T.BUBBLE_TIMESTAMP)) or instance.launched_at
            operation_id = instance.tags.get(T.BUBBLE_ID)
            customer = instance.tags.get(T.CUSTOMER)
            environment = instance.tags.get(T.ENVIRONMENT)
            if born is None or now - born < max_age or not operation_id or not environment:
                continue
            if self._owned(account, customer):  # never another tenant's
                stale[operation_id] = (customer or "", environment)
        # Drill recovery instances without the tags (launched outside the bubble settings):
        # their job's tags say whose drill they are.
        untagged = [
            r
            for r in workload.all_recovery_instances()
            if r.is_drill and r.ec2_instance_id not in tagged and r.job_id
        ]
        jobs = {j.job_id: j for j in workload.jobs(sorted({r.job_id or "" for r in untagged}))}
        for recovered in untagged:
            job = jobs.get(recovered.job_id or "")
            if job is None or job.tags.get(T.JOB_OPERATION) != OperationType.BUBBLE_TEST.value:
                continue
            born = job.created_at or recovered.snapshot_at
            if born is None or now - born < max_age:
                continue
            customer = job.tags.get(T.JOB_CUSTOMER)
            if self._owned(account, customer):
                stale[job.tags[T.JOB_OPERATION_ID]] = (
                    customer or "",
                    job.tags.get(T.JOB_ENVIRONMENT, ""),
                )
        return stale

    def _stale_templates(self, workload: Workload, now: datetime, max_age: timedelta) -> int:
        restored = 0
        for template in workload.tagged_templates(T.BUBBLE_ID):
            born = parse_iso(template.tags.get(T.BUBBLE_TIMESTAMP))
            if born is None or now - born < max_age:
                continue
            version = template.tags.get(T.BUBBLE_RESTORE_VERSION)
            try:
                if version:
                    workload.set_default_template_version(template.template_id, int(version))
                workload.untag_templates([template.template_id], list(T.BUBBLE_TAG_KEYS))
                restored += 1
            except (AwsError, ValueError) as error:
                self._log.warning("Template not restored", extra={"error": str(error)})
        return restored


def _by_place(jobs: Iterable[OpJob]) -> dict[tuple[str, str], list[OpJob]]:
    out: dict[tuple[str, str], list[OpJob]] = {}
    for job in jobs:
        out.setdefault((job.account, job.region), []).append(job)
    return out
