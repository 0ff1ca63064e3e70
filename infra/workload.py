"""Workload-account stacks, ready for CloudFormation StackSets (no assets, no bootstrap, no
account or region baked in; per-account values are parameters).

- `DrWorkloadAccess` (one region per account, IAM is global): the role the services assume,
  trusted only from the named orchestration roles and only with the account's external id;
  one statement group per service with what its adapters call and nothing else.
- `DrWorkloadEventForwarding` (every DR region of the account): forwards the native `aws.drs`
  and `aws.ssm` events of the default bus to the orchestration bus, as the sandbox does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aws_cdk import BootstraplessSynthesizer, CfnParameter, Fn, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from drcore import tags as T
from drcore.subscriptions import ServiceSpec
from sandbox.runtime import FORWARD_RULE_NAME, NATIVE_SOURCES

from .access import SERVICE_ACCESS
from .config import InfraConfig, WorkloadConfig
from .nag import acknowledge

# The EC2 calls DRS makes with the caller's permissions while it launches recovery instances
# (StartRecovery's dependent actions in the Service Authorization Reference). They are allowed
# only through an AWS service (aws:ViaAWSService), never when the role calls EC2 itself, and
# need "Resource": "*" because the instances, volumes and snapshots do not exist yet.
DRS_LAUNCH_EC2_ACTIONS = (
    "ec2:AttachVolume",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateLaunchTemplateVersion",
    "ec2:CreateSnapshot",
    "ec2:CreateTags",
    "ec2:CreateVolume",
    "ec2:DeleteLaunchTemplateVersions",
    "ec2:DeleteSnapshot",
    "ec2:DeleteVolume",
    "ec2:DescribeAccountAttributes",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceAttribute",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSnapshots",
    "ec2:DescribeSubnets",
    "ec2:DescribeVolumes",
    "ec2:DetachVolume",
    "ec2:ModifyInstanceAttribute",
    "ec2:ModifyLaunchTemplate",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:RunInstances",
    "ec2:StartInstances",
    "ec2:StopInstances",
    "ec2:TerminateInstances",
)
VIA_AWS_SERVICE = {"Bool": {"aws:ViaAWSService": "true"}}


def _arn(stack: Stack, service: str, resource: str) -> str:
    """An ARN in this account, any region (the role serves every region of the account)."""
    return f"arn:{stack.partition}:{service}:*:{stack.account}:{resource}"


def discovery_statements(stack: Stack, config: WorkloadConfig) -> list[iam.PolicyStatement]:
    return [
        iam.PolicyStatement(
            sid="DiscoverySearch",
            actions=["resource-explorer-2:Search"],
            resources=[_arn(stack, "resource-explorer-2", "view/*")],
        ),
        iam.PolicyStatement(
            sid="DiscoveryInventory",
            # The Tagging API, EC2 Describe* and DRS's listing have no resource-level permissions.
            actions=[
                "tag:GetResources",
                "ec2:DescribeInstances",
                "ec2:DescribeImages",
                "drs:DescribeSourceServers",
            ],
            resources=["*"],
        ),
    ]


def coordinator_statements(stack: Stack, config: WorkloadConfig) -> list[iam.PolicyStatement]:
    """Pre/post-wave hooks: SSM Automation documents of this account. A document without its
    own AutomationAssumeRole runs with this role's permissions; one that needs more names a
    role whose name starts with the configured hook prefix."""
    return [
        iam.PolicyStatement(
            sid="HookStart",
            actions=["ssm:StartAutomationExecution"],
            resources=[_arn(stack, "ssm", "automation-definition/*")],
        ),
        iam.PolicyStatement(
            sid="HookFollow",
            actions=["ssm:GetAutomationExecution", "ssm:StopAutomationExecution"],
            resources=[_arn(stack, "ssm", "automation-execution/*")],
        ),
        iam.PolicyStatement(
            sid="HookPassRole",
            actions=["iam:PassRole"],
            resources=[
                f"arn:{stack.partition}:iam::{stack.account}:role/{config.hook_role_prefix}*"
            ],
            conditions={"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}},
        ),
    ]


def drs_statements(stack: Stack, config: WorkloadConfig) -> list[iam.PolicyStatement]:
    tagged = (
        {"StringEquals": {f"aws:ResourceTag/{k}": v for k, v in config.source_server_tag.items()}}
        if config.source_server_tag
        else None
    )
    return [
        iam.PolicyStatement(
            sid="DrsRead",
            # Listings without resource-level permissions: DRS, EC2 (twins, the bubble network,
            # launch templates, tags) and Service Quotas (DRS's quotas).
            actions=[
                "drs:DescribeSourceServers",
                "drs:DescribeJobs",
                "drs:DescribeRecoveryInstances",
                "ec2:DescribeInstances",
                "ec2:DescribeVpcs",
                "ec2:DescribeSubnets",
                "ec2:DescribeRouteTables",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeLaunchTemplates",
                "ec2:DescribeTags",
                "servicequotas:ListServiceQuotas",
                "servicequotas:ListAWSDefaultServiceQuotas",
            ],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="DrsJobLog",
            actions=["drs:DescribeJobLogItems"],
            resources=[_arn(stack, "drs", "job/*")],
        ),
        iam.PolicyStatement(
            sid="DrsRecover",
            # Launch into the twin, then recover or drill (StartRecovery's DRS-side dependent
            # actions); only on source servers carrying the DR tag.
            actions=[
                "drs:GetLaunchConfiguration",
                "drs:UpdateLaunchConfiguration",
                "drs:StartRecovery",
                "drs:CreateRecoveryInstanceForDrs",
                "drs:ListTagsForResource",
            ],
            resources=[_arn(stack, "drs", "source-server/*")],
            conditions=tagged,
        ),
        iam.PolicyStatement(
            sid="DrsRecoveryInstances",
            # Failback (reverse replication) and drill teardown.
            actions=["drs:ReverseReplication", "drs:TerminateRecoveryInstances"],
            resources=[_arn(stack, "drs", "recovery-instance/*")],
        ),
        iam.PolicyStatement(
            sid="DrsTagRecovery",
            # StartRecovery's tags land on the job and the recovery instances.
            actions=["drs:TagResource"],
            resources=[
                _arn(stack, "drs", "job/*"),
                _arn(stack, "drs", "recovery-instance/*"),
                _arn(stack, "drs", "source-server/*"),
            ],
        ),
        iam.PolicyStatement(
            sid="DrsLaunchThroughDrs",
            actions=list(DRS_LAUNCH_EC2_ACTIONS),
            resources=["*"],
            conditions=VIA_AWS_SERVICE,
        ),
        iam.PolicyStatement(
            sid="DrsPassRecoveryInstanceRole",
            actions=["iam:PassRole"],
            resources=[
                f"arn:{stack.partition}:iam::{stack.account}:role/service-role/"
                f"{config.recovery_instance_role_prefix}*"
            ],
            conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        iam.PolicyStatement(
            sid="DrillLaunchTemplates",
            # Drills point DRS's launch templates at the bubble network, then restore them.
            actions=["ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"],
            resources=[f"arn:{stack.partition}:ec2:*:{stack.account}:launch-template/*"],
        ),
        iam.PolicyStatement(
            sid="TagTwinsAndDrills",
            # Only the tags the service owns: the twin's launch-into tag, the bubble-test tags.
            actions=["ec2:CreateTags", "ec2:DeleteTags"],
            resources=[
                f"arn:{stack.partition}:ec2:*:{stack.account}:instance/*",
                f"arn:{stack.partition}:ec2:*:{stack.account}:launch-template/*",
            ],
            conditions={
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": [T.DRS_LAUNCH_INTO, *T.BUBBLE_TAG_KEYS]
                }
            },
        ),
        iam.PolicyStatement(
            sid="StopTwinsAfterFailback",
            actions=["ec2:StopInstances"],
            resources=[f"arn:{stack.partition}:ec2:*:{stack.account}:instance/*"],
            conditions={
                "StringEquals": {f"aws:ResourceTag/{T.DRS_LAUNCH_INTO}": T.DRS_LAUNCH_INTO_VALUE}
            },
        ),
        iam.PolicyStatement(
            sid="TerminateDrillInstances",
            # The drill janitor: only instances a drill launched (bubble-test tags).
            actions=["ec2:TerminateInstances"],
            resources=[f"arn:{stack.partition}:ec2:*:{stack.account}:instance/*"],
            conditions={"StringEquals": {f"aws:ResourceTag/{T.BUBBLE_ENABLED}": "true"}},
        ),
    ]


def eks_statements(stack: Stack, config: WorkloadConfig) -> list[iam.PolicyStatement]:
    """Read EKS clusters, node groups and add-ons; read failover records; invert or un-invert
    health checks (the only write); ask Route 53 for its DNS answer. Reading Kubernetes
    workloads needs an EKS access entry for this role on the DR cluster (see services/eks)."""
    return [
        iam.PolicyStatement(
            sid="EksRead",
            actions=[
                "eks:DescribeCluster",
                "eks:ListNodegroups",
                "eks:DescribeNodegroup",
                "eks:ListAddons",
                "eks:DescribeAddon",
            ],
            resources=[
                _arn(stack, "eks", "cluster/*"),
                _arn(stack, "eks", "nodegroup/*"),
                _arn(stack, "eks", "addon/*"),
            ],
        ),
        iam.PolicyStatement(
            sid="EksList",
            actions=["eks:ListClusters", "route53:TestDNSAnswer"],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="FailoverRecords",
            actions=["route53:ListResourceRecordSets"],
            resources=[f"arn:{stack.partition}:route53:::hostedzone/*"],
        ),
        iam.PolicyStatement(
            sid="FlipHealthChecks",
            actions=["route53:GetHealthCheck", "route53:UpdateHealthCheck"],
            resources=[f"arn:{stack.partition}:route53:::healthcheck/*"],
        ),
    ]


def sqlag_statements(stack: Stack, config: WorkloadConfig) -> list[iam.PolicyStatement]:
    """Find the replicas; run the module's PowerShell (AWS-RunPowerShellScript) only on
    instances carrying the module's tag; follow the commands; move the listener records."""
    return [
        iam.PolicyStatement(
            sid="SqlAgRead",
            actions=[
                "ec2:DescribeInstances",
                "ec2:DescribeVpcs",
                "ssm:GetCommandInvocation",
                "ssm:ListCommandInvocations",
            ],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="SqlAgRunPowerShell",
            actions=["ssm:SendCommand"],
            resources=[f"arn:{stack.partition}:ssm:*::document/AWS-RunPowerShellScript"],
        ),
        iam.PolicyStatement(
            sid="SqlAgReplicas",
            actions=["ssm:SendCommand"],
            resources=[f"arn:{stack.partition}:ec2:*:{stack.account}:instance/*"],
            conditions={"Null": {"ssm:resourceTag/dr:sqlag:ag-name": "false"}},
        ),
        iam.PolicyStatement(
            sid="SqlAgListener",
            actions=["route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets"],
            resources=[f"arn:{stack.partition}:route53:::hostedzone/*"],
        ),
        iam.PolicyStatement(
            sid="SqlAgListenerChange",
            actions=["route53:GetChange"],
            resources=[f"arn:{stack.partition}:route53:::change/*"],
        ),
    ]


