"""The operation report as Markdown and as one self-contained HTML page with a timeline chart.

The chart is inline SVG drawn here: a handful of rectangles and lines, which no charting
library would make simpler, and the page must open offline with nothing beside it.
"""

from __future__ import annotations

import html
from datetime import datetime

from drcore.report import OperationReport, ReportWave

STATE_COLOURS = {
    "COMPLETED": "#2e7d32",
    "RECOVERED": "#2e7d32",
    "FAILED": "#c62828",
    "CANCELLED": "#ef6c00",
    "PAUSED": "#ef6c00",
}
DEFAULT_COLOUR = "#1565c0"
MAX_RESOURCE_ROWS = 200


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _rto(report: OperationReport, wave: ReportWave) -> str:
    met = report.rto_met(wave)
    target = f"{wave.rto_target_minutes} min" if wave.rto_target_minutes else "-"
    achieved = _duration(report.achieved_seconds(wave))
    verdict = {True: "met", False: "MISSED", None: "-"}[met]
    return f"{achieved} / {target} ({verdict})"


def to_markdown(report: OperationReport) -> str:
    lines = [
        f"# DR operation report: {report.operation_id}",
        "",
        f"- **Operation**: {report.operation} of `{report.customer}/{report.environment}`",
        f"- **Outcome**: **{report.state}**"
        + (f" — {report.error_code}: {report.reason}" if report.error_code else ""),
        f"- **Requested by**: {report.requested_by or '-'} at {_time(report.requested_at)}"
        + (f", ticket {report.ticket}" if report.ticket else "")
        + (f", reason: {report.request_reason}" if report.request_reason else ""),
        f"- **Ended**: {_time(report.completed_at)} (total {_duration(report.duration_seconds)})",
        f"- **Plan source**: {report.plan_source or '-'}; "
        f"{len(report.resources)} resources in {len(report.waves)} waves",
        f"- **Built from**: {report.source}",
    ]
    if report.approvals:
        lines += ["", "## Approvals", "", "| Wave | Decision | By | At |", "|---|---|---|---|"]
        for approval in report.approvals:
            lines.append(
                f"| {approval.get('wave', '-')} | {approval.get('decision', '-')} "
                f"| {approval.get('approver', '-')} | {approval.get('at', '-')} |"
            )
    lines += [
        "",
        "## Waves: RTO achieved vs target",
        "",
        "RTO achieved is the time from the request to the wave's last recovery.",
        "",
        "| Wave | State | Recovered | Failed | Started | Completed | Wave duration "
        "| RTO achieved / target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for wave in report.waves:
        lines.append(
            f"| {wave.number} | {wave.state} | {wave.recovered}/{wave.expected} | {wave.failed} "
            f"| {_time(wave.started_at)} | {_time(wave.completed_at)} "
            f"| {_duration(wave.duration_seconds)} | {_rto(report, wave)} |"
        )
    failed = [r for r in report.resources if r.state == "FAILED"]
    if failed:
        lines += ["", "## Failures", "", "| Resource | Wave | Code | Cause |", "|---|---|---|---|"]
        for resource in failed:
            lines.append(
                f"| {resource.name} (`{resource.resource_id}`) | {resource.wave} "
                f"| {resource.error_code or '-'} | {resource.error or '-'} |"
            )
    if report.warnings:
        lines += [
            "",
            "## Plan warnings at start",
            "",
            "| Code | Resource | Message |",
            "|---|---|---|",
        ]
        for warning in report.warnings:
            lines.append(f"| {warning.code} | {warning.resource_id} | {warning.message} |")
    lines += [
        "",
        "## Resources",
        "",
        "| Wave | Resource | State | Primary IP | DR instance | DR IP |",
        "|---|---|---|---|---|---|",
    ]
    for resource in report.resources:
        lines.append(
            f"| {resource.wave} | {resource.name} (`{resource.resource_id}`) | {resource.state} "
            f"| {resource.private_ip or '-'} | {resource.dr_resource_id or '-'} "
            f"| {resource.dr_private_ip or '-'} |"
        )
    return "\n".join(lines) + "\n"


def timeline_svg(report: OperationReport, width: int = 960) -> str:
    """Waves and resources over time, with each wave's RTO target where it falls on the axis."""
    start = report.clock_start
    ends = [t for w in report.waves for t in (w.completed_at, w.started_at) if t]
    ends += [t for r in report.resources for t in (r.completed_at,) if t]
    if report.completed_at:
        ends.append(report.completed_at)
    if start is None or not ends:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    span = max((max(ends) - start).total_seconds(), 1.0)
    label_width, row, pad = 200, 14, 30
    plot = width - label_width - pad
    resources = report.resources[:MAX_RESOURCE_ROWS]
    rows = len(report.waves) * 2 + len(resources)
    height = pad * 2 + rows * row

    def x(moment: datetime | None) -> float:
        seconds = (moment - start).total_seconds() if moment else span
        return label_width + plot * max(0.0, min(seconds, span)) / span

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" '
        f'height="{height}" role="img" '
        f'aria-label="Timeline of {html.escape(report.operation_id)}">',
        f'<line x1="{label_width}" y1="{pad - 6}" x2="{label_width + plot}" y2="{pad - 6}" '
        'stroke="#999"/>',
        f'<text x="{label_width}" y="{pad - 10}" font-size="11">0 s</text>',
        f'<text x="{label_width + plot}" y="{pad - 10}" font-size="11" text-anchor="end">'
        f"{_duration(span)}</text>",
    ]
    y = pad
    for wave in report.waves:
        colour = STATE_COLOURS.get(wave.state, DEFAULT_COLOUR)
        x0, x1 = x(wave.started_at), x(wave.completed_at)
        parts.append(
            f'<text x="4" y="{y + 11}" font-size="12" font-weight="bold">Wave {wave.number}</text>'
            f'<rect class="wave" data-wave="{wave.number}" x="{x0:.1f}" y="{y}" '
            f'width="{max(x1 - x0, 1):.1f}" height="{row - 2}" fill="{colour}"/>'
        )
        if wave.rto_target_minutes:
            target_seconds = wave.rto_target_minutes * 60
            if target_seconds <= span:
                tx = label_width + plot * target_seconds / span
                parts.append(
                    f'<line class="rto-target" x1="{tx:.1f}" y1="{y - 2}" x2="{tx:.1f}" '
                    f'y2="{y + row}" stroke="#000" stroke-dasharray="3,2"/>'
                )
            parts.append(
                f'<text x="{min(x1 + 6, width - 4):.1f}" y="{y + row + 9}" font-size="10" '
                f'text-anchor="{"end" if x1 + 220 > width else "start"}">'
                f"RTO target {wave.rto_target_minutes} min — {_rto(report, wave)}</text>"
            )
        y += row * 2
        for resource in [r for r in resources if r.wave == wave.number]:
            colour = STATE_COLOURS.get(resource.state, DEFAULT_COLOUR)
            r0, r1 = x(resource.started_at or wave.started_at), x(resource.completed_at)
            parts.append(
                f'<text x="14" y="{y + 9}" font-size="9">{html.escape(resource.name)}</text>'
                f'<rect class="resource" x="{r0:.1f}" y="{y + 2}" width="{max(r1 - r0, 1):.1f}" '
                f'height="{row - 6}" fill="{colour}" opacity="0.7"/>'
            )
            y += row
    parts.append("</svg>")
    return "".join(parts)


