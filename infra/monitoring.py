"""Dashboards and alarms of the orchestration stack, fed by the event stream.

The metrics service turns every orchestration event into EMF metrics in the `DrOrchestrator`
namespace with the dimensions Customer, Environment and Operation (services/metrics/domain.py);
AWS adds the queue, function and rule metrics. One overview dashboard, one dashboard per
customer of the configuration, and alarms that notify the alerts topic: a dead-letter queue not
empty, a service queue not draining, a function failing, a rule failing to deliver, and per
customer an operation failed or a wave over its RTO target.
"""

from __future__ import annotations

import math

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions

from drcore.observability import METRICS_NAMESPACE
from services.metrics.subscriptions import SERVICE as METRICS_SERVICE
from services.readiness.domain import LAG_OVER_RPO

from .config import CustomerConfig
from .orchestration import OrchestrationStack

# Powertools adds a `service` dimension (POWERTOOLS_SERVICE_NAME): the event-stream metrics are
# the metrics service's; the inventory and readiness metrics are discovery's refresh's.
EVENT_SCHEMA = f'SCHEMA("{METRICS_NAMESPACE}", Customer, Environment, Operation, service)'
EVENT_SOURCE = f"service = '{METRICS_SERVICE.name}'"
SCOPE_SCHEMA = f'SCHEMA("{METRICS_NAMESPACE}", Customer, Environment, service)'
FINDING_SCHEMA = f'SCHEMA("{METRICS_NAMESPACE}", Code, Customer, Environment, service)'
# A message older than this on a service queue means the service is not keeping up.
QUEUE_AGE_ALARM = Duration.minutes(15)
WIDTH = 12
FIVE_MINUTES = Duration.minutes(5)


def insights(query: str, label: str, period: Duration = FIVE_MINUTES) -> cloudwatch.MathExpression:
    """A CloudWatch Metrics Insights query (usable in dashboards and alarms)."""
    return cloudwatch.MathExpression(expression=query, label=label, period=period, using_metrics={})


def _where(customer: str | None, environment: str | None = None, *extra: str) -> str:
    clauses = list(extra)
    if customer:
        clauses.append(f"Customer = '{customer}'")
    if environment:
        clauses.append(f"Environment = '{environment}'")
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def event_metric(
    name: str, statistic: str, customer: str | None = None, environment: str | None = None,
    group_by: str = "Customer, Environment, Operation",
) -> cloudwatch.MathExpression:  # fmt: skip
    query = (
        f"SELECT {statistic}({name}) FROM {EVENT_SCHEMA}"
        f"{_where(customer, environment, EVENT_SOURCE)}"
    )
    if group_by:
        query += f" GROUP BY {group_by}"
    return insights(query, name)


