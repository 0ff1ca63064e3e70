"""Workload-account stacks (StackSet-ready), Resource Explorer and the bubble-test network."""

from __future__ import annotations

import json
import re
from typing import Any

from infra.access import SERVICE_ACCESS
from sandbox.runtime import FORWARD_RULE_NAME, NATIVE_SOURCES
from services.catalog import SERVICES

from .conftest import Synth

STACKSET_STACKS = ("DrWorkloadAccess", "DrWorkloadEventForwarding", "DrResourceExplorer")


def _policy_statements(synth: Synth, stack: str) -> dict[str, dict[str, Any]]:
    return {
        statement["Sid"]: statement
        for policy in synth.properties(stack, "AWS::IAM::ManagedPolicy")
        for statement in policy["PolicyDocument"]["Statement"]
    }


def test_given_the_workload_stacks_when_synthesized_then_they_are_stackset_ready(
    synth: Synth,
) -> None:
    for name in STACKSET_STACKS:
        template = synth.templates[name]
        text = json.dumps(template)
        # No assets and no bootstrap: the template is self-contained.
        assert "BootstrapVersion" not in template.get("Parameters", {}), name
        assert "cdk-hnb659fds" not in text, name
        assert "AWS::Lambda::Function" not in text, name
        # No account or region baked in (the orchestration account is a parameter default).
        for customer in synth.config.customers:
            assert customer.account not in text, (name, customer.name)


def test_given_the_workload_role_when_assumed_then_it_needs_the_external_id_and_a_named_caller(
    synth: Synth,
) -> None:
    template = synth.templates["DrWorkloadAccess"]
    assert template["Parameters"]["ExternalId"]["NoEcho"] is True
    [role] = synth.properties("DrWorkloadAccess", "AWS::IAM::Role")
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["StringEquals"] == {"sts:ExternalId": {"Ref": "ExternalId"}}
    callers = json.dumps(trust["Condition"]["ArnEquals"]["aws:PrincipalArn"])
    named = set(re.findall(r"role/([a-z-]+)", callers))
    expected = {f"dr-{s.name}-function" for s in SERVICES if SERVICE_ACCESS[s.name].workload}
    assert named == expected | {synth.config.access.operator_role_name}
    assert "dr-metrics-function" not in named  # it never calls a workload account


def test_given_the_drs_policy_when_synthesized_then_launch_calls_are_tag_and_service_bound(
    synth: Synth,
) -> None:
    statements = _policy_statements(synth, "DrWorkloadAccess")
    recover = statements["DrsRecover"]
    assert "drs:StartRecovery" in recover["Action"]
    assert recover["Condition"] == {"StringEquals": {"aws:ResourceTag/dr:enabled": "true"}}
    launch = statements["DrsLaunchThroughDrs"]
    assert "ec2:RunInstances" in launch["Action"]
    assert launch["Condition"] == {"Bool": {"aws:ViaAWSService": "true"}}
    assert statements["DrsPassRecoveryInstanceRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}
    }
    discovery = statements["DiscoverySearch"]
    assert discovery["Action"] == "resource-explorer-2:Search"


def test_given_the_forwarding_stack_when_synthesized_then_it_forwards_what_the_sandbox_forwards(
    synth: Synth,
) -> None:
    [rule] = synth.properties("DrWorkloadEventForwarding", "AWS::Events::Rule")
    assert rule["Name"] == FORWARD_RULE_NAME
    assert rule["EventPattern"] == {"source": [s.value for s in NATIVE_SOURCES]}
    assert "EventBusName" not in rule  # the account's default bus
    [target] = rule["Targets"]
    assert target["Arn"] == {"Ref": "OrchestrationBusArn"}
    assert "RoleArn" in target


def test_given_resource_explorer_when_synthesized_then_the_default_view_includes_tags(
    synth: Synth,
) -> None:
    [index] = synth.properties("DrResourceExplorer", "AWS::ResourceExplorer2::Index")
    assert "Fn::If" in index["Type"]
    [view] = synth.properties("DrResourceExplorer", "AWS::ResourceExplorer2::View")
    assert view["IncludedProperties"] == [{"Name": "tags"}]
    assert synth.properties("DrResourceExplorer", "AWS::ResourceExplorer2::DefaultViewAssociation")


def test_given_a_bubble_network_when_synthesized_then_nothing_routes_out_and_dns_is_the_clone(
    synth: Synth,
) -> None:
    [bubble] = synth.config.bubble_networks
    stack = f"DrBubble-{bubble.customer}-{bubble.environment}"
    types = {r["Type"] for r in synth.templates[stack]["Resources"].values()}
    for forbidden in (
        "AWS::EC2::InternetGateway",
        "AWS::EC2::NatGateway",
        "AWS::EC2::Route",
        "AWS::EC2::VPCPeeringConnection",
        "AWS::EC2::TransitGatewayAttachment",
        "AWS::EC2::VPNGateway",
    ):
        assert forbidden not in types
    [vpc] = synth.properties(stack, "AWS::EC2::VPC")
    assert vpc["CidrBlock"] == bubble.cidr
    subnets = synth.properties(stack, "AWS::EC2::Subnet")
    assert sorted(s["CidrBlock"] for s in subnets) == sorted(s.cidr for s in bubble.subnets)
    assert all(s["MapPublicIpOnLaunch"] is False for s in subnets)
    [dhcp] = synth.properties(stack, "AWS::EC2::DHCPOptions")
    assert dhcp["DomainNameServers"] == bubble.ad_dns_ips
    assert dhcp["DomainName"] == bubble.domain_name
    assert synth.properties(stack, "AWS::EC2::FlowLog")
    assert synth.resources(stack, "Custom::VpcRestrictDefaultSG")


def test_given_a_bubble_network_when_drills_look_it_up_then_name_and_drill_group_match(
    synth: Synth,
) -> None:
    from drcore import tags as T

    [bubble] = synth.config.bubble_networks
    stack = f"DrBubble-{bubble.customer}-{bubble.environment}"
    [vpc] = synth.properties(stack, "AWS::EC2::VPC")
    assert {"Key": "Name", "Value": T.bubble_network_name(bubble.customer, bubble.environment)} in (
        vpc["Tags"]
    )
    drill_groups = [
        g
        for g in synth.properties(stack, "AWS::EC2::SecurityGroup")
        if {"Key": T.BUBBLE_ROLE, "Value": T.BUBBLE_ROLE_DRILL} in g.get("Tags", [])
    ]
    assert len(drill_groups) == 1
    [egress] = drill_groups[0]["SecurityGroupEgress"]
    assert egress["CidrIp"] == bubble.cidr  # nothing leaves the bubble


def test_given_the_drs_policy_when_it_terminates_stops_or_tags_then_only_its_own_instances(
    synth: Synth,
) -> None:
    from drcore import tags as T

    statements = _policy_statements(synth, "DrWorkloadAccess")
    terminate = statements["TerminateDrillInstances"]
    assert terminate["Condition"] == {
        "StringEquals": {f"aws:ResourceTag/{T.BUBBLE_ENABLED}": "true"}
    }
    stop = statements["StopTwinsAfterFailback"]
    assert stop["Condition"] == {
        "StringEquals": {f"aws:ResourceTag/{T.DRS_LAUNCH_INTO}": T.DRS_LAUNCH_INTO_VALUE}
    }
    keys = statements["TagTwinsAndDrills"]["Condition"]["ForAllValues:StringEquals"]
    assert set(keys["aws:TagKeys"]) == {T.DRS_LAUNCH_INTO, *T.BUBBLE_TAG_KEYS}
