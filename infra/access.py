"""What each service may do: its IAM, declared next to nothing else so it can be reviewed whole.

Every service gets the baseline (consume its queue, send to its dead-letter queue, write its
logs and traces). Beyond that a service gets exactly what its adapters call: the event source
it publishes (an `events:source` condition, so no service can speak for another), the tables
and DynamoDB actions it uses, Parameter Store paths, SNS topics, its own queue, and the
workload-account role. A service missing here gets the baseline only, and the infra tests fail
until it is declared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drcore.registry import PARAMETER_PREFIX
from events.schemas import Source
from services.coordinator.hooks import HOOK_PARAMETER_PREFIX

REGISTRY_PATH = PARAMETER_PREFIX  # /dr-orchestrator/customers/
HOOKS_PATH = HOOK_PARAMETER_PREFIX  # /dr-orchestrator/hooks/

READ = ("dynamodb:GetItem", "dynamodb:Query")
WRITE = ("dynamodb:PutItem", "dynamodb:UpdateItem")
BATCH_WRITE = ("dynamodb:BatchWriteItem",)
DELETE = ("dynamodb:DeleteItem",)
CONDITION_CHECK = ("dynamodb:ConditionCheckItem",)  # inside TransactWriteItems
IDEMPOTENCY_RECORDS = (*READ, *WRITE, *DELETE)  # Powertools idempotency persistence layer


@dataclass(frozen=True)
class ServiceAccess:
    # Event sources the service publishes on the bus.
    publishes: tuple[Source, ...] = ()
    # Logical table name (drcore.tables) -> DynamoDB actions.
    tables: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Parameter Store paths it reads (the customer registry, hook configurations).
    parameters: tuple[str, ...] = ()
    # SNS topics it publishes to ("approvals", "alerts").
    topics: tuple[str, ...] = ()
    # Sends itself delayed follow-up messages (job checks, hook checks, re-notifications).
    sends_to_own_queue: bool = False
    # Assumes the workload-account role (what it may do there: infra/workload.py).
    workload: bool = False


SERVICE_ACCESS: dict[str, ServiceAccess] = {
    # Plans (operations table), the DR-region inventory cache, the registry, workload discovery.
    "discovery": ServiceAccess(
        publishes=(Source.DISCOVERY,),
        tables={
            "operations": (*READ, *WRITE, *BATCH_WRITE),
            "inventory": (*READ, *WRITE),
        },
        parameters=(REGISTRY_PATH,),
        workload=True,
    ),
    # Operation, wave, resource and lock items with transactions; approval notifications;
    # pre/post-wave hooks (SSM Automation in workload accounts, configured in Parameter Store).
    "coordinator": ServiceAccess(
        publishes=(Source.COORDINATOR,),
        tables={"operations": (*READ, *WRITE, *BATCH_WRITE, *DELETE, *CONDITION_CHECK)},
        parameters=(REGISTRY_PATH, HOOKS_PATH),
        topics=("approvals",),
        sends_to_own_queue=True,
        workload=True,
    ),
    # The DRS job ledger, idempotency records, the registry, DRS and EC2 in workload accounts.
    "drs": ServiceAccess(
        publishes=(Source.DRS,),
        tables={"operations": (*READ, *WRITE), "idempotency": IDEMPOTENCY_RECORDS},
        parameters=(REGISTRY_PATH,),
        sends_to_own_queue=True,
        workload=True,
    ),
    # Turns events into EMF metrics: its log lines are all it writes.
    "metrics": ServiceAccess(),
    # Results and flip claims (operations table), idempotency records, the registry; EKS,
    # Route 53 and (through STS presigning, no permission needed) Kubernetes in workload accounts.
    "eks": ServiceAccess(
        publishes=(Source.EKS,),
        tables={"operations": (*READ, *WRITE), "idempotency": IDEMPOTENCY_RECORDS},
        parameters=(REGISTRY_PATH,),
        workload=True,
    ),
    # Result ledger (operations table), idempotency records, the registry; EFS, ELBv2, Route 53
    # and EC2 (tags of servers drs recovered) in workload accounts.
    "managed": ServiceAccess(
        publishes=(Source.MANAGED,),
        tables={"operations": (*READ, *WRITE), "idempotency": IDEMPOTENCY_RECORDS},
        parameters=(REGISTRY_PATH,),
        workload=True,
    ),
    # Reads the coordinator's operation record (allow_data_loss); idempotency records; the
    # registry; EC2, SSM Run Command and Route 53 in workload accounts.
    "sqlag": ServiceAccess(
        publishes=(Source.SQLAG,),
        tables={"operations": ("dynamodb:GetItem",), "idempotency": IDEMPOTENCY_RECORDS},
        parameters=(REGISTRY_PATH,),
        workload=True,
    ),
}

# Actions whose API has no resource-level permissions: IAM requires `"Resource": "*"` for them.
# Any other statement with `"Resource": "*"` fails the infra tests.
WILDCARD_ONLY_ACTIONS: dict[str, str] = {
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions",
    "ec2:DescribeInstances": "EC2 Describe* calls have no resource-level permissions",
    "ec2:DescribeImages": "EC2 Describe* calls have no resource-level permissions",
    "tag:GetResources": "the Resource Groups Tagging API has no resource-level permissions",
    "drs:DescribeSourceServers": "DRS lists source servers without resource-level permissions",
    "drs:DescribeJobs": "DRS lists jobs without resource-level permissions",
    "drs:DescribeRecoveryInstances": "DRS lists recovery instances without resource-level "
    "permissions",
    **{
        f"ec2:Describe{what}": "EC2 Describe* calls have no resource-level permissions"
        for what in ("Vpcs", "Subnets", "RouteTables", "SecurityGroups", "LaunchTemplates", "Tags")
    },
    "servicequotas:ListServiceQuotas": "Service Quotas listings have no resource-level permissions",
    "elasticloadbalancing:DescribeLoadBalancers": "ELB Describe* calls have no resource-level "
    "permissions",
    "elasticloadbalancing:DescribeTags": "ELB Describe* calls have no resource-level permissions",
    "route53:ListHostedZonesByName": "Route 53 zone listings have no resource-level permissions",
    "eks:ListClusters": "EKS lists clusters without resource-level permissions",
    "route53:TestDNSAnswer": "Route 53 TestDNSAnswer has no resource-level permissions",
    "ssm:GetCommandInvocation": "SSM command invocations have no resource-level permissions",
    "ssm:ListCommandInvocations": "SSM command invocations have no resource-level permissions",
    "servicequotas:ListAWSDefaultServiceQuotas": "Service Quotas listings have no "
    "resource-level permissions",
}
