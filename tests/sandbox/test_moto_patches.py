"""Events forwarded to another account's bus arrive as AWS delivers them (moto differs)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sandbox import moto_patches


@pytest.fixture
def aws() -> object:
    moto_patches.install()
    with mock_aws():
        yield


def _client(account: str, region: str) -> Any:
    sts = boto3.client("sts", region_name="us-east-2")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/r", RoleSessionName="test")[
        "Credentials"
    ]
    return boto3.client(
        "events",
        region_name=region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def test_given_a_forwarding_rule_when_an_event_is_forwarded_then_account_and_resources_are_kept(
    aws: object,
) -> None:
    # Given an orchestration bus (account 123456789012) with a queue behind it
    events = boto3.client("events", region_name="us-east-2")
    sqs = boto3.client("sqs", region_name="us-east-2")
    bus_arn = events.create_event_bus(Name="orchestration")["EventBusArn"]
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="all", EventBusName="orchestration", EventPattern='{"source": ["aws.drs"]}'
    )
    events.put_targets(
        Rule="all", EventBusName="orchestration", Targets=[{"Id": "q", "Arn": queue_arn}]
    )
    # and a workload account forwarding its default bus there
    workload = _client("111111111111", "us-west-1")
    workload.put_rule(Name="fwd", EventPattern='{"source": ["aws.drs"]}')
    workload.put_targets(Rule="fwd", Targets=[{"Id": "bus", "Arn": bus_arn}])

    # When DRS publishes on the workload's default bus
    arn = "arn:aws:drs:us-west-1:111111111111:source-server/s-0123456789abcdef0"
    workload.put_events(
        Entries=[
            {
                "Source": "aws.drs",
                "DetailType": "DRS Source Server Launch Result",
                "Detail": json.dumps({"state": "RECOVERY_LAUNCH_SUCCEEDED", "job-id": "drsjob-1"}),
                "Resources": [arn],
            }
        ]
    )

    # Then the orchestration bus delivers it with the source's account, region and resources
    body = json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])
    assert body["account"] == "111111111111"
    assert body["region"] == "us-west-1"
    assert body["resources"] == [arn]
    assert body["detail"]["job-id"] == "drsjob-1"


def test_given_a_replay_with_filter_arns_and_a_window_then_only_those_rules_and_events(
    aws: object,
) -> None:
    from datetime import UTC, datetime, timedelta

    events = boto3.client("events", region_name="us-east-2")
    sqs = boto3.client("sqs", region_name="us-east-2")
    bus_arn = events.create_event_bus(Name="orchestration")["EventBusArn"]
    archive_arn = events.create_archive(ArchiveName="all", EventSourceArn=bus_arn)["ArchiveArn"]
    queues = {}
    for name in ("audit", "other"):
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        rule_arn = events.put_rule(
            Name=name,
            EventBusName="orchestration",
            EventPattern='{"replay-name": [{"exists": true}]}',
        )["RuleArn"]
        events.put_targets(
            Rule=name, EventBusName="orchestration", Targets=[{"Id": name, "Arn": arn}]
        )
        queues[name] = (url, rule_arn)
    now = datetime.now(UTC)
    for label, moment in (
        ("old", now - timedelta(hours=2)),
        ("recent", now - timedelta(minutes=5)),
    ):
        events.put_events(
            Entries=[
                {
                    "Source": "dr.test",
                    "DetailType": "Marker",
                    "Detail": json.dumps({"label": label}),
                    "EventBusName": "orchestration",
                    "Time": moment,
                }
            ]
        )

    events.start_replay(
        ReplayName="audit-1",
        EventSourceArn=archive_arn,
        EventStartTime=now - timedelta(minutes=30),
        EventEndTime=now,
        Destination={"Arn": bus_arn, "FilterArns": [queues["audit"][1]]},
    )

    received = sqs.receive_message(QueueUrl=queues["audit"][0], MaxNumberOfMessages=10)
    labels = [json.loads(m["Body"])["detail"]["label"] for m in received.get("Messages", [])]
    assert labels == ["recent"]
    assert "Messages" not in sqs.receive_message(QueueUrl=queues["other"][0])


def test_given_many_queries_then_moto_keeps_no_copy_of_their_items(aws: object) -> None:
    from moto.dynamodb.models.dynamo_type import Item
    from moto.s3.models import FakeBucket

    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    tracked = len(Item.instances_tracked)  # type: ignore[attr-defined]
    for _ in range(20):
        found = dynamodb.query(
            TableName="t",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "a"}},
        )
        assert found["Count"] == 1
    # each query copies the item; none of the copies outlives its response
    assert len(Item.instances_tracked) == tracked  # type: ignore[attr-defined]
    # S3 still tracks its objects (moto cleans keys up through them)
    buckets = len(FakeBucket.instances_tracked)  # type: ignore[attr-defined]
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="dr-sandbox-tracked")
    assert len(FakeBucket.instances_tracked) == buckets + 1  # type: ignore[attr-defined]


def _table(dynamodb: Any, name: str, range_key: bool) -> None:
    keys = [("pk", "HASH")] + ([("sk", "RANGE")] if range_key else [])
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": a, "KeyType": t} for a, t in keys],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in keys],
        BillingMode="PAY_PER_REQUEST",
    )


def _items(dynamodb: Any, name: str) -> list[dict[str, Any]]:
    return sorted(
        dynamodb.scan(TableName=name)["Items"], key=lambda i: (i["pk"]["S"], i.get("sk", {}))
    )


@pytest.mark.parametrize("range_key", [False, True])
def test_given_a_cancelled_transaction_then_no_item_changed_and_a_valid_one_applies(
    aws: object, range_key: bool
) -> None:
    """The sandbox restores the items a cancelled transaction touched (moto copies tables)."""
    from botocore.exceptions import ClientError

    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    _table(dynamodb, "t", range_key)
    sk = {"sk": {"S": "1"}} if range_key else {}
    dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}, **sk, "n": {"N": "1"}})
    dynamodb.put_item(TableName="t", Item={"pk": {"S": "b"}, **sk, "n": {"N": "1"}})
    before = _items(dynamodb, "t")
    update = {
        "Update": {
            "TableName": "t",
            "Key": {"pk": {"S": "a"}, **sk},
            "UpdateExpression": "SET n = n + :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }
    put_new = {"Put": {"TableName": "t", "Item": {"pk": {"S": "c"}, **sk, "n": {"N": "9"}}}}
    delete = {"Delete": {"TableName": "t", "Key": {"pk": {"S": "b"}, **sk}}}
    failing = {
        "ConditionCheck": {
            "TableName": "t",
            "Key": {"pk": {"S": "b"}, **sk},
            "ConditionExpression": "n = :two",
            "ExpressionAttributeValues": {":two": {"N": "2"}},
        }
    }
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=[update, put_new, failing])
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    assert _items(dynamodb, "t") == before  # a's update and c's put were both undone
    with pytest.raises(ClientError):
        dynamodb.transact_write_items(TransactItems=[update, delete, failing])
    assert _items(dynamodb, "t") == before  # b's delete undone too

    dynamodb.transact_write_items(TransactItems=[update, put_new, delete])
    after = {i["pk"]["S"]: i["n"]["N"] for i in _items(dynamodb, "t")}
    assert after == {"a": "2", "c": "9"}


def test_given_several_partitions_then_a_query_pages_through_its_own_in_order(
    aws: object,
) -> None:
    """The sandbox queries one partition's items (moto lists and sorts the whole table)."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName="r",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "g")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for pk in ("a", "b", "c"):
        for n in (3, 1, 2, 5, 4):
            item = {"pk": {"S": pk}, "sk": {"S": f"{n:02d}"}, "g": {"S": f"g{n % 2}"}}
            dynamodb.put_item(TableName="r", Item=item)

    def sks(**extra: Any) -> list[str]:
        found: list[str] = []
        start: dict[str, Any] | None = None
        while True:
            page = dynamodb.query(
                TableName="r",
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": "b"}},
                Limit=2,
                **extra,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            assert all(i["pk"]["S"] == "b" for i in page["Items"])
            found += [i["sk"]["S"] for i in page["Items"]]
            start = page.get("LastEvaluatedKey")
            if not start:
                return found

    assert sks() == ["01", "02", "03", "04", "05"]
    assert sks(ScanIndexForward=False) == ["05", "04", "03", "02", "01"]
    missing = dynamodb.query(
        TableName="r",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "z"}},
    )
    assert missing["Items"] == []
    # an index still sees every partition
    odd = dynamodb.query(
        TableName="r",
        IndexName="by-g",
        KeyConditionExpression="g = :g",
        ExpressionAttributeValues={":g": {"S": "g1"}},
    )
    assert sorted((i["pk"]["S"], i["sk"]["S"]) for i in odd["Items"]) == [
        (pk, f"{n:02d}") for pk in ("a", "b", "c") for n in (1, 3, 5)
    ]
    assert len(dynamodb.scan(TableName="r")["Items"]) == 15
