"""Resource Explorer in a workload account (StackSet-ready): an index in every region, the
aggregator in the region discovery searches (the customer's DR region), and the default view
with tags, which discovery's `Search` needs (no default view: UnauthorizedException; no `tags`
property: no tags in the results)."""

from __future__ import annotations

from typing import Any

from aws_cdk import BootstraplessSynthesizer, CfnCondition, CfnParameter, Fn, Stack
from aws_cdk import aws_resourceexplorer2 as explorer
from constructs import Construct

VIEW_NAME = "dr-orchestrator"


class ResourceExplorerStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, aggregator_region: str, **kwargs: Any
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            synthesizer=BootstraplessSynthesizer(),
            description="DR orchestration: Resource Explorer index and default view with tags "
            "(StackSet-ready, every region of a workload account)",
            **kwargs,
        )
        region = CfnParameter(
            self,
            "AggregatorRegion",
            type="String",
            default=aggregator_region,
            description="The region whose index aggregates all others (the DR region)",
        )
        is_aggregator = CfnCondition(
            self,
            "IsAggregator",
            expression=Fn.condition_equals(self.region, region.value_as_string),
        )
        index = explorer.CfnIndex(
            self,
            "Index",
            type=Fn.condition_if(is_aggregator.logical_id, "AGGREGATOR", "LOCAL").to_string(),
        )
        view = explorer.CfnView(
            self,
            "View",
            view_name=VIEW_NAME,
            included_properties=[explorer.CfnView.IncludedPropertyProperty(name="tags")],
        )
        view.add_resource_dependency(index)
        explorer.CfnDefaultViewAssociation(self, "DefaultView", view_arn=view.attr_view_arn)
