"""Re-protection: reverse replication for what an operation recovered. Pure logic over the ports.

When a failover ends (completed, or failed / cancelled after some waves: what runs in the DR
region is protected either way), every recovery instance it launched gets `ReverseReplication`:
DRS replicates it back to the primary region through a reversed source server there, which is
what a failback launches from. When a failback ends, every original instance it launched into
gets `ReverseReplication` too: replication from the primary to the DR region is restored (the
original DR source server again), so the next failover works; the DR twins the servers ran on
are stopped (standby again, as before the failover).

Progress (per server: the reversed source server's replication state and lag) is stored on the
operation (`REPROTECT`, shown by `drctl status`) and read again on backoff until every server is
CONTINUOUS (`ReprotectCompleted`), or the checks give up (TIMED_OUT, the servers named).
`--no-reprotect` records SKIPPED and reverses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from events.schemas import OperationType
from events.schemas.models import (
    Detail,
    ReprotectCompleted,
    ReprotectFailure,
    ReprotectStarted,
    utc_now,
)

from .ports import (
    LAUNCHED,
    AwsError,
    Checks,
    Ledger,
    Log,
    Operations,
    Registry,
    Results,
    Workloads,
    arn_region_and_id,
    step,
)
from .readiness import CONTINUOUS
from .records import (
    OperationRecords,
    OpJob,
    ProtectCheck,
    ProtectedServer,
    ProtectState,
    ReprotectRecord,
)

# Progress checks stop after this many (~24 h at the last backoff step).
MAX_PROTECT_CHECKS = 1440


class Reprotection:
    def __init__(
        self,
        *,
        registry: Registry,
        workloads: Workloads,
        results: Results,
        checks: Checks,
        ledger: Ledger,
        log: Log,
        operations: Operations,
        backoff: Sequence[int] = (5, 10, 20, 40, 60),
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._registry = registry
        self._workloads = workloads
        self._results = results
        self._checks = checks
        self._ledger = ledger
        self._log = log
        self._ops = operations
        self._backoff = tuple(backoff) or (60,)
        self._now = now

    def start(
        self, operation_id: str, customer: str, environment: str, operation: OperationType
    ) -> None:
        """Reverse the replication of every server the operation launched (once)."""
        records = self._ops.load(operation_id)
        if records.reprotect is not None:
            if records.reprotect.state == ProtectState.IN_PROGRESS:
                self.check(ProtectCheck(operation_id=operation_id))
            return
        launches = records.launch_jobs()
        if not launches:
            return  # nothing ran: nothing to protect
        now = self._now()
        base = ReprotectRecord(
            operation_id=operation_id,
            customer=customer,
            environment=environment,
            operation=operation,
            state=ProtectState.IN_PROGRESS,
            started_at=now,
        )
        if records.options is not None and not records.options.reprotect:
            self._ops.put_reprotect(
                base.model_copy(update={"state": ProtectState.SKIPPED, "completed_at": now}),
                new=True,
            )
            return
        entry = self._registry.customer(customer)
        if entry is None:
            self._log.error("Re-protection for an unknown customer", extra={"customer": customer})
            return
        servers: list[ProtectedServer] = []
        failures: list[ReprotectFailure] = []
        standby: dict[str, list[str]] = {}  # DR region -> twins to stop after a failback
        for (account, region), jobs in self._by_place(records).items():
            if account != entry.account:
                continue
            workload = self._workloads.get(entry, region)
            try:
                described = workload.jobs([j.job_id for j in jobs])
            except AwsError as error:
                self._log.warning(
                    "Jobs not readable for re-protection", extra={"error": str(error)}
                )
                continue
            for job in described:
                contexts = self._ledger.load(job.job_id).launches
                for server in job.servers:
                    if server.launch_status != LAUNCHED or not server.recovery_instance_id:
                        continue
                    context = contexts.get(server.source_server_id)
                    resource = context.resource_id if context else server.source_server_id
                    try:
                        arn = workload.reverse_replication(server.recovery_instance_id)
                    except AwsError as error:
                        failures.append(
                            ReprotectFailure(
                                resource_id=resource, code=error.code, error=str(error)
                            )
                        )
                        continue
                    located = arn_region_and_id(arn)
                    if located is None:
                        continue
                    servers.append(
                        ProtectedServer(
                            resource_id=resource,
                            name=context.name if context else None,
                            account=account,
                            region=located[0],
                            source_server_id=located[1],
                            state="INITIATING",
                        )
                    )
                    if operation == OperationType.FAILBACK and context and context.dr_instance:
                        standby.setdefault(entry.dr_region, []).append(context.dr_instance)
        for region, twins in sorted(standby.items()):
            try:  # the DR twins go back to standby: one copy of the server runs, in the primary
                self._workloads.get(entry, region).stop_instances(sorted(set(twins)))
            except AwsError as error:
                self._log.warning("DR twins not stopped", extra={"error": str(error)})
        record = base.model_copy(update={"servers": servers, "failures": failures})
        if not self._ops.put_reprotect(record, new=True):
            return  # a concurrent delivery started it
        events: list[Detail] = [
            ReprotectStarted(
                operation_id=operation_id,
                customer=customer,
                environment=environment,
                operation=operation,
                target_region=record.target_region,
                servers=len(servers),
                failures=failures,
                started_at=now,
            )
        ]
        self._results.publish(events)
        self._log.info(
            "Re-protection started",
            extra={"operation_id": operation_id, "servers": len(servers), "failed": len(failures)},
        )
        if servers:
            self._next(operation_id, 0)
        else:
            self._finish(record, ProtectState.COMPLETED)

    def check(self, message: ProtectCheck) -> None:
        records = self._ops.load(message.operation_id)
        record = records.reprotect
        if record is None or record.state != ProtectState.IN_PROGRESS:
            return
        entry = self._registry.customer(record.customer)
        if entry is None:
            return
        by_place: dict[tuple[str, str], list[ProtectedServer]] = {}
        for server in record.servers:
            by_place.setdefault((server.account, server.region), []).append(server)
        states: dict[str, tuple[str | None, float | None]] = {}
        for (account, region), servers in sorted(by_place.items()):
            if account != entry.account:
                continue
            try:
                found = self._workloads.get(entry, region).source_servers_by_id(
                    [s.source_server_id for s in servers]
                )
            except AwsError as error:
                self._log.warning("Replication not readable", extra={"error": str(error)})
                continue
            states.update({s.source_server_id: (s.replication_state, s.lag_seconds) for s in found})
        updated = [
            server.model_copy(
                update={
                    "state": states[server.source_server_id][0] or server.state,
                    "lag_seconds": _round(states[server.source_server_id][1]),
                }
            )
            if server.source_server_id in states
            else server
            for server in record.servers
        ]
        record = record.model_copy(update={"servers": updated, "checks": record.checks + 1})
        if all(s.state == CONTINUOUS for s in updated):
            self._finish(record, ProtectState.COMPLETED)
        elif message.attempt >= MAX_PROTECT_CHECKS:
            self._finish(record, ProtectState.TIMED_OUT)
        else:
            self._ops.put_reprotect(record)
            self._next(message.operation_id, message.attempt + 1)

    def _finish(self, record: ReprotectRecord, state: ProtectState) -> None:
        now = self._now()
        done = record.model_copy(update={"state": state, "completed_at": now})
        self._ops.put_reprotect(done)
        self._results.publish(
            [
                ReprotectCompleted(
                    operation_id=record.operation_id,
                    customer=record.customer,
                    environment=record.environment,
                    operation=record.operation,
                    target_region=record.target_region,
                    continuous=len(done.continuous),
                    not_continuous=sorted(
                        s.resource_id for s in done.servers if s.state != CONTINUOUS
                    ),
                    started_at=record.started_at,
                    completed_at=now,
                    duration_seconds=max(0.0, (now - record.started_at).total_seconds()),
                )
            ]
        )
        self._log.info(
            "Re-protection ended", extra={"operation_id": record.operation_id, "state": state.value}
        )

    def _next(self, operation_id: str, attempt: int) -> None:
        self._checks.schedule(
            [
                (
                    ProtectCheck(operation_id=operation_id, attempt=attempt),
                    step(self._backoff, attempt),
                )
            ]
        )

    @staticmethod
    def _by_place(records: OperationRecords) -> dict[tuple[str, str], list[OpJob]]:
        out: dict[tuple[str, str], list[OpJob]] = {}
        for job in records.launch_jobs():
            out.setdefault((job.account, job.region), []).append(job)
        return dict(sorted(out.items()))


def _round(value: float | None) -> int | None:
    return None if value is None else round(value)