def managed_statements(stack: Stack, config: WorkloadConfig) -> list[iam.PolicyStatement]:
    """Read and change EFS replication of the customer's file systems (tagged with a Customer);
    read load balancers, servers, caches and FSx file systems; fail Global Datastores over; read
    the fsxadmin secrets (tagged with a Customer) of FSx for NetApp ONTAP; move failover records
    and health checks; wait for Route 53 changes."""
    file_systems = _arn(stack, "elasticfilesystem", "file-system/*")
    return [
        iam.PolicyStatement(
            sid="ManagedList",
            actions=[
                "ec2:DescribeInstances",
                "elasticloadbalancing:DescribeLoadBalancers",
                "elasticloadbalancing:DescribeTags",
                "route53:ListHostedZonesByName",
            ],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="EfsRead",
            actions=[
                "elasticfilesystem:DescribeFileSystems",
                "elasticfilesystem:DescribeReplicationConfigurations",
            ],
            resources=[file_systems],
        ),
        iam.PolicyStatement(
            sid="EfsReplication",
            actions=[
                "elasticfilesystem:CreateReplicationConfiguration",
                "elasticfilesystem:DeleteReplicationConfiguration",
                "elasticfilesystem:UpdateFileSystemProtection",
            ],
            resources=[file_systems],
            conditions={"Null": {"aws:ResourceTag/Customer": "false"}},
        ),
        iam.PolicyStatement(
            sid="FsxRead",
            actions=["fsx:DescribeFileSystems"],
            resources=[_arn(stack, "fsx", "file-system/*")],
        ),
        iam.PolicyStatement(
            sid="CacheGlobalFailover",
            actions=[
                "elasticache:DescribeReplicationGroups",
                "elasticache:DescribeGlobalReplicationGroups",
                "elasticache:ListTagsForResource",
                "elasticache:FailoverGlobalReplicationGroup",
            ],
            resources=[
                f"arn:{stack.partition}:elasticache::{stack.account}:globalreplicationgroup:*",
                _arn(stack, "elasticache", "replicationgroup:*"),
            ],
        ),
        iam.PolicyStatement(
            sid="OntapAdminSecrets",
            actions=["secretsmanager:GetSecretValue"],
            resources=[_arn(stack, "secretsmanager", "secret:*")],
            conditions={"Null": {"aws:ResourceTag/Customer": "false"}},
        ),
        iam.PolicyStatement(
            sid="ManagedRecords",
            actions=[
                "route53:GetHostedZone",
                "route53:ListResourceRecordSets",
                "route53:ChangeResourceRecordSets",
            ],
            resources=[f"arn:{stack.partition}:route53:::hostedzone/*"],
        ),
        iam.PolicyStatement(
            sid="ManagedHealthChecks",
            actions=["route53:GetHealthCheck", "route53:UpdateHealthCheck"],
            resources=[f"arn:{stack.partition}:route53:::healthcheck/*"],
        ),
        iam.PolicyStatement(
            sid="ManagedChanges",
            actions=["route53:GetChange"],
            resources=[f"arn:{stack.partition}:route53:::change/*"],
        ),
    ]


