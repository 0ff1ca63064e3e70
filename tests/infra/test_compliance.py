"""cdk-nag, cfn-lint and IAM hygiene on the synthesized templates."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from infra.access import SERVICE_ACCESS, WILDCARD_ONLY_ACTIONS
from infra.nag import MIN_REASON_LENGTH
from services.catalog import SERVICES

from .conftest import Synth

# cfn-lint warnings the templates are known to carry, with why they stay.
KNOWN_LINT_WARNINGS = {
    "W3005",  # CDK's Function adds DependsOn on its role next to the GetAtt: harmless
    "W3010",  # bubble subnets name their AZs on purpose: they mirror production's
}


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        documents = [properties.get("PolicyDocument"), properties.get("AssumeRolePolicyDocument")]
        documents += [p.get("PolicyDocument") for p in properties.get("Policies", [])]
        for document in documents:
            if document:
                for statement in document["Statement"]:
                    yield logical_id, statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_given_the_app_when_synthesized_then_cdk_nag_leaves_no_unacknowledged_finding(
    synth: Synth,
) -> None:
    # The fixture's synth() would have raised; a report, when written, has no violations.
    report = synth.outdir / "validation-report.json"
    if report.exists():
        for plugin in json.loads(report.read_text())["pluginReports"]:
            assert plugin["violations"] == [], plugin["pluginName"]


def test_given_the_acknowledgements_when_listed_then_each_names_a_resource_rule_and_reason(
    synth: Synth,
) -> None:
    assert synth.acknowledged
    for ack in synth.acknowledged:
        assert ack.path.startswith("Dr"), ack
        assert re.match(r"^(AwsSolutions|HIPAA\.Security)-[A-Za-z0-9]+(\[.+\])?$", ack.rule), ack
        assert len(ack.reason) >= MIN_REASON_LENGTH, ack
    # No rule is acknowledged wholesale for a stack: always on a resource under it.
    assert all("/" in ack.path for ack in synth.acknowledged)
    # And the reasons are in the templates, next to the resources.
    in_templates = {
        rule["id"]
        for template in synth.templates.values()
        for resource in template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    }
    assert {ack.rule for ack in synth.acknowledged} <= in_templates


def test_given_the_templates_when_linted_then_cfn_lint_reports_no_error(synth: Synth) -> None:
    from cfnlint.api import ManualArgs, lint

    regions = sorted(
        {synth.config.orchestration.region, *(c.dr_region for c in synth.config.customers)}
    )
    problems = []
    for name, template in synth.templates.items():
        for match in lint(json.dumps(template), config=ManualArgs(regions=regions)):
            rule = match.rule.id
            if rule.startswith("E") or (rule.startswith("W") and rule not in KNOWN_LINT_WARNINGS):
                problems.append(f"{name}: {rule} {match.message}")
    assert problems == []


def test_given_every_policy_when_synthesized_then_no_allowed_action_is_a_wildcard(
    synth: Synth,
) -> None:
    """Never `"Action": "*"`; `service:*` only to deny (plain HTTP) or in a key policy, where
    the account root holds `kms:*` on that one key (AWS's default key policy)."""
    for stack, template in synth.templates.items():
        for logical_id, statement in _statements(template):
            for action in _as_list(statement.get("Action", [])):
                assert action != "*", (stack, logical_id)
                if statement["Effect"] == "Deny":
                    continue
                if template["Resources"][logical_id]["Type"] == "AWS::KMS::Key":
                    assert action != "kms:*" or "root" in json.dumps(statement["Principal"])
                    continue
                assert not str(action).endswith(":*"), (stack, logical_id, action)


def test_given_every_resource_wildcard_when_synthesized_then_the_api_requires_it(
    synth: Synth,
) -> None:
    """`"Resource": "*"` only for APIs without resource-level permissions, for EC2 calls made
    through DRS (aws:ViaAWSService), or in a key policy (where it means the key itself)."""
    for stack, template in synth.templates.items():
        for logical_id, statement in _statements(template):
            if "*" not in _as_list(statement.get("Resource", [])):
                continue
            if template["Resources"][logical_id]["Type"] == "AWS::KMS::Key":
                continue
            if statement.get("Effect") == "Deny":
                continue  # CDK's "deny plain HTTP" statements
            actions = set(_as_list(statement["Action"]))
            via_service = statement.get("Condition", {}).get("Bool", {}).get("aws:ViaAWSService")
            assert actions <= set(WILDCARD_ONLY_ACTIONS) or via_service == "true", (
                stack,
                logical_id,
                sorted(actions - set(WILDCARD_ONLY_ACTIONS)),
            )


def test_given_the_catalog_when_synthesized_then_every_service_has_declared_access() -> None:
    assert {s.name for s in SERVICES} <= set(SERVICE_ACCESS)