class Monitoring:
    def __init__(self, stack: OrchestrationStack) -> None:
        self.stack = stack
        self.action = actions.SnsAction(stack.alerts_topic)
        self.alarms: list[cloudwatch.Alarm] = []
        self._service_alarms()
        self._bus_alarm()
        self._rule_alarms()
        for customer in stack.config.customers:
            self._customer_alarms(customer)
        self._inventory_alarm()
        self._overview()
        for customer in stack.config.customers:
            self._customer_dashboard(customer)

    def _alarm(self, cid: str, name: str, description: str, metric: cloudwatch.IMetric,
               threshold: float = 1, missing: cloudwatch.TreatMissingData | None = None,
               ) -> cloudwatch.Alarm:  # fmt: skip
        alarm = cloudwatch.Alarm(
            self.stack,
            cid,
            alarm_name=name,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=missing or cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self.action)
        alarm.add_ok_action(self.action)
        self.alarms.append(alarm)
        return alarm

    def _service_alarms(self) -> None:
        for service in self.stack.services:
            name = service.spec.name
            cid = "".join(p.title() for p in name.split("-"))
            self._alarm(
                f"{cid}DlqNotEmpty",
                f"dr-{name}-dlq-not-empty",
                f"Messages in {service.spec.dlq_name()}: events {name} could not process "
                "(each carries its reason). Inspect, fix, then redrive.",
                service.dlq.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
            )
            self._alarm(
                f"{cid}QueueStalled",
                f"dr-{name}-queue-stalled",
                f"The oldest message on {service.spec.queue_name()} waited over "
                f"{QUEUE_AGE_ALARM.to_minutes()} minutes: {name} is not keeping up or failing.",
                service.queue.metric_approximate_age_of_oldest_message(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                threshold=QUEUE_AGE_ALARM.to_seconds(),
            )
            self._alarm(
                f"{cid}FunctionErrors",
                f"dr-{name}-function-errors",
                f"The {name} function crashed (whole batches went back to the queue).",
                service.function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            )

    def _bus_alarm(self) -> None:
        self._alarm(
            "BusDlqNotEmpty",
            f"{self.stack.config.orchestration.bus_name}-bus-dlq-not-empty",
            "Events EventBridge could not encrypt or decrypt with the orchestration key (key "
            "disabled or its policy changed?): they reached no rule.",
            self.stack.bus_dlq.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
        )

    def _rule_alarms(self) -> None:
        bus = self.stack.bus.event_bus_name
        rules = [r for s in self.stack.services for r in s.rules]
        rules += list(self.stack.notification_rules.values())
        for rule in rules:
            name = rule.name or ""
            cid = "".join(p.title() for p in name.removeprefix("dr-").split("-"))
            self._alarm(
                f"{cid}DeliveryFailed",
                f"{name}-delivery-failed",
                f"EventBridge could not deliver events matched by {name} to its target.",
                cloudwatch.Metric(
                    namespace="AWS/Events",
                    metric_name="FailedInvocations",
                    dimensions_map={"EventBusName": bus, "RuleName": name},
                    period=Duration.minutes(5),
                    statistic="Sum",
                ),
            )

    def _customer_alarms(self, customer: CustomerConfig) -> None:
        cid = "".join(p.title() for p in customer.name.replace(".", "-").split("-"))
        lag_over_rpo = f"Code = '{LAG_OVER_RPO}'"
        self._alarm(
            f"Customer{cid}OperationFailed",
            f"dr-{customer.name}-operation-failed",
            f"An operation of {customer.name} ended FAILED (drctl status / drctl report).",
            event_metric("OperationsFailed", "SUM", customer.name, group_by=""),
        )
        self._alarm(
            f"Customer{cid}LagOverRpo",
            f"dr-{customer.name}-replication-lag-over-rpo",
            f"A resource of {customer.name} replicates with a lag over its RPO target "
            "(drctl readiness lists them).",
            insights(
                f"SELECT SUM(ReadinessFindings) FROM {FINDING_SCHEMA}"
                + _where(customer.name, None, lag_over_rpo),
                "ReadinessFindings",
                period=Duration.minutes(30),
            ),
        )
        self._alarm(
            f"Customer{cid}WaveOverRto",
            f"dr-{customer.name}-wave-over-rto",
            f"A wave of {customer.name} took longer than its RTO target.",
            event_metric("WaveOverRtoTarget", "MAX", customer.name, group_by=""),
        )

    def _inventory_alarm(self) -> None:
        """The DR-region inventory cache is refreshed every 15 minutes; older than the critical
        age (30 minutes) or no refresh at all in that time means plans from the cache would be
        stale when the primary region is down."""
        critical = int(getattr(self.stack.settings, "inventory_critical_age_seconds", 1800))
        period = Duration.minutes(max(1, math.ceil(critical / 60)))
        self._alarm(
            "InventoryStale",
            "dr-inventory-stale",
            f"The DR-region inventory cache of some scope is older than {critical // 60} "
            "minutes, or no inventory refresh reported in that time.",
            insights(
                f"SELECT MAX(InventoryAgeSeconds) FROM {SCOPE_SCHEMA} WHERE service = 'discovery'",
                "InventoryAgeSeconds",
                period=period,
            ),
            threshold=critical,
            missing=cloudwatch.TreatMissingData.BREACHING,
        )

    # --- dashboards --------------------------------------------------------------------------

    def _overview(self) -> None:
        stack = self.stack
        services = stack.services
        widgets: list[list[cloudwatch.IWidget]] = [
            [
                cloudwatch.TextWidget(
                    markdown=f"# DR orchestration\nBus `{stack.config.orchestration.bus_name}`, "
                    f"{len(services)} services, {len(stack.config.customers)} customers. "
                    "Alarms notify the `dr-alerts` topic.",
                    width=24,
                    height=2,
                )
            ],
            [
                cloudwatch.GraphWidget(
                    title="Resources recovered / failed (all customers)",
                    left=[
                        event_metric("ResourcesRecovered", "SUM", group_by=""),
                        event_metric("ResourcesFailed", "SUM", group_by=""),
                    ],
                    width=WIDTH,
                ),
                cloudwatch.GraphWidget(
                    title="Operations requested / completed / failed",
                    left=[
                        event_metric("OperationsRequested", "SUM", group_by=""),
                        event_metric("OperationsCompleted", "SUM", group_by=""),
                        event_metric("OperationsFailed", "SUM", group_by=""),
                    ],
                    width=WIDTH,
                ),
            ],
            [
                cloudwatch.GraphWidget(
                    title="Wave duration by customer (seconds, max)",
                    left=[event_metric("WaveDurationSeconds", "MAX", group_by="Customer")],
                    width=WIDTH,
                ),
                cloudwatch.GraphWidget(
                    title="Approvals requested / answered",
                    left=[
                        event_metric("ApprovalsRequested", "SUM", group_by=""),
                        event_metric("ApprovalsAnswered", "SUM", group_by=""),
                    ],
                    width=WIDTH,
                ),
            ],
            [
                cloudwatch.GraphWidget(
                    title="Queue depth",
                    left=[
                        s.queue.metric_approximate_number_of_messages_visible(
                            label=s.spec.name, statistic="Maximum"
                        )
                        for s in services
                    ],
                    width=8,
                ),
                cloudwatch.GraphWidget(
                    title="Dead-letter queue depth",
                    left=[
                        s.dlq.metric_approximate_number_of_messages_visible(
                            label=s.spec.name, statistic="Maximum"
                        )
                        for s in services
                    ],
                    width=8,
                ),
                cloudwatch.GraphWidget(
                    title="Oldest message age (s)",
                    left=[
                        s.queue.metric_approximate_age_of_oldest_message(
                            label=s.spec.name, statistic="Maximum"
                        )
                        for s in services
                    ],
                    width=8,
                ),
            ],
            [
                cloudwatch.GraphWidget(
                    title="Function errors / throttles",
                    left=[
                        s.function.metric_errors(label=f"{s.spec.name} errors") for s in services
                    ],
                    right=[
                        s.function.metric_throttles(label=f"{s.spec.name} throttles")
                        for s in services
                    ],
                    width=WIDTH,
                ),
                cloudwatch.GraphWidget(
                    title="Function duration p95 (ms)",
                    left=[
                        s.function.metric_duration(label=s.spec.name, statistic="p95")
                        for s in services
                    ],
                    width=WIDTH,
                ),
            ],
            [cloudwatch.AlarmStatusWidget(alarms=self.alarms, title="Alarms", width=24)],
        ]
        cloudwatch.Dashboard(
            stack, "OverviewDashboard", dashboard_name="dr-orchestration", widgets=widgets
        )

    def _customer_dashboard(self, customer: CustomerConfig) -> None:
        cid = "".join(p.title() for p in customer.name.replace(".", "-").split("-"))
        widgets: list[list[cloudwatch.IWidget]] = [
            [
                cloudwatch.TextWidget(
                    markdown=f"# {customer.name}\nAccount `{customer.account}`, "
                    + ", ".join(f"{p} → {d}" for p, d in customer.regions.items())
                    + ". One row per environment; lines are the wave RTO targets.",
                    width=24,
                    height=2,
                )
            ]
        ]
        for environment in customer.environments:
            annotations = (
                [
                    cloudwatch.HorizontalAnnotation(
                        value=environment.rto_target_minutes * 60, label="RTO target"
                    )
                ]
                if environment.rto_target_minutes
                else []
            )
            where = (customer.name, environment.name)
            widgets.append(
                [
                    cloudwatch.GraphWidget(
                        title=f"{environment.name}: wave duration vs RTO target (s)",
                        left=[
                            event_metric(
                                "WaveDurationSeconds", "MAX", *where, group_by="Operation"
                            ),
                            event_metric("WaveRtoTargetSeconds", "MAX", *where, group_by=""),
                        ],
                        left_annotations=annotations,
                        width=6,
                    ),
                    cloudwatch.GraphWidget(
                        title=f"{environment.name}: resources recovered / failed",
                        left=[
                            event_metric("ResourcesRecovered", "SUM", *where, group_by=""),
                            event_metric("ResourcesFailed", "SUM", *where, group_by=""),
                        ],
                        width=6,
                    ),
                    cloudwatch.GraphWidget(
                        title=f"{environment.name}: inventory age (s), readiness findings",
                        left=[
                            insights(
                                f"SELECT MAX(InventoryAgeSeconds) FROM {SCOPE_SCHEMA}"
                                + _where(*where, "service = 'discovery'"),
                                "InventoryAgeSeconds",
                            )
                        ],
                        right=[
                            insights(
                                f"SELECT SUM(ReadinessFindings) FROM {FINDING_SCHEMA}"
                                + _where(*where)
                                + " GROUP BY Code",
                                "ReadinessFindings",
                            )
                        ],
                        width=6,
                    ),
                    cloudwatch.GraphWidget(
                        title=f"{environment.name}: operations",
                        left=[
                            event_metric(
                                "OperationsCompleted", "SUM", *where, group_by="Operation"
                            ),
                            event_metric("OperationsFailed", "SUM", *where, group_by="Operation"),
                            event_metric("WavesFailed", "SUM", *where, group_by=""),
                        ],
                        width=6,
                    ),
                ]
            )
        cloudwatch.Dashboard(
            self.stack,
            f"Customer{cid}Dashboard",
            dashboard_name=f"dr-customer-{customer.name.replace('.', '-')}",
            widgets=widgets,
        )