# Service name -> what it may do in a workload account.
WORKLOAD_STATEMENTS: dict[str, Callable[[Stack, WorkloadConfig], list[iam.PolicyStatement]]] = {
    "discovery": discovery_statements,
    "coordinator": coordinator_statements,
    "drs": drs_statements,
    "eks": eks_statements,
    "sqlag": sqlag_statements,
    "managed": managed_statements,
}


def function_role_name(service: str) -> str:
    """The name the orchestration stack gives a service's Lambda role."""
    return f"dr-{service}-function"


class WorkloadAccessStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        services: Sequence[ServiceSpec],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            synthesizer=BootstraplessSynthesizer(),
            description="DR orchestration: the role the orchestration services assume here "
            "(StackSet-ready)",
            **kwargs,
        )
        orchestration_account = CfnParameter(
            self,
            "OrchestrationAccountId",
            type="String",
            default=config.orchestration.account,
            allowed_pattern=r"^\d{12}$",
            description="Account of the DR orchestration system",
        )
        external_id = CfnParameter(
            self,
            "ExternalId",
            type="String",
            no_echo=True,
            min_length=2,
            max_length=1224,
            description="This account's external id (customer registry: external_id)",
        )
        role_name = CfnParameter(
            self,
            "RoleName",
            type="String",
            default="dr-orchestrator-workload",
            description="Role name (customer registry: role_name)",
        )
        users = [
            s.name
            for s in services
            if SERVICE_ACCESS.get(s.name) and SERVICE_ACCESS[s.name].workload
        ]
        principal_arns = [
            Fn.sub(
                "arn:${AWS::Partition}:iam::${Account}:role/" + name,
                {"Account": orchestration_account.value_as_string},
            )
            for name in [*(function_role_name(s) for s in users), config.access.operator_role_name]
        ]
        role = iam.Role(
            self,
            "Role",
            role_name=role_name.value_as_string,
            assumed_by=iam.AccountPrincipal(orchestration_account.value_as_string).with_conditions(
                {
                    "StringEquals": {"sts:ExternalId": external_id.value_as_string},
                    "ArnEquals": {"aws:PrincipalArn": principal_arns},
                }
            ),
            description="Assumed by the DR orchestration services (external id required)",
        )
        for service in users:
            build = WORKLOAD_STATEMENTS.get(service)
            if build is None:
                continue
            policy = iam.ManagedPolicy(
                self,
                f"{service.title()}Policy",
                description=f"What the {service} service does in this account",
                statements=build(self, config.workload),
                roles=[role],
            )
            _acknowledge_workload_policy(policy, service, config.workload.hook_role_prefix)
        self.role = role


