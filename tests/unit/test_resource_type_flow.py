"""A planned resource's type travels from the plan through the coordinator's resource item to
the `WaveStarted` part its recovery service reads; items written before the field existed read
as EC2 instances."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from drcore.plan import PlannedResource
from events.schemas import Priority, ResourceRef, Strategy
from services.coordinator.adapters import _item, _resource
from services.coordinator.domain import resource_record, resource_ref


def planned(resource_type: str, resource_id: str, strategy: Strategy) -> PlannedResource:
    return PlannedResource(
        resource_id=resource_id,
        arn=f"arn:aws:eks:us-east-1:111111111111:cluster/{resource_id}",
        name=resource_id,
        account="111111111111",
        region="us-east-1",
        dr_region="us-east-2",
        priority=Priority.CRITICAL,
        rto_target_minutes=30,
        rpo_target_minutes=5,
        wave=1,
        strategy=strategy,
        resource_type=resource_type,
    )


def test_given_a_planned_cluster_when_stored_and_announced_then_its_type_is_kept() -> None:
    record = resource_record(planned("eks:cluster", "acme-eks", Strategy.EKS_DNS), wave=1)

    item = _item(record, pk="OP#op-1", sk="RES#acme-eks")
    ref = resource_ref(_resource(item))

    assert item["resource_type"] == "eks:cluster"
    assert ref.resource_type == "eks:cluster" and ref.resource_id == "acme-eks"
    assert json.loads(ref.model_dump_json())["resource_type"] == "eks:cluster"


def test_given_an_item_written_before_resource_types_then_it_reads_as_an_instance() -> None:
    record = resource_record(planned("ec2:instance", "i-1", Strategy.DRS), wave=1)
    item = _item(record, pk="OP#op-1", sk="RES#i-1")
    del item["resource_type"]

    assert _resource(item).resource_type == "ec2:instance"


def test_a_resource_ref_without_a_type_is_an_instance_and_a_bad_type_is_refused() -> None:
    fields = {
        "resource_id": "i-1",
        "arn": "arn:aws:ec2:us-east-1:111111111111:instance/i-1",
        "name": "web-01",
        "account": "111111111111",
        "region": "us-east-1",
        "dr_region": "us-east-2",
        "rto_target_minutes": 60,
        "rpo_target_minutes": 15,
    }

    assert ResourceRef.model_validate(fields).resource_type == "ec2:instance"
    with pytest.raises(ValidationError, match="resource_type"):
        ResourceRef.model_validate({**fields, "resource_type": "EKS Cluster"})