def _section(title: str, headers: tuple[str, ...], rows: str) -> str:
    if not rows:
        return ""
    cells = "".join(f"<th>{h}</th>" for h in headers)
    return f"<h2>{title}</h2><table><tr>{cells}</tr>{rows}</table>"


def to_html(report: OperationReport) -> str:
    """A self-contained page: the Markdown content as HTML tables, plus the timeline."""
    rows = []
    for wave in report.waves:
        colour = STATE_COLOURS.get(wave.state, DEFAULT_COLOUR)
        rows.append(
            f"<tr><td>{wave.number}</td><td style='color:{colour}'>{wave.state}</td>"
            f"<td>{wave.recovered}/{wave.expected}</td><td>{wave.failed}</td>"
            f"<td>{_time(wave.started_at)}</td><td>{_time(wave.completed_at)}</td>"
            f"<td>{_duration(wave.duration_seconds)}</td>"
            f"<td>{html.escape(_rto(report, wave))}</td></tr>"
        )
    failure_rows = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td>{r.wave}</td>"
        f"<td>{html.escape(r.error_code or '-')}</td><td>{html.escape(r.error or '-')}</td></tr>"
        for r in report.resources
        if r.state == "FAILED"
    )
    warning_rows = "".join(
        f"<tr><td>{html.escape(w.code)}</td><td>{html.escape(w.resource_id)}</td>"
        f"<td>{html.escape(w.message)}</td></tr>"
        for w in report.warnings
    )
    resources = "".join(
        f"<tr><td>{r.wave}</td><td>{html.escape(r.name)}</td><td>{r.resource_id}</td>"
        f"<td>{r.state}</td><td>{r.private_ip or '-'}</td><td>{r.dr_resource_id or '-'}</td>"
        f"<td>{r.dr_private_ip or '-'}</td></tr>"
        for r in report.resources
    )
    outcome = html.escape(
        report.state + (f" — {report.error_code}: {report.reason}" if report.error_code else "")
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>DR operation report {html.escape(report.operation_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; font-size: 0.9rem; text-align: left; }}
th {{ background: #f3f3f3; }}
</style></head><body>
<h1>DR operation report: {html.escape(report.operation_id)}</h1>
<ul>
<li><b>Operation</b>: {html.escape(report.operation)} of
 <code>{html.escape(report.customer)}/{html.escape(report.environment)}</code></li>
<li><b>Outcome</b>: <b>{outcome}</b></li>
<li><b>Requested by</b>: {html.escape(report.requested_by or "-")} at {_time(report.requested_at)}
 {html.escape(("ticket " + report.ticket) if report.ticket else "")}</li>
<li><b>Ended</b>: {_time(report.completed_at)} (total {_duration(report.duration_seconds)})</li>
<li><b>Built from</b>: {html.escape(report.source)}</li>
</ul>
<h2>Timeline</h2>
{timeline_svg(report)}
<h2>Waves: RTO achieved vs target</h2>
<p>RTO achieved is the time from the request to the wave's last recovery.</p>
<table><tr><th>Wave</th><th>State</th><th>Recovered</th><th>Failed</th><th>Started</th>
<th>Completed</th><th>Wave duration</th><th>RTO achieved / target</th></tr>{"".join(rows)}</table>
{_section("Failures", ("Resource", "Wave", "Code", "Cause"), failure_rows)}
{_section("Plan warnings at start", ("Code", "Resource", "Message"), warning_rows)}
<h2>Resources</h2>
<table><tr><th>Wave</th><th>Name</th><th>Resource</th><th>State</th><th>Primary IP</th>
<th>DR instance</th><th>DR IP</th></tr>{resources}</table>
</body></html>
"""