def _acknowledge_workload_policy(
    policy: iam.ManagedPolicy, service: str, hook_role_prefix: str
) -> None:
    account_any_region = "arn:<AWS::Partition>:{service}:*:<AWS::AccountId>:{resource}"
    if service == "discovery":
        acknowledge(
            policy,
            "The Resource Groups Tagging API (GetResources), EC2 DescribeInstances and "
            "DescribeImages and DRS DescribeSourceServers have no resource-level permissions; "
            "IAM requires Resource '*' for them.",
            "AwsSolutions-IAM5[Resource::*]",
        )
        acknowledge(
            policy,
            "Discovery searches the account's default Resource Explorer view, whose id is "
            "made by Resource Explorer; any view of this account, read-only.",
            "AwsSolutions-IAM5[Resource::"
            + account_any_region.format(service="resource-explorer-2", resource="view/*")
            + "]",
        )
    if service == "coordinator":
        for resource in ("automation-definition/*", "automation-execution/*"):
            acknowledge(
                policy,
                "Hook documents are named per customer in Parameter Store and executions get "
                "their ids from SSM at run time; only this account's, never another's.",
                "AwsSolutions-IAM5[Resource::"
                + account_any_region.format(service="ssm", resource=resource)
                + "]",
            )
        acknowledge(
            policy,
            "A hook document that runs with its own AutomationAssumeRole may pass only roles "
            "named with the configured hook prefix, and only to SSM.",
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/"
            f"{hook_role_prefix}*]",
        )
    if service == "eks":
        acknowledge(
            policy,
            "EKS ListClusters and Route 53 TestDNSAnswer have no resource-level permissions; "
            "IAM requires Resource '*' for them (both read-only).",
            "AwsSolutions-IAM5[Resource::*]",
        )
        for resource in ("cluster/*", "nodegroup/*", "addon/*"):
            acknowledge(
                policy,
                "Clusters are named by the customer's tags, found at run time; read-only.",
                "AwsSolutions-IAM5[Resource::"
                + account_any_region.format(service="eks", resource=resource)
                + "]",
            )
        for resource in ("hostedzone/*", "healthcheck/*"):
            acknowledge(
                policy,
                "Hosted zones and health checks are named by the cluster's dr:eks:records tag "
                "and its failover records at run time; the only write inverts a health check.",
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:route53:::{resource}]",
            )
    if service == "managed":
        acknowledge(
            policy,
            "EC2 DescribeInstances, ELB DescribeLoadBalancers / DescribeTags and Route 53 "
            "ListHostedZonesByName have no resource-level permissions; IAM requires Resource "
            "'*' for them (read-only).",
            "AwsSolutions-IAM5[Resource::*]",
        )
        acknowledge(
            policy,
            "File systems are found by the customer's DR tags at run time; replication changes "
            "are limited to file systems tagged with a Customer.",
            "AwsSolutions-IAM5[Resource::"
            + account_any_region.format(service="elasticfilesystem", resource="file-system/*")
            + "]",
        )
        for resource in ("hostedzone/*", "healthcheck/*", "change/*"):
            acknowledge(
                policy,
                "Zones and records are named by the resource's dr:managed:dns-record tag, health "
                "checks by its failover records, change ids by Route 53, all at run time.",
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:route53:::{resource}]",
            )
        acknowledge(
            policy,
            "Global Datastores and their member replication groups are found from the cache's "
            "GlobalReplicationGroupInfo at run time; reads, and the failover as only write.",
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:elasticache::<AWS::AccountId>:"
            "globalreplicationgroup:*]",
            "AwsSolutions-IAM5[Resource::"
            + account_any_region.format(service="elasticache", resource="replicationgroup:*")
            + "]",
        )
        acknowledge(
            policy,
            "The fsxadmin secret is named by the file system's dr:managed:ontap-secret tag at "
            "run time; read only, and only secrets tagged with a Customer.",
            "AwsSolutions-IAM5[Resource::"
            + account_any_region.format(service="secretsmanager", resource="secret:*")
            + "]",
        )
        acknowledge(
            policy,
            "FSx file systems are named by the resource's ARN and its dr:managed:dr-file-system "
            "tag at run time; read-only.",
            "AwsSolutions-IAM5[Resource::"
            + account_any_region.format(service="fsx", resource="file-system/*")
            + "]",
        )
    if service == "sqlag":
        acknowledge(
            policy,
            "EC2 Describe* and SSM GetCommandInvocation / ListCommandInvocations have no "
            "resource-level permissions; IAM requires Resource '*' for them (read-only).",
            "AwsSolutions-IAM5[Resource::*]",
        )
        acknowledge(
            policy,
            "Replica instances are named by the primary replica's dr:sqlag tags at run time; "
            "SendCommand is limited to instances carrying dr:sqlag:ag-name and to the "
            "AWS-RunPowerShellScript document.",
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:*:<AWS::AccountId>:instance/*]",
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:*::document/"
            "AWS-RunPowerShellScript]",
        )
        for resource in ("hostedzone/*", "change/*"):
            acknowledge(
                policy,
                "The listener's hosted zone is named by the dr:sqlag:hosted-zone tag and change "
                "ids are made by Route 53 at run time.",
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:route53:::{resource}]",
            )
    if service == "drs":
        acknowledge(
            policy,
            "DRS, EC2 and Service Quotas listings have no resource-level permissions, and the "
            "EC2 calls DRS makes while launching (allowed only through DRS, aws:ViaAWSService) "
            "act on resources that do not exist yet.",
            "AwsSolutions-IAM5[Resource::*]",
        )
        for resource in ("launch-template/*", "instance/*"):
            acknowledge(
                policy,
                "Drills edit DRS's launch templates and tag or stop twins and drill instances "
                "whose ids are only known at run time; tags are limited to the service's own "
                "keys, stop and terminate to instances carrying its tags.",
                "AwsSolutions-IAM5[Resource::"
                + account_any_region.format(service="ec2", resource=resource)
                + "]",
            )
        for resource in ("job/*", "recovery-instance/*", "source-server/*"):
            acknowledge(
                policy,
                "DRS ids (jobs, source servers, recovery instances) are made by DRS at run "
                "time; mutating calls on source servers are further limited by their DR tag.",
                "AwsSolutions-IAM5[Resource::"
                + account_any_region.format(service="drs", resource=resource)
                + "]",
            )
        acknowledge(
            policy,
            "DRS passes its own recovery-instance role (created by DRS at initialisation under "
            "/service-role/, name prefix configurable) to the instances it launches.",
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/"
            "service-role/AWSElasticDisasterRecovery*]",
        )


class WorkloadEventForwardingStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: InfraConfig, **kwargs: Any
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            synthesizer=BootstraplessSynthesizer(),
            description="DR orchestration: forwards native DRS/SSM events to the orchestration "
            "bus (StackSet-ready, one per DR region)",
            **kwargs,
        )
        orchestration = config.orchestration
        bus_arn = CfnParameter(
            self,
            "OrchestrationBusArn",
            type="String",
            default=(
                f"arn:aws:events:{orchestration.region}:{orchestration.account}:"
                f"event-bus/{orchestration.bus_name}"
            ),
            description="The orchestration bus",
        )
        role = iam.Role(
            self,
            "ForwarderRole",
            role_name=Fn.sub("dr-orchestrator-forwarder-${AWS::Region}"),
            assumed_by=iam.ServicePrincipal(
                "events.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            ),
            description="EventBridge: forward native DRS/SSM events to the orchestration bus",
        )
        iam.ManagedPolicy(
            self,
            "ForwarderPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="PutOnOrchestrationBus",
                    actions=["events:PutEvents"],
                    resources=[bus_arn.value_as_string],
                )
            ],
            roles=[role],
        )
        events.CfnRule(
            self,
            "ForwardNativeEvents",
            name=FORWARD_RULE_NAME,
            description="Native DRS and SSM events to the DR orchestration bus",
            event_pattern={"source": [s.value for s in NATIVE_SOURCES]},
            state="ENABLED",
            targets=[
                events.CfnRule.TargetProperty(
                    id="orchestration-bus", arn=bus_arn.value_as_string, role_arn=role.role_arn
                )
            ],
        )
