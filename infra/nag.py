"""cdk-nag (v3): the AWS Solutions and HIPAA Security packs on every stack, and acknowledgements.

cdk-nag 3 plugs into CDK's own validation (`Validations.of(app).add_plugins(...)`): a finding
that is not acknowledged makes `app.synth()` fail and is written to
`cdk.out/validation-report.json`. An acknowledgement names one rule (or one finding of a rule,
`AwsSolutions-IAM5[Resource::*]`) on one construct, with the reason; the reasons are copied into
the templates' metadata (`cdk_nag.rules_to_suppress`) so an auditor reads them next to the resource.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks
from constructs import IConstruct

MIN_REASON_LENGTH = 40


@dataclass(frozen=True)
class Acknowledged:
    path: str  # the construct's path, e.g. DrOrchestration/DrsPolicy
    rule: str
    reason: str


# Every acknowledgement made through `acknowledge`, per app (keyed by the root construct).
_ACKNOWLEDGED: dict[int, list[Acknowledged]] = {}


def acknowledged(app: App) -> list[Acknowledged]:
    return list(_ACKNOWLEDGED.get(id(app), []))


def add_checks(app: App) -> None:
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True),
        HIPAASecurityChecks(app),
    )


def acknowledge(construct: IConstruct, reason: str, *rules: str) -> None:
    """Acknowledge `rules` on `construct` (and the resources under it) for `reason`."""
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ValueError(f"an acknowledgement needs a real reason, got {reason!r}")
    if not rules:
        raise ValueError("acknowledge at least one rule")
    Validations.of(construct).acknowledge(
        *(Acknowledgment(id=rule, reason=reason) for rule in rules)
    )
    records = _ACKNOWLEDGED.setdefault(id(construct.node.root), [])
    records += [Acknowledged(construct.node.path, rule, reason) for rule in rules]
