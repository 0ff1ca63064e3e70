"""The endpoint: routing by signing service, call counting, admin paths, moto behind the same
port, and account resolution shared with moto."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from sandbox.endpoint import SandboxEndpoint, operation_name, resolve_account, signing_scope

from .conftest import DEFAULT_ACCOUNT, Admin, ClientFactory, assume

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def _fresh(admin: Admin) -> None:
    admin.reset()


def signed(url: str, path: str, service: str, body: bytes = b"{}") -> tuple[int, dict[str, str]]:
    """A request carrying only a SigV4-looking Authorization header for `service`."""
    request = urllib.request.Request(
        url + path,
        data=body,
        method="POST",
        headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-2/"
            f"{service}/aws4_request, SignedHeaders=host, Signature=0",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


def test_health(admin: Admin) -> None:
    assert admin.get("/_sandbox/health") == {"status": "ok"}


def test_given_a_drs_signature_when_called_then_the_emulator_answers(
    endpoint: SandboxEndpoint,
) -> None:
    status, headers = signed(endpoint.url, "/DescribeSourceServers", "drs")
    assert status == 200
    assert "x-amzn-RequestId" in headers or "x-amzn-requestid" in {k.lower() for k in headers}

    # Same path signed for another service goes to moto, which has no such operation.
    status, headers = signed(endpoint.url, "/DescribeSourceServers", "sqs")
    assert "x-amzn-ErrorType" not in headers


def test_signing_scope_and_operation_names() -> None:
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-2/drs/aws4_request, "
        "SignedHeaders=host, Signature=abc"
    )
    assert signing_scope({"HTTP_AUTHORIZATION": auth}) == ("drs", "us-east-2")
    presigned = "X-Amz-Credential=AKID%2F20260101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=1"
    assert signing_scope({"QUERY_STRING": presigned}) == ("s3", "eu-west-1")
    assert signing_scope({}) is None

    assert operation_name("sqs", {"HTTP_X_AMZ_TARGET": "AmazonSQS.SendMessage"}, b"") == (
        "SendMessage"
    )
    form = {"CONTENT_TYPE": "application/x-www-form-urlencoded", "REQUEST_METHOD": "POST"}
    assert operation_name("ec2", form, b"Action=RunInstances&Version=2016-11-15") == "RunInstances"
    rest = {"REQUEST_METHOD": "GET", "PATH_INFO": "/tags/arn:aws:drs:us-east-2:1:job/drsjob-1"}
    assert operation_name("drs", rest, b"") == "ListTagsForResource"
    assert operation_name(
        "drs", {"REQUEST_METHOD": "POST", "PATH_INFO": "/StartRecovery"}, b""
    ) == ("StartRecovery")
    assert operation_name(
        "route53", {"REQUEST_METHOD": "GET", "PATH_INFO": "/2013-04-01/hostedzone"}, b""
    ) == ("ListHostedZones")
    assert operation_name("nope", {"REQUEST_METHOD": "PUT", "PATH_INFO": "/x"}, b"") == "PUT /x"


def test_given_calls_to_several_services_then_each_is_counted_by_operation(
    admin: Admin, client: ClientFactory
) -> None:
    # Given moto services (json, query and rest protocols) and an emulator
    sqs = client("sqs")
    queue = sqs.create_queue(QueueName="counted")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="hello")
    sqs.send_message(QueueUrl=queue, MessageBody="again")
    ec2 = client("ec2")
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
    client("dynamodb").list_tables()
    client("events").list_rules()
    client("route53").list_hosted_zones()
    client("drs").describe_jobs()
    client("drs").describe_jobs()

    # When the stats are read
    stats = admin.get("/_sandbox/stats")

    # Then each call is counted once under its signing service and operation
    calls = stats["calls"]
    assert calls["sqs"] == {"CreateQueue": 1, "SendMessage": 2}
    assert calls["ec2"] == {"RunInstances": 1}
    assert calls["dynamodb"] == {"ListTables": 1}
    assert calls["events"] == {"ListRules": 1}
    assert calls["route53"] == {"ListHostedZones": 1}
    assert calls["drs"] == {"DescribeJobs": 2}
    assert stats["total"] == 9
    assert stats["by_caller"] == {"services": 9}

    # And the counts reset
    reset = admin.post("/_sandbox/stats/reset")
    assert (reset["total"], reset["calls"], reset["by_caller"]) == (0, {}, {})


def test_given_calls_marked_by_drctl_or_the_runtime_then_they_are_counted_apart(
    admin: Admin, endpoint: SandboxEndpoint
) -> None:
    import boto3
    from botocore.config import Config

    admin.post("/_sandbox/stats/reset")
    for marker in ("drctl", "dr-runtime", "dr-seed", None):
        boto3.client(
            "dynamodb",
            endpoint_url=endpoint.url,
            region_name="us-east-2",
            config=Config(user_agent_extra=marker) if marker else None,
        ).list_tables()
    stats = admin.get("/_sandbox/stats")
    assert stats["by_caller"] == {"operator": 1, "runtime": 1, "seed": 1, "services": 1}
    assert stats["calls_by_caller"]["operator"] == {"dynamodb": {"ListTables": 1}}


def test_moto_services_are_reachable_through_the_same_port(client: ClientFactory) -> None:
    sqs = client("sqs")
    queue = sqs.create_queue(QueueName="q1")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="x")
    assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"] == "x"

    client("events").create_event_bus(Name="dr-orchestration")
    names = [b["Name"] for b in client("events").list_event_buses()["EventBuses"]]
    assert "dr-orchestration" in names

    ddb = client("dynamodb")
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}})
    assert ddb.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]["pk"]["S"] == "a"

    ec2 = client("ec2", region="us-east-1")
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
    described = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])
    assert described["Reservations"][0]["Instances"][0]["InstanceId"] == instance["InstanceId"]


def test_config_accepts_partial_updates_and_rejects_bad_values_naming_them(admin: Admin) -> None:
    assert admin.post("/_sandbox/config", {"drs_launch_failure_rate": 0.25}) == {
        "drs_launch_seconds": [0.05, 0.2],
        "drs_launch_failure_rate": 0.25,
        "throttle_rate": 0.0,
        "drop_native_event_rate": 0.0,
        "seed": 0,
    }
    for body, named in [
        ({"drs_launch_failure_rate": 1.5}, "drs_launch_failure_rate=1.5"),
        ({"throttle_rate": -0.1}, "throttle_rate=-0.1"),
        ({"drs_launch_seconds": [5, 2]}, "drs_launch_seconds=[5, 2]"),
        ({"drs_launch_seconds": "fast"}, "drs_launch_seconds='fast'"),
        ({"seed": "x"}, "seed='x'"),
        ({"no_such_knob": 1}, "no_such_knob=1"),
    ]:
        status, answer = admin.call("/_sandbox/config", body)
        assert status == 400, body
        assert named in answer["message"], answer
    # A rejected update changes nothing.
    assert admin.get("/_sandbox/config")["drs_launch_failure_rate"] == 0.25


def test_source_server_admin_path_rejects_bad_payloads(admin: Admin) -> None:
    status, answer = admin.call(
        "/_sandbox/drs/source-servers",
        {"account": "1", "region": "us-east-2", "source_servers": []},
    )
    assert status == 400
    assert "account='1'" in answer["message"]
    status, answer = admin.call(
        "/_sandbox/drs/source-servers",
        {
            "account": "111111111111",
            "region": "us-east-2",
            "source_servers": [
                {"instance_id": "i-0123456789abcdef0", "hostname": "h", "private_ip": "10.1.1.300"}
            ],
        },
    )
    assert status == 400
    assert "source_servers.0.private_ip='10.1.1.300'" in answer["message"]


def test_given_assumed_role_credentials_then_moto_and_the_emulators_see_the_same_account(
    admin: Admin, client: ClientFactory
) -> None:
    # Given credentials for account 111111111111 from STS AssumeRole
    creds = assume(client, "111111111111")
    assert client("sts", creds=creds).get_caller_identity()["Account"] == "111111111111"
    assert client("sts").get_caller_identity()["Account"] == DEFAULT_ACCOUNT

    # When a source server is registered in that account
    admin.post(
        "/_sandbox/drs/source-servers",
        {
            "account": "111111111111",
            "region": "us-east-2",
            "source_servers": [
                {"instance_id": "i-0123456789abcdef0", "hostname": "h1", "private_ip": "10.1.10.10"}
            ],
        },
    )

    # Then the DRS emulator shows it to that account only
    assert len(client("drs", creds=creds).describe_source_servers()["items"]) == 1
    assert client("drs").describe_source_servers()["items"] == []


def test_resolve_account_follows_moto() -> None:
    auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-2/drs/aws4_request,"
    assert resolve_account({"HTTP_AUTHORIZATION": auth}) == (
        DEFAULT_ACCOUNT,
        "AKIAIOSFODNN7EXAMPLE",
    )
    header = {"HTTP_AUTHORIZATION": auth, "HTTP_X_MOTO_ACCOUNT_ID": "222222222222"}
    assert resolve_account(header)[0] == "222222222222"


def test_reset_clears_moto_and_the_emulators(admin: Admin, client: ClientFactory) -> None:
    client("sqs").create_queue(QueueName="gone")
    admin.post(
        "/_sandbox/drs/source-servers",
        {
            "account": DEFAULT_ACCOUNT,
            "region": "us-east-2",
            "source_servers": [
                {"instance_id": "i-0123456789abcdef0", "hostname": "h", "private_ip": "10.1.1.1"}
            ],
        },
    )
    admin.post("/_sandbox/config", {"throttle_rate": 0.5})
    admin.post("/_sandbox/reset")
    assert client("sqs").list_queues().get("QueueUrls", []) == []
    assert client("drs").describe_source_servers()["items"] == []
    assert admin.get("/_sandbox/config")["throttle_rate"] == 0.0
    assert admin.get("/_sandbox/stats")["total"] == 2


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_the_aws_cli_works_with_only_the_endpoint_url(endpoint: SandboxEndpoint) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "PYTHONPATH"}
    env.update(
        AWS_ENDPOINT_URL=endpoint.url,
        AWS_ACCESS_KEY_ID="cli",
        AWS_SECRET_ACCESS_KEY="cli",
        AWS_DEFAULT_REGION="us-east-2",
    )
    answers = {}
    for args in (["drs", "describe-jobs"], ["events", "list-event-buses"]):
        done = subprocess.run(
            ["aws", *args, "--output", "json"], env=env, capture_output=True, timeout=60, text=True
        )
        assert done.returncode == 0, done.stderr
        answers[args[0]] = json.loads(done.stdout)
    assert answers["drs"]["items"] == []
    assert answers["events"]["EventBuses"][0]["Name"] == "default"


def test_main_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.endpoint", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split("sandbox endpoint: ")[1].strip()
        with urllib.request.urlopen(url + "/_sandbox/health", timeout=10) as response:
            assert json.loads(response.read()) == {"status": "ok"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_given_concurrent_transactions_on_one_condition_then_exactly_one_wins(
    client: ClientFactory,
) -> None:
    """DynamoDB's condition-then-write is atomic in AWS; the sandbox must keep it so."""
    from concurrent.futures import ThreadPoolExecutor

    from botocore.exceptions import ClientError

    dynamodb = client("dynamodb")
    dynamodb.create_table(
        TableName="race",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="race", Item={"pk": {"S": "res"}, "state": {"S": "PENDING"}})
    dynamodb.put_item(TableName="race", Item={"pk": {"S": "wave"}, "n": {"N": "0"}})

    def attempt(_: int) -> bool:
        try:
            dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": "race",
                            "Key": {"pk": {"S": "res"}},
                            "UpdateExpression": "SET #s = :done",
                            "ConditionExpression": "#s = :pending",
                            "ExpressionAttributeNames": {"#s": "state"},
                            "ExpressionAttributeValues": {
                                ":done": {"S": "DONE"},
                                ":pending": {"S": "PENDING"},
                            },
                        }
                    },
                    {
                        "Update": {
                            "TableName": "race",
                            "Key": {"pk": {"S": "wave"}},
                            "UpdateExpression": "ADD n :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                ]
            )
            return True
        except ClientError:
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = sum(pool.map(attempt, range(32)))
    counter = dynamodb.get_item(TableName="race", Key={"pk": {"S": "wave"}})["Item"]["n"]["N"]
    assert (wins, counter) == (1, "1")
