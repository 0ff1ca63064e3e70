"""The orchestration stack (DR region): everything the sandbox runtime builds, for real.

Built from the same declarations as `sandbox/runtime.py`: the services' `ServiceSpec`s (one rule
per subscription with exactly `Subscription.pattern()`, one queue and dead-letter queue per
service), `drcore.tables.TABLES`, the archive and audit names of `drcore.audit`, the native
sources the workload accounts forward. Added for production: one KMS key for all of it, Lambda
functions with their own least-privilege roles, backups, SNS topics, the operator and approver
roles and the bus policy that reserves `dr.cli` / `dr.approval` to them, the schema registry,
the customer registry in Parameter Store, dashboards and alarms (`infra/monitoring.py`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aws_cdk import CfnElement, Duration, RemovalPolicy, Stack
from aws_cdk import aws_backup as backup
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_eventschemas as eventschemas
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from drcore.audit import ARCHIVE_NAME, AUDIT_QUEUE_NAME, AUDIT_RULE_NAME, audit_rule_pattern
from drcore.observability import METRICS_NAMESPACE
from drcore.registry import parameter_name
from drcore.settings import Settings
from drcore.subscriptions import ServiceSpec, Subscription
from drcore.tables import TABLES, TableSpec, table_name
from events.schemas import DetailType, Source

from .access import REGISTRY_PATH, SERVICE_ACCESS, ServiceAccess
from .bundling import assemble
from .config import LOG_RETENTION_DAYS, InfraConfig
from .nag import acknowledge
from .schemas import REGISTRY_NAME, registry_schemas

DLQ_RETENTION = Duration.days(14)
# EventBridge's own delivery retries to a target before it goes to the target's DLQ.
RULE_RETRY = {"maximumEventAgeInSeconds": 24 * 3600, "maximumRetryAttempts": 185}
SCHEDULE_GROUP = "dr-orchestration"
# Coordinator events people are told about (approvals have their own topic).
ALERT_DETAIL_TYPES = (
    DetailType.OPERATION_FAILED,
    DetailType.WAVE_FAILED,
    DetailType.OPERATION_PAUSED,
)


def logical_id(stack: Stack, construct: Construct) -> str:
    """The CloudFormation logical id of an L2 construct's resource (as cdk-nag names it)."""
    return stack.get_logical_id(cast(CfnElement, construct.node.default_child))


def settings_for(config: InfraConfig) -> Settings:
    """The services' settings as deployed (defaults, never this machine's DR_* variables)."""
    return Settings.model_construct().model_copy(
        update={
            "bus_name": config.orchestration.bus_name,
            "orchestration_region": config.orchestration.region,
            "orchestration_account": config.orchestration.account,
        }
    )


def function_environment(settings: Settings, service: str, log_level: str) -> dict[str, str]:
    names = ["bus_name", "orchestration_region", "orchestration_account", "workload_role_name"]
    names += [name for name in Settings.model_fields if name.endswith("_table")]
    env = {f"DR_{name.upper()}": str(getattr(settings, name)) for name in names}
    env.update(
        {
            "POWERTOOLS_SERVICE_NAME": service,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": log_level,
        }
    )
    return env


def schedule_expression(rate_seconds: int) -> str:
    """EventBridge Scheduler rates are whole minutes: round up, at least one."""
    minutes = max(1, math.ceil(rate_seconds / 60))
    return f"rate({minutes} minute{'s' if minutes > 1 else ''})"


@dataclass
class DeployedService:
    spec: ServiceSpec
    queue: sqs.Queue
    dlq: sqs.Queue
    function: lambda_.Function
    rules: list[events.CfnRule]


class OrchestrationStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        services: Sequence[ServiceSpec],
        build_dir: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.settings = settings_for(config)
        orchestration = config.orchestration

        self.key = kms.Key(
            self,
            "Key",
            alias="alias/dr-orchestration",
            description="Encrypts the DR orchestration bus, archive, queues, tables, topics, logs",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self._key_policy()

        # Events EventBridge cannot encrypt or decrypt with the key land here (AWS recommends a
        # dead-letter queue for every bus encrypted with a customer managed key).
        self.bus_dlq = self._queue(
            "BusDlq", f"{orchestration.bus_name}-bus-dlq", retention_period=DLQ_RETENTION
        )
        self.bus = events.EventBus(
            self,
            "Bus",
            event_bus_name=orchestration.bus_name,
            kms_key=self.key,
            dead_letter_queue=self.bus_dlq,
        )
        self.bus_dlq.add_to_resource_policy(
            iam.PolicyStatement(
                sid="FromOwnBus",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[self.bus_dlq.queue_arn],
                conditions={"ArnEquals": {"aws:SourceArn": self.bus.event_bus_arn}},
            )
        )
        acknowledge(
            self.bus_dlq,
            "This queue is the bus's own dead-letter queue (events EventBridge could not "
            "encrypt or decrypt); a dead-letter queue of a dead-letter queue would hold nothing.",
            "AwsSolutions-SQS3",
        )
        self.archive = events.CfnArchive(
            self,
            "Archive",
            archive_name=ARCHIVE_NAME,
            source_arn=self.bus.event_bus_arn,
            retention_days=orchestration.archive_retention_days,
            kms_key_identifier=self.key.key_arn,
            description="Every orchestration event, for audit and replay",
        )
        self._schema_registry()

        self.table_specs = {spec.logical_name: spec for spec in TABLES}
        self.tables = {spec.logical_name: self._table(spec) for spec in TABLES}
        self._backups()

        self.approvals_topic = self._topic(
            "Approvals",
            getattr(self.settings, "approval_topic_name", "dr-approvals"),
            config.notifications.approval_emails,
        )
        self.alerts_topic = self._topic("Alerts", "dr-alerts", config.notifications.alert_emails)

        self.services = [self._service(spec, build_dir) for spec in services]
        self._schedules()
        self._notification_rules()
        self.audit_queue = self._audit_destination()
        self._registry()
        self.operator_role = self._people_role(
            "Operator", config.access.operator_role_name, config.access.operator_principals
        )
        self.approver_role = self._people_role(
            "Approver", config.access.approver_role_name, config.access.approver_principals
        )
        self._operator_policy()
        self._approver_policy()
        self._bus_policy()

    # --- encryption ------------------------------------------------------------------------

    def _key_policy(self) -> None:
        account_condition = {"StringEquals": {"aws:SourceAccount": self.account}}
        # EventBridge encrypts the bus and archive and delivers to encrypted queues and topics;
        # CloudWatch alarms publish to the encrypted alerts topic.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeAndAlarms",
                principals=[
                    iam.ServicePrincipal("events.amazonaws.com"),
                    iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                ],
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions=account_condition,
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:*"
                        )
                    }
                },
            )
        )

    def _kms_use(self) -> iam.PolicyStatement:
        """The key, only through the services that encrypt with it for the caller (queues,
        bus, topics, tables): never to encrypt or decrypt data directly."""
        return iam.PolicyStatement(
            sid="KeyThroughServices",
            actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            resources=[self.key.key_arn],
            conditions={
                "StringEquals": {
                    "kms:ViaService": [
                        f"{service}.{self.region}.amazonaws.com"
                        for service in ("sqs", "events", "sns", "dynamodb")
                    ]
                }
            },
        )

    # --- bus, schemas, tables ----------------------------------------------------------------

    def _schema_registry(self) -> None:
        registry = eventschemas.CfnRegistry(
            self,
            "SchemaRegistry",
            registry_name=REGISTRY_NAME,
            description="The DR orchestration event contract (events/schemas)",
        )
        for schema in registry_schemas():
            resource = eventschemas.CfnSchema(
                self,
                f"Schema{schema.detail_type}V{schema.version}",
                registry_name=REGISTRY_NAME,
                schema_name=schema.name,
                type="JSONSchemaDraft4",
                content=json.dumps(schema.content, sort_keys=True),
                description=f"{schema.detail_type} v{schema.version}",
            )
            resource.add_resource_dependency(registry)

    def _table(self, spec: TableSpec) -> dynamodb.Table:
        def attribute(name: str) -> dynamodb.Attribute:
            return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)

        table = dynamodb.Table(
            self,
            f"Table{spec.logical_name.title()}",
            table_name=table_name(spec, self.settings),
            partition_key=attribute(spec.partition_key),
            sort_key=attribute(spec.sort_key) if spec.sort_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            time_to_live_attribute=spec.ttl_attribute,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=attribute(index.partition_key),
                sort_key=attribute(index.sort_key) if index.sort_key else None,
                projection_type=dynamodb.ProjectionType.ALL,
            )
        return table

    def _backups(self) -> None:
        vault = backup.BackupVault(
            self,
            "BackupVault",
            backup_vault_name="dr-orchestration",
            encryption_key=self.key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        plan = backup.BackupPlan(self, "BackupPlan", backup_plan_name="dr-orchestration")
        plan.add_rule(
            backup.BackupPlanRule(
                rule_name="daily",
                backup_vault=vault,
                schedule_expression=events.Schedule.cron(hour="5", minute="0"),
                delete_after=Duration.days(self.config.orchestration.backup_retention_days),
            )
        )
        selection = plan.add_selection(
            "Tables",
            resources=[backup.BackupResource.from_dynamo_db_table(t) for t in self.tables.values()],
        )
        acknowledge(
            selection,
            "The backup selection's role uses AWS's own service-role policy for AWS Backup "
            "(AWSBackupServiceRolePolicyForBackup), which AWS maintains as services evolve.",
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSBackupServiceRolePolicyForBackup]",
        )

    def _topic(self, construct_id: str, name: str, emails: list[str]) -> sns.Topic:
        topic = sns.Topic(
            self, construct_id, topic_name=name, master_key=self.key, enforce_ssl=True
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeAndAlarms",
                principals=[
                    iam.ServicePrincipal("events.amazonaws.com"),
                    iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                ],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        for email in emails:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        return topic

    # --- services ----------------------------------------------------------------------------

    def _queue(self, construct_id: str, name: str, **kwargs: Any) -> sqs.Queue:
        return sqs.Queue(
            self,
            construct_id,
            queue_name=name,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            enforce_ssl=True,
            **kwargs,
        )

    def _service(self, spec: ServiceSpec, build_dir: Path) -> DeployedService:
        cid = "".join(part.title() for part in spec.name.split("-"))
        dlq = self._queue(f"{cid}Dlq", spec.dlq_name(), retention_period=DLQ_RETENTION)
        queue = self._queue(
            f"{cid}Queue",
            spec.queue_name(),
            visibility_timeout=Duration.seconds(spec.visibility_timeout),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=spec.max_receive_count, queue=dlq
            ),
        )
        rules = [self._rule(spec, subscription, queue, dlq) for subscription in spec.subscriptions]
        rule_arns = [rule.attr_arn for rule in rules]
        if rule_arns:
            for target in (queue, dlq):
                target.add_to_resource_policy(
                    iam.PolicyStatement(
                        sid="FromOwnRules",
                        principals=[iam.ServicePrincipal("events.amazonaws.com")],
                        actions=["sqs:SendMessage"],
                        resources=[target.queue_arn],
                        conditions={"ArnEquals": {"aws:SourceArn": rule_arns}},
                    )
                )
        function = self._function(spec, cid, queue, dlq, build_dir)
        lambda_.EventSourceMapping(
            self,
            f"{cid}Consumer",
            target=function,
            event_source_arn=queue.queue_arn,
            batch_size=spec.batch_size,
            # Lambda takes whole seconds here; a fractional window is rounded up.
            max_batching_window=(
                Duration.seconds(math.ceil(spec.batching_window_seconds))
                if spec.batching_window_seconds > 0
                else None
            ),
            report_batch_item_failures=True,
            max_concurrency=max(2, self.config.lambda_.reserved_concurrency),
        )
        return DeployedService(spec, queue, dlq, function, rules)

    def _rule(
        self, spec: ServiceSpec, subscription: Subscription, queue: sqs.Queue, dlq: sqs.Queue
    ) -> events.CfnRule:
        name = spec.rule_name(subscription)
        cid = "Rule" + "".join(p.title() for p in name.removeprefix("dr-").split("-"))
        return events.CfnRule(
            self,
            cid,
            name=name,
            event_bus_name=self.bus.event_bus_name,
            event_pattern=subscription.pattern(),
            state="ENABLED",
            targets=[
                events.CfnRule.TargetProperty(
                    id=spec.queue_name(),
                    arn=queue.queue_arn,
                    retry_policy=events.CfnRule.RetryPolicyProperty(
                        maximum_event_age_in_seconds=RULE_RETRY["maximumEventAgeInSeconds"],
                        maximum_retry_attempts=RULE_RETRY["maximumRetryAttempts"],
                    ),
                    dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=dlq.queue_arn),
                )
            ],
        )

    def _function(
        self, spec: ServiceSpec, cid: str, queue: sqs.Queue, dlq: sqs.Queue, build_dir: Path
    ) -> lambda_.Function:
        lambda_config = self.config.lambda_
        name = f"dr-{spec.name}"
        log_group = logs.LogGroup(
            self,
            f"{cid}Logs",
            log_group_name=f"/aws/lambda/{name}",
            encryption_key=self.key,
            retention=logs.RetentionDays[
                LOG_RETENTION_DAYS[self.config.orchestration.log_retention_days]
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        role = iam.Role(
            self,
            f"{cid}Role",
            role_name=f"{name}-function",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"The {spec.name} service's Lambda function",
        )
        policy = iam.ManagedPolicy(
            self,
            f"{cid}Policy",
            managed_policy_name=f"{name}-function",
            statements=self._service_statements(spec, queue, dlq, log_group),
        )
        role.add_managed_policy(policy)
        access = SERVICE_ACCESS.get(spec.name, ServiceAccess())
        self._acknowledge_service_policy(policy, spec, access)

        package = assemble(spec, build_dir, lambda_config.bundled_distributions)
        layers = [
            lambda_.LayerVersion.from_layer_version_arn(self, f"{cid}Layer{i}", arn)
            for i, arn in enumerate(lambda_config.layer_arns(self.region))
        ]
        module, _, handler = spec.handler.partition(":")
        function = lambda_.Function(
            self,
            f"{cid}Function",
            function_name=name,
            description=f"DR orchestration: {spec.name} ({spec.handler})",
            runtime=lambda_.Runtime(lambda_config.runtime, lambda_.RuntimeFamily.PYTHON),
            architecture=lambda_.Architecture.ARM_64,
            handler=f"{module}.{handler}",
            code=lambda_.Code.from_asset(str(package.path)),
            layers=layers,
            memory_size=lambda_config.memory_mb,
            # SQS requires the queue's visibility timeout to cover the function's timeout.
            timeout=Duration.seconds(min(spec.visibility_timeout, 900)),
            reserved_concurrent_executions=lambda_config.reserved_concurrency,
            environment=function_environment(self.settings, spec.name, lambda_config.log_level),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            # Only asynchronous invocations would land here; SQS deliveries use the redrive.
            dead_letter_queue=dlq,
            role=role.without_policy_updates(),
        )
        function.node.add_dependency(policy)
        acknowledge(
            function,
            "The function calls AWS APIs only (EventBridge, SQS, DynamoDB, SSM, STS, and DRS, "
            "EC2 and Resource Explorer in workload accounts in other regions), over TLS with "
            "SigV4; interface endpoints cannot reach other regions and accounts, so it runs "
            "outside a VPC and holds no network listener.",
            "HIPAA.Security-LambdaInsideVPC",
        )
        if lambda_config.runtime != lambda_.Runtime.PYTHON_3_14.name:
            acknowledge(
                function,
                f"Pinned to {lambda_config.runtime}, the newest Python for which the configured "
                "Powertools layer (pydantic-core compiled for arm64) is published; raise "
                "lambda.runtime in the configuration when the layer is.",
                "AwsSolutions-L1",
            )
        return function

    def _service_statements(
        self, spec: ServiceSpec, queue: sqs.Queue, dlq: sqs.Queue, log_group: logs.LogGroup
    ) -> list[iam.PolicyStatement]:
        access = SERVICE_ACCESS.get(spec.name, ServiceAccess())
        statements = [
            iam.PolicyStatement(
                sid="Logs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="Traces",
                actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                resources=["*"],  # X-Ray has no resource-level permissions
            ),
            iam.PolicyStatement(
                sid="ConsumeOwnQueue",
                actions=[
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                resources=[queue.queue_arn],
            ),
            # Malformed records go to the DLQ with their reason (drcore.consumer.SqsDeadLetter).
            iam.PolicyStatement(
                sid="SendToOwnDeadLetterQueue",
                actions=["sqs:SendMessage", "sqs:GetQueueUrl"],
                resources=[dlq.queue_arn],
            ),
            self._kms_use(),
        ]
        if spec.self_scheduling or access.sends_to_own_queue:
            statements.append(
                iam.PolicyStatement(
                    sid="SendToOwnQueue",
                    actions=["sqs:SendMessage", "sqs:GetQueueUrl"],
                    resources=[queue.queue_arn],
                )
            )
        if access.publishes:
            statements.append(
                iam.PolicyStatement(
                    sid="PublishOwnEvents",
                    actions=["events:PutEvents"],
                    resources=[self.bus.event_bus_arn],
                    conditions={
                        "StringEquals": {"events:source": [s.value for s in access.publishes]}
                    },
                )
            )
        for logical, actions in sorted(access.tables.items()):
            table = self.tables.get(logical)
            if table is None:
                continue
            statements.append(
                iam.PolicyStatement(
                    sid=f"Table{logical.title()}",
                    actions=sorted(set(actions)),
                    resources=self._table_resources(logical),
                )
            )
        if access.parameters:
            statements.append(
                iam.PolicyStatement(
                    sid="Parameters",
                    actions=["ssm:GetParameter", "ssm:GetParametersByPath"],
                    resources=[arn for path in access.parameters for arn in self._path_arns(path)],
                )
            )
        topics = {"approvals": self.approvals_topic, "alerts": self.alerts_topic}
        if access.topics:
            statements.append(
                iam.PolicyStatement(
                    sid="Notify",
                    actions=["sns:Publish"],
                    resources=[topics[name].topic_arn for name in access.topics],
                )
            )
        roles = sorted(
            {
                f"arn:{self.partition}:iam::{c.account}:role/{c.role_name}"
                for c in self.config.customers
            }
        )
        if access.workload and roles:
            statements.append(
                iam.PolicyStatement(
                    sid="WorkloadAccounts",
                    actions=["sts:AssumeRole"],
                    resources=roles,
                )
            )
        return statements

    def _acknowledge_service_policy(
        self, policy: iam.ManagedPolicy, spec: ServiceSpec, access: ServiceAccess
    ) -> None:
        acknowledge(
            policy,
            "X-Ray trace submission (PutTraceSegments, PutTelemetryRecords) has no "
            "resource-level permissions; IAM requires Resource '*' for it.",
            "AwsSolutions-IAM5[Resource::*]",
        )
        for logical in sorted(access.tables):
            if logical in self.tables and self.table_specs[logical].indexes:
                table = self.stack_logical(self.tables[logical])
                acknowledge(
                    policy,
                    f"Access to the {logical} table includes its global secondary indexes "
                    "(`<table>/index/*`): queries by scope go through them.",
                    f"AwsSolutions-IAM5[Resource::<{table}.Arn>/index/*]",
                )
        for path in access.parameters:
            acknowledge(
                policy,
                f"Parameters under {path} are one per customer (or customer and environment), "
                "written from the configuration; the service reads that path only.",
                self._wildcard_finding(f"{path}*"),
            )

    def _path_arns(self, path: str) -> list[str]:
        """A Parameter Store path (for GetParametersByPath) and the parameters under it."""
        name = path.strip("/")
        return [
            self.format_arn(service="ssm", resource="parameter", resource_name=name),
            self.format_arn(service="ssm", resource="parameter", resource_name=f"{name}/*"),
        ]

    def _table_resources(self, logical: str) -> list[str]:
        """A table and, when it has global secondary indexes, its indexes."""
        arn = self.tables[logical].table_arn
        return [arn, f"{arn}/index/*"] if self.table_specs[logical].indexes else [arn]

    def _wildcard_finding(self, path: str, service: str = "ssm") -> str:
        """The IAM5 finding id of a wildcard ARN of this stack's account and region."""
        resource = f"parameter{path}" if service == "ssm" else path.lstrip("/")
        return (
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:{service}:{self.region}:"
            f"{self.account}:{resource}]"
        )

    def stack_logical(self, construct: Construct) -> str:
        return logical_id(self, construct)

    # --- schedules, notifications, audit, registry ---------------------------------------------

    def _schedules(self) -> None:
        scheduled = [s for s in self.services if s.spec.schedules]
        if not scheduled:
            return
        group = scheduler.CfnScheduleGroup(self, "ScheduleGroup", name=SCHEDULE_GROUP)
        role = iam.Role(
            self,
            "SchedulerRole",
            role_name="dr-scheduler",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            ),
            description="EventBridge Scheduler: recurring messages to the service queues",
        )
        policy = iam.ManagedPolicy(
            self,
            "SchedulerPolicy",
            managed_policy_name="dr-scheduler",
            statements=[
                iam.PolicyStatement(
                    sid="SendToServiceQueues",
                    actions=["sqs:SendMessage"],
                    resources=sorted(
                        {q for s in scheduled for q in (s.queue.queue_arn, s.dlq.queue_arn)}
                    ),
                ),
                self._kms_use(),
            ],
        )
        role.add_managed_policy(policy)
        for service in scheduled:
            for schedule in service.spec.schedules:
                cid = "Schedule" + "".join(
                    p.title() for p in f"{service.spec.name}-{schedule.name}".split("-")
                )
                resource = scheduler.CfnSchedule(
                    self,
                    cid,
                    name=f"dr-{service.spec.name}-{schedule.name}",
                    group_name=SCHEDULE_GROUP,
                    schedule_expression=schedule_expression(schedule.rate_seconds),
                    flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(
                        mode="OFF"
                    ),
                    target=scheduler.CfnSchedule.TargetProperty(
                        arn=service.queue.queue_arn,
                        role_arn=role.role_arn,
                        input=json.dumps(schedule.message, sort_keys=True),
                        retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                            maximum_event_age_in_seconds=max(60, schedule.rate_seconds),
                            maximum_retry_attempts=3,
                        ),
                        dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(
                            arn=service.dlq.queue_arn
                        ),
                    ),
                    description=f"{schedule.name}: every {schedule.rate_seconds} s "
                    f"to {service.spec.queue_name()}",
                )
                resource.add_resource_dependency(group)
                resource.node.add_dependency(policy)

    def _notification_rules(self) -> None:
        """Failed operations and waves, and paused operations, to the alerts topic. The pattern
        excludes replays, like every service subscription."""
        # Approval requests reach the approvals topic from the coordinator itself (with their
        # one-time token and escalations); failures and pauses reach the alerts topic here.
        routes = (("NotifyAlerts", "dr-notify-alerts", ALERT_DETAIL_TYPES, self.alerts_topic),)
        self.notification_rules: dict[str, events.CfnRule] = {}
        for cid, name, detail_types, topic in routes:
            pattern = Subscription(
                name=name, sources=(Source.COORDINATOR,), detail_types=detail_types
            ).pattern()
            self.notification_rules[name] = events.CfnRule(
                self,
                cid,
                name=name,
                event_bus_name=self.bus.event_bus_name,
                event_pattern=pattern,
                state="ENABLED",
                targets=[
                    events.CfnRule.TargetProperty(
                        id=topic.node.id.lower(),
                        arn=topic.topic_arn,
                        retry_policy=events.CfnRule.RetryPolicyProperty(
                            maximum_event_age_in_seconds=RULE_RETRY["maximumEventAgeInSeconds"],
                            maximum_retry_attempts=RULE_RETRY["maximumRetryAttempts"],
                        ),
                    )
                ],
            )

    def _audit_destination(self) -> sqs.Queue:
        """`drctl audit` replays an operation's archived events into this queue through a rule
        that only replayed events match (drcore.audit)."""
        queue = self._queue("AuditQueue", AUDIT_QUEUE_NAME, retention_period=Duration.days(1))
        rule = events.CfnRule(
            self,
            "AuditRule",
            name=AUDIT_RULE_NAME,
            event_bus_name=self.bus.event_bus_name,
            event_pattern=audit_rule_pattern(),
            state="ENABLED",
            targets=[events.CfnRule.TargetProperty(id="audit", arn=queue.queue_arn)],
        )
        queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="FromAuditRule",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[queue.queue_arn],
                conditions={"ArnEquals": {"aws:SourceArn": rule.attr_arn}},
            )
        )
        self.audit_rule = rule
        acknowledge(
            queue,
            "The audit queue only holds replayed copies of archived events while `drctl audit` "
            "reads them; nothing redrives it, a dead-letter queue would hold nothing useful.",
            "AwsSolutions-SQS3",
        )
        return queue

    def _registry(self) -> None:
        """The customer registry the services read (drcore.registry), one parameter each."""
        for customer in self.config.customers:
            ssm.StringParameter(
                self,
                f"Registry{''.join(p.title() for p in customer.name.replace('.', '-').split('-'))}",
                parameter_name=parameter_name(customer.name),
                string_value=customer.registry_entry().model_dump_json(),
                description=f"DR customer registry: {customer.name}",
            )

    # --- people and the bus policy -----------------------------------------------------------

    def _people_role(self, cid: str, name: str, principals: list[str]) -> iam.Role:
        return iam.Role(
            self,
            f"{cid}Role",
            role_name=name,
            assumed_by=iam.CompositePrincipal(*(iam.ArnPrincipal(p) for p in principals)),
            max_session_duration=Duration.hours(self.config.access.max_session_hours),
            description=f"DR orchestration {cid.lower()}s",
        )

    def _read_tables(self, *logical: str) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            sid="ReadTables",
            actions=["dynamodb:GetItem", "dynamodb:Query"],
            resources=[arn for name in logical if name in self.tables
                       for arn in self._table_resources(name)],
        )  # fmt: skip

    def _put(self, source: Source) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            sid="PutOwnEvents",
            actions=["events:PutEvents"],
            resources=[self.bus.event_bus_arn],
            conditions={"StringEquals": {"events:source": source.value}},
        )

    def _operator_policy(self) -> None:
        statements = [
            self._put(Source.CLI),
            # drctl status / list / watch / report (operations), inventory / readiness (cache).
            self._read_tables("operations", "inventory"),
            self._kms_use(),
            iam.PolicyStatement(
                sid="CustomerRegistry",
                actions=["ssm:GetParameter", "ssm:GetParametersByPath"],
                resources=self._path_arns(REGISTRY_PATH),
            ),
            # drctl audit: replay one operation's archived events into the audit queue.
            iam.PolicyStatement(
                sid="AuditReplay",
                actions=["events:DescribeArchive", "events:StartReplay"],
                resources=[self.archive.attr_arn],
            ),
            iam.PolicyStatement(
                sid="AuditReplayStatus",
                actions=["events:DescribeReplay"],
                resources=[self.format_arn(service="events", resource="replay", resource_name="*")],
            ),
            iam.PolicyStatement(
                sid="AuditRule",
                actions=["events:DescribeRule"],
                resources=[self.audit_rule.attr_arn],
            ),
            iam.PolicyStatement(
                sid="AuditQueue",
                actions=[
                    "sqs:GetQueueUrl",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                ],
                resources=[self.audit_queue.queue_arn],
            ),
        ]
        discovery = next((s for s in self.services if s.spec.name == "discovery"), None)
        if discovery is not None:
            # drctl inventory refresh asks discovery for a new inventory version.
            statements.append(
                iam.PolicyStatement(
                    sid="RequestInventoryRefresh",
                    actions=["sqs:GetQueueUrl", "sqs:SendMessage"],
                    resources=[discovery.queue.queue_arn],
                )
            )
        roles = sorted(
            {
                f"arn:{self.partition}:iam::{c.account}:role/{c.role_name}"
                for c in self.config.customers
            }
        )
        if roles:
            # drctl plan and readiness look at workload accounts with the operator's credentials.
            statements.append(
                iam.PolicyStatement(
                    sid="WorkloadAccounts", actions=["sts:AssumeRole"], resources=roles
                )
            )
        policy = iam.ManagedPolicy(
            self,
            "OperatorPolicy",
            managed_policy_name=self.config.access.operator_role_name,
            statements=statements,
            roles=[self.operator_role],
        )
        acknowledge(
            policy,
            "Read access to the operations table includes its by-scope index (`drctl list`).",
            f"AwsSolutions-IAM5[Resource::<{self.stack_logical(self.tables['operations'])}"
            ".Arn>/index/*]",
        )
        acknowledge(
            policy,
            "The customer registry is one Parameter Store parameter per customer; drctl plan "
            "reads them all (GetParametersByPath).",
            self._wildcard_finding(parameter_name("*")),
        )
        acknowledge(
            policy,
            "Replay names are made per audit run (audit-<time>-<operation>), so DescribeReplay "
            "cannot name them in advance; it only reads a replay's state.",
            self._wildcard_finding("/replay/*", service="events"),
        )

    def _approver_policy(self) -> None:
        policy = iam.ManagedPolicy(
            self,
            "ApproverPolicy",
            managed_policy_name=self.config.access.approver_role_name,
            statements=[
                self._put(Source.APPROVAL),
                self._read_tables("operations"),
                self._kms_use(),
            ],
            roles=[self.approver_role],
        )
        acknowledge(
            policy,
            "Approvers read the operation they approve, including the by-scope index.",
            f"AwsSolutions-IAM5[Resource::<{self.stack_logical(self.tables['operations'])}"
            ".Arn>/index/*]",
        )

    def _bus_policy(self) -> None:
        """Only the operator role may put `dr.cli` events and only the approver role
        `dr.approval` events, whoever else has events:PutEvents (explicit denies). Workload
        accounts may forward their native DRS and SSM events, nothing else."""
        reserved = (
            ("OnlyOperatorsStartOperations", Source.CLI, self.operator_role),
            ("OnlyApproversApprove", Source.APPROVAL, self.approver_role),
        )
        for sid, source, role in reserved:
            events.CfnEventBusPolicy(
                self,
                f"BusPolicy{sid}",
                event_bus_name=self.bus.event_bus_name,
                statement_id=sid,
                statement={
                    "Sid": sid,
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "events:PutEvents",
                    "Resource": self.bus.event_bus_arn,
                    "Condition": {
                        "StringEquals": {"events:source": source.value},
                        "ArnNotEquals": {"aws:PrincipalArn": role.role_arn},
                    },
                },
            )
        accounts = [a for a in self.config.workload_accounts if a != self.account]
        if accounts:
            events.CfnEventBusPolicy(
                self,
                "BusPolicyWorkloadNativeEvents",
                event_bus_name=self.bus.event_bus_name,
                statement_id="WorkloadNativeEvents",
                statement={
                    "Sid": "WorkloadNativeEvents",
                    "Effect": "Allow",
                    "Principal": {"AWS": [f"arn:{self.partition}:iam::{a}:root" for a in accounts]},
                    "Action": "events:PutEvents",
                    "Resource": self.bus.event_bus_arn,
                    "Condition": {
                        "StringEquals": {
                            "events:source": [Source.AWS_DRS.value, Source.AWS_SSM.value]
                        }
                    },
                },
            )
