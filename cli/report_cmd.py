"""`drctl report` and `drctl audit`: what an operation did, and proof from the archived events."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from drcore.audit import ARCHIVE_NAME, AUDIT_QUEUE_NAME, AUDIT_RULE_NAME
from drcore.report import (
    OperationReport,
    audit_differences,
    parse_events,
    report_from_events,
    report_from_state,
)
from drcore.state import META, PlanStore, op_pk, read_operation

from . import render
from .context import Context, UsageError
from .report_render import to_html, to_markdown

REPLAY_MARGIN = timedelta(minutes=5)
QUIET_POLLS = 2
FOREIGN_HOLD_SECONDS = 120


class Format(StrEnum):
    MARKDOWN = "markdown"
    HTML = "html"
    JSON = "json"


def live_report(context: Context, operation_id: str) -> OperationReport:
    table = context.table()
    view = read_operation(table, operation_id)
    if view is None:
        raise UsageError(f"unknown operation {operation_id!r}")
    meta = table.get_item(Key={"pk": op_pk(operation_id), "sk": META}).get("Item", {})
    return report_from_state(view, meta, PlanStore(table).get(operation_id))


def report(
    ctx: typer.Context,
    operation_id: Annotated[str, typer.Argument(help="Operation id")],
    format: Annotated[Format, typer.Option("--format", "-f", help="markdown, html or json")] = (
        Format.MARKDOWN
    ),
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout")] = None,
) -> None:
    """The operation report: timeline, RTO achieved per wave vs target, failures and causes."""
    from .main import _guard

    context: Context = ctx.obj
    result: OperationReport = _guard(context, lambda: live_report(context, operation_id))
    text = {
        Format.MARKDOWN: to_markdown,
        Format.HTML: to_html,
        Format.JSON: lambda r: json.dumps(r.summary(), indent=2) + "\n",
    }[format](result)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        render.err_console.print(f"Wrote the {format.value} report to {out}")


def audit(
    ctx: typer.Context,
    operation_id: Annotated[str, typer.Argument(help="Operation id")],
    output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text",
    out: Annotated[
        Path | None, typer.Option(help="Also keep the replayed events (JSON lines) here")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the replay")] = 600,
) -> None:
    """Replay the operation's archived events into the audit destination, rebuild the report
    from them alone and compare it with the live record (exit 1 on any difference)."""
    from .main import _fail_usage, _guard

    context: Context = ctx.obj
    live: OperationReport = _guard(context, lambda: live_report(context, operation_id))
    if live.completed_at is None:
        _fail_usage(f"operation {operation_id} has not ended ({live.state}): audit it once it has")
    bodies, replay_name = _guard(context, lambda: _replay(context, live, timeout))
    if out is not None:
        out.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    details = parse_events(bodies, operation_id)
    if not details:
        differences = [f"no archived event of {operation_id} was replayed"]
        rebuilt = None
    else:
        rebuilt = report_from_events(details)
        differences = audit_differences(live, rebuilt)
    if output == "json":
        render.print_json(
            {
                "operation_id": operation_id,
                "replay_name": replay_name,
                "events": len(details),
                "equal": not differences,
                "differences": differences,
                "report": rebuilt.summary() if rebuilt else None,
            }
        )
    elif differences:
        render.console.print(
            f"[red]Audit of {operation_id}: {len(differences)} difference(s)[/red] between the "
            f"live record and the {len(details)} replayed events:"
        )
        for difference in differences:
            render.console.print(f"  - {difference}")
    else:
        render.console.print(
            f"[green]Audit of {operation_id}: the report rebuilt from {len(details)} replayed "
            "events matches the live record.[/green]"
        )
    if differences:
        raise typer.Exit(1)


def _replay(context: Context, live: OperationReport, timeout: float) -> tuple[list[Any], str]:
    events = context.clients.client("events")
    sqs = context.clients.client("sqs")
    archive = events.describe_archive(ArchiveName=ARCHIVE_NAME)
    rule_arn = events.describe_rule(Name=AUDIT_RULE_NAME, EventBusName=context.settings.bus_name)[
        "Arn"
    ]
    queue_url = sqs.get_queue_url(QueueName=AUDIT_QUEUE_NAME)["QueueUrl"]
    start = (live.requested_at or live.started_at or datetime.now(UTC)) - REPLAY_MARGIN
    end = min(datetime.now(UTC), (live.completed_at or datetime.now(UTC)) + REPLAY_MARGIN)
    name = f"audit-{int(time.time())}-{live.operation_id}"[:64]
    events.start_replay(
        ReplayName=name,
        EventSourceArn=archive["ArchiveArn"],
        EventStartTime=start,
        EventEndTime=end,
        Destination={"Arn": archive["EventSourceArn"], "FilterArns": [rule_arn]},
    )
    deadline = time.monotonic() + timeout
    bodies: list[Any] = []
    quiet = 0
    while time.monotonic() < deadline:
        state = events.describe_replay(ReplayName=name)["State"]
        if state in ("FAILED", "CANCELLED"):
            raise UsageError(f"replay {name} ended {state}")
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for message in messages:
            body = json.loads(message["Body"])
            if body.get("replay-name") == name:
                bodies.append(body)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                # Another replay's event: out of our way while we drain, back for its owner later.
                sqs.change_message_visibility(
                    QueueUrl=queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=FOREIGN_HOLD_SECONDS,
                )
        # Done once the replay has completed and the queue has nothing more to give.
        quiet = quiet + 1 if not messages else 0
        if state == "COMPLETED" and quiet >= QUIET_POLLS:
            return bodies, name
    raise UsageError(f"replay {name} did not finish within {timeout:.0f} s")
