"""Readiness as metrics for the dashboards (EMF through `services.discovery.metrics`).

Per scope (dimensions Customer, Environment): `ReadinessCriticalFindings`,
`ReadinessWarningFindings`, `ReadinessResources`; per scope and finding code (dimensions
Customer, Environment, Code): `ReadinessFindings`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from services.discovery.inventory import Severity
from services.discovery.metrics import COUNT, MetricSet

from .domain import Finding, ScopeReadiness

CUSTOMER = "Customer"
ENVIRONMENT = "Environment"
CODE = "Code"


def metric_sets(scopes: Sequence[ScopeReadiness], findings: Iterable[Finding]) -> list[MetricSet]:
    by_scope: dict[tuple[str, str], Counter[tuple[str, Severity]]] = {
        (s.customer, s.environment): Counter() for s in scopes
    }
    for finding in findings:
        by_scope.setdefault((finding.customer, finding.environment), Counter())[
            (finding.code, finding.severity)
        ] += 1
    resources = {(s.customer, s.environment): s.resources for s in scopes}
    out: list[MetricSet] = []
    for (customer, environment), counts in sorted(by_scope.items()):
        dims = {CUSTOMER: customer, ENVIRONMENT: environment}
        critical = sum(n for (_, sev), n in counts.items() if sev is Severity.CRITICAL)
        warning = sum(n for (_, sev), n in counts.items() if sev is Severity.WARNING)
        values = [
            ("ReadinessCriticalFindings", COUNT, float(critical)),
            ("ReadinessWarningFindings", COUNT, float(warning)),
        ]
        if (customer, environment) in resources:
            values.append(("ReadinessResources", COUNT, float(resources[(customer, environment)])))
        out.append(MetricSet(dims, values))
        codes: Counter[str] = Counter()
        for (code, _), n in counts.items():
            codes[code] += n
        out += [
            MetricSet({**dims, CODE: code}, [("ReadinessFindings", COUNT, float(n))])
            for code, n in sorted(codes.items())
        ]
    return out
