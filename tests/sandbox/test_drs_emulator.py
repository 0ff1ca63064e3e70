"""The DRS emulator through a real boto3 `drs` client: botocore's model is the truth."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from drcore import tags as T
from sandbox.emulators import Knobs, SandboxConfig
from sandbox.emulators.drs import DrsEmulator, iso_duration
from sandbox.emulators.validation import (
    ResponseInvalid,
    ServiceCodec,
    ServiceError,
    check_shape,
    format_problems,
)

from .conftest import DEFAULT_ACCOUNT, DR, Admin, ClientFactory, assume

pytestmark = pytest.mark.sandbox

PRIMARY = "us-east-1"


@pytest.fixture(autouse=True)
def _fresh(admin: Admin) -> None:
    admin.reset()


# -- helpers ------------------------------------------------------------------------------


def twin(client: ClientFactory, ip: str, *, tagged: bool = True, creds: Any = None) -> str:
    """A DR twin as the seeder makes it: stopped, own private IP, AWSDRS tag (or not)."""
    ec2 = client("ec2", creds=creds)
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["dr"]}])["Vpcs"]
    if vpcs:
        subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])[
            "Subnets"
        ][0]["SubnetId"]
    else:
        vpc = ec2.create_vpc(
            CidrBlock="10.101.0.0/16",
            TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "dr"}]}],
        )["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.101.0.0/16")["Subnet"]["SubnetId"]
    tags = [{"Key": "Name", "Value": f"twin-{ip}"}]
    if tagged:
        tags.append({"Key": T.DRS_LAUNCH_INTO, "Value": T.DRS_LAUNCH_INTO_VALUE})
    instance = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet,
        PrivateIpAddress=ip,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[instance])
    return str(instance)


def register(admin: Admin, count: int, account: str = DEFAULT_ACCOUNT, **extra: Any) -> list[str]:
    servers = [
        {
            "instance_id": f"i-{index + 1:017x}",
            "hostname": f"srv-{index:03d}",
            "private_ip": f"10.1.{10 + index // 200}.{10 + index % 200}",
            "tags": {"Name": f"srv-{index:03d}", "Customer": "acme"},
            "origin_region": PRIMARY,
            **extra,
        }
        for index in range(count)
    ]
    answer = admin.post(
        "/_sandbox/drs/source-servers",
        {"account": account, "region": DR, "source_servers": servers},
    )
    return list(answer["source_server_ids"])


def wait_job(drs: Any, job_id: str, timeout: float = 10) -> tuple[dict[str, Any], list[str]]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = drs.describe_jobs(filters={"jobIDs": [job_id]})["items"][0]
        statuses = [job["status"]] + [p["launchStatus"] for p in job["participatingServers"]]
        marker = "/".join(statuses)
        if not seen or seen[-1] != marker:
            seen.append(marker)
        if job["status"] == "COMPLETED":
            return job, seen
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} not completed: {seen}")


def launch_into(drs: Any, sid: str, instance_id: str) -> None:
    drs.update_launch_configuration(
        sourceServerID=sid,
        launchIntoInstanceProperties={"launchIntoEC2InstanceID": instance_id},
        copyPrivateIp=False,
        copyTags=False,
    )


def native_queue(client: ClientFactory, creds: Any = None) -> tuple[Any, str]:
    """A rule on the DEFAULT bus of the DR region routing aws.drs events to an SQS queue."""
    sqs = client("sqs", creds=creds)
    url = sqs.create_queue(QueueName="drs-native")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = client("events", creds=creds)
    events.put_rule(Name="drs-native", EventPattern=json.dumps({"source": ["aws.drs"]}))
    events.put_targets(Rule="drs-native", Targets=[{"Id": "q", "Arn": arn}])
    return sqs, url


def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def error_of(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response: dict[str, Any] = caught.value.response
    return response


# -- launch into a twin ---------------------------------------------------------------------


def test_given_a_twin_when_recovery_starts_then_drs_launches_into_it_keeping_its_ip(
    admin: Admin, client: ClientFactory
) -> None:
    # Given a source server whose launch configuration targets a stopped, tagged twin, and a
    # rule on the default bus that routes native DRS events to a queue
    admin.post("/_sandbox/config", {"drs_launch_seconds": [0.5, 0.6]})
    creds = assume(client, "111111111111")
    drs = client("drs", creds=creds)
    twin_id = twin(client, "10.101.10.10", creds=creds)
    (sid,) = register(admin, 1, account="111111111111")
    launch_into(drs, sid, twin_id)
    sqs, url = native_queue(client, creds=creds)

    # When recovery starts
    job = drs.start_recovery(sourceServers=[{"sourceServerID": sid}], tags={"op": "op-1"})["job"]

    # Then the job goes PENDING -> STARTED -> COMPLETED and the server LAUNCHED into the twin
    assert job["status"] == "PENDING"
    assert job["type"] == "LAUNCH" and job["initiatedBy"] == "START_RECOVERY"
    assert job["jobID"].startswith("drsjob-") and len(job["jobID"]) == 24
    done, seen = wait_job(drs, job["jobID"])
    assert seen[0].startswith("STARTED/") or seen[0].startswith("PENDING/")
    assert any(s.startswith("STARTED/") for s in seen), seen
    assert seen[-1] == "COMPLETED/LAUNCHED"
    assert "endDateTime" in done
    participant = done["participatingServers"][0]
    assert participant["recoveryInstanceID"] == twin_id

    # And the twin runs with its own private IP
    ec2 = client("ec2", creds=creds)
    instance = ec2.describe_instances(InstanceIds=[twin_id])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "running"
    assert instance["PrivateIpAddress"] == "10.101.10.10"

    # And the recovery instance is described, by id and by source server
    by_id = drs.describe_recovery_instances(filters={"recoveryInstanceIDs": [twin_id]})["items"]
    by_source = drs.describe_recovery_instances(filters={"sourceServerIDs": [sid]})["items"]
    assert by_id == by_source and len(by_id) == 1
    recovery = by_id[0]
    assert recovery["ec2InstanceID"] == twin_id and recovery["ec2InstanceState"] == "RUNNING"
    assert recovery["jobID"] == job["jobID"] and recovery["sourceServerID"] == sid
    assert recovery["isDrill"] is False and recovery["originEnvironment"] == "AWS"
    assert recovery["originAvailabilityZone"] == "us-east-1a"
    assert recovery["recoveryInstanceProperties"]["networkInterfaces"][0]["ips"] == ["10.101.10.10"]
    assert recovery["tags"] == {"op": "op-1"}

    # And the source server reports the launch
    server = drs.describe_source_servers(filters={"sourceServerIDs": [sid]})["items"][0]
    assert server["lastLaunchResult"] == "SUCCEEDED"
    assert server["recoveryInstanceId"] == twin_id
    assert server["lifeCycle"]["lastLaunch"]["initiated"]["type"] == "RECOVERY"

    # And the log tells the story
    log = drs.describe_job_log_items(jobID=job["jobID"])["items"]
    events = [i["event"] for i in log]
    assert events[0] == "JOB_START" and events[-1] == "JOB_END"
    assert "LAUNCH_FAILED" not in events
    (start,) = [i for i in log if i["event"] == "LAUNCH_START"]
    assert start["eventData"] == {"sourceServerID": sid, "targetInstanceID": twin_id}

    # And the native event reached the rule on the default bus
    (event,) = received(sqs, url)
    assert event["source"] == "aws.drs"
    assert event["detail-type"] == "DRS Source Server Launch Result"
    assert event["resources"] == [server["arn"]]
    assert event["detail"] == {"state": "RECOVERY_LAUNCH_SUCCEEDED", "job-id": job["jobID"]}


def test_given_no_launch_into_then_a_new_instance_is_launched_from_the_launch_template(
    admin: Admin, client: ClientFactory
) -> None:
    # Given a source server whose EC2 launch template (created by DRS) names tags
    drs = client("drs")
    ec2 = client("ec2")
    (sid,) = register(admin, 1)
    template = drs.get_launch_configuration(sourceServerID=sid)["ec2LaunchTemplateID"]
    version = ec2.create_launch_template_version(
        LaunchTemplateId=template,
        SourceVersion="$Default",
        LaunchTemplateData={
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": [{"Key": "t", "Value": "1"}]}
            ]
        },
    )["LaunchTemplateVersion"]["VersionNumber"]
    ec2.modify_launch_template(LaunchTemplateId=template, DefaultVersion=str(version))

    # When it is recovered without a launch-into target
    job = drs.start_recovery(sourceServers=[{"sourceServerID": sid}], tags={"k": "v"})["job"]
    done, _ = wait_job(drs, job["jobID"])

    # Then a new instance runs with the template's tags (the job's tags stay on the job)
    new_id = done["participatingServers"][0]["recoveryInstanceID"]
    instance = ec2.describe_instances(InstanceIds=[new_id])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "running"
    assert instance["Tags"] == [{"Key": "t", "Value": "1"}]
    assert drs.list_tags_for_resource(resourceArn=done["arn"])["tags"] == {"k": "v"}


def test_given_failure_rate_1_when_a_drill_starts_then_launch_fails_and_the_job_completes(
    admin: Admin, client: ClientFactory
) -> None:
    admin.post("/_sandbox/config", {"drs_launch_failure_rate": 1.0})
    drs = client("drs")
    sids = register(admin, 2)
    for index, sid in enumerate(sids):
        launch_into(drs, sid, twin(client, f"10.101.10.{10 + index}"))
    sqs, url = native_queue(client)

    job = drs.start_recovery(sourceServers=[{"sourceServerID": s} for s in sids], isDrill=True)[
        "job"
    ]
    assert job["initiatedBy"] == "START_DRILL"
    done, _ = wait_job(drs, job["jobID"])

    # Jobs have no FAILED status: judge each server
    assert done["status"] == "COMPLETED"
    assert [p["launchStatus"] for p in done["participatingServers"]] == ["FAILED", "FAILED"]
    assert all("recoveryInstanceID" not in p for p in done["participatingServers"])
    logs = drs.describe_job_log_items(jobID=job["jobID"])["items"]
    failed = [i for i in logs if i["event"] == "LAUNCH_FAILED"]
    assert {i["eventData"]["sourceServerID"] for i in failed} == set(sids)
    assert all(i["eventData"]["rawError"] for i in failed)
    states = {e["detail"]["state"] for e in received(sqs, url)}
    assert states == {"DRILL_LAUNCH_FAILED"}
    server = drs.describe_source_servers()["items"][0]
    assert server["lastLaunchResult"] == "FAILED"


def test_given_a_twin_without_the_awsdrs_tag_then_that_launch_fails_clearly(
    admin: Admin, client: ClientFactory
) -> None:
    drs = client("drs")
    (sid,) = register(admin, 1)
    untagged = twin(client, "10.101.10.20", tagged=False)
    launch_into(drs, sid, untagged)
    job = drs.start_recovery(sourceServers=[{"sourceServerID": sid}])["job"]
    done, _ = wait_job(drs, job["jobID"])
    assert done["participatingServers"][0]["launchStatus"] == "FAILED"
    (failed,) = [
        i
        for i in drs.describe_job_log_items(jobID=job["jobID"])["items"]
        if i["event"] == "LAUNCH_FAILED"
    ]
    assert "AWSDRS=AllowLaunchingIntoThisInstance" in failed["eventData"]["rawError"]
    state = client("ec2").describe_instances(InstanceIds=[untagged])["Reservations"][0][
        "Instances"
    ][0]["State"]["Name"]
    assert state == "stopped"


def test_given_dropped_native_events_then_the_job_still_completes(
    admin: Admin, client: ClientFactory
) -> None:
    admin.post("/_sandbox/config", {"drop_native_event_rate": 1.0})
    drs = client("drs")
    (sid,) = register(admin, 1)
    sqs, url = native_queue(client)
    job = drs.start_recovery(sourceServers=[{"sourceServerID": sid}])["job"]
    done, _ = wait_job(drs, job["jobID"])
    assert done["participatingServers"][0]["launchStatus"] == "LAUNCHED"
    assert received(sqs, url) == []


# -- refusals -----------------------------------------------------------------------------


def test_more_than_100_servers_in_one_call_is_a_quota_error(
    admin: Admin, client: ClientFactory
) -> None:
    sids = register(admin, 101)
    response = error_of(
        client("drs").start_recovery, sourceServers=[{"sourceServerID": s} for s in sids]
    )
    assert response["Error"]["Code"] == "ServiceQuotaExceededException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 402


def test_an_unknown_source_server_is_a_validation_error_naming_it(client: ClientFactory) -> None:
    response = error_of(
        client("drs").start_recovery, sourceServers=[{"sourceServerID": "s-0000000000000000a"}]
    )
    assert response["Error"]["Code"] == "ValidationException"
    assert "s-0000000000000000a" in response["Error"]["Message"]
    assert response["fieldList"][0]["name"] == "sourceServers[0].sourceServerID"


def test_a_server_in_an_active_job_is_a_conflict(admin: Admin, client: ClientFactory) -> None:
    admin.post("/_sandbox/config", {"drs_launch_seconds": [2, 2]})
    drs = client("drs")
    (sid,) = register(admin, 1)
    job = drs.start_recovery(sourceServers=[{"sourceServerID": sid}])["job"]
    response = error_of(drs.start_recovery, sourceServers=[{"sourceServerID": sid}])
    assert response["Error"]["Code"] == "ConflictException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert response["resourceId"] == sid
    assert job["jobID"] in response["Error"]["Message"]


def test_throttling_is_a_429_botocore_understands(admin: Admin, client: ClientFactory) -> None:
    admin.post("/_sandbox/config", {"throttle_rate": 1.0})
    response = error_of(client("drs", retries=1).describe_jobs)
    assert response["Error"]["Code"] == "ThrottlingException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["retryAfterSeconds"] == "1"


def test_a_request_breaking_the_model_is_a_validation_error_naming_the_member(
    client: ClientFactory,
) -> None:
    # A pattern botocore does not check on the client side
    response = error_of(
        client("drs").get_launch_configuration, sourceServerID="s-0123456789abcdef!"
    )
    assert response["Error"]["Code"] == "ValidationException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    message = response["Error"]["Message"]
    assert "'sourceServerID'" in message and "s-0123456789abcdef!" in message
    assert response["reason"] == "fieldValidationFailed"
    assert response["fieldList"][0]["name"] == "sourceServerID"

    # Types and required members, when a client skips its own validation
    raw = client("drs", validate=False)
    response = error_of(raw.start_recovery, sourceServers=[{}], isDrill="yes")
    assert response["Error"]["Code"] == "ValidationException"
    names = {f["name"] for f in response["fieldList"]}
    assert names == {"sourceServers[0].sourceServerID", "isDrill"}
    assert response["reason"] == "cannotParse"


def test_launch_into_an_instance_that_does_not_exist_there_is_refused(
    admin: Admin, client: ClientFactory
) -> None:
    drs = client("drs")
    (sid,) = register(admin, 1)
    # A twin in another account is not visible to this one (tenant isolation).
    other = twin(client, "10.101.10.30", creds=assume(client, "222222222222"))
    for instance_id in ("i-00000000000000001", other):
        response = error_of(
            drs.update_launch_configuration,
            sourceServerID=sid,
            launchIntoInstanceProperties={"launchIntoEC2InstanceID": instance_id},
        )
        assert response["Error"]["Code"] == "ValidationException"
        assert (
            "launchIntoInstanceProperties.launchIntoEC2InstanceID" in response["Error"]["Message"]
        )
        assert instance_id in response["Error"]["Message"]
    # copy-private-IP must be off for launch into instance
    mine = twin(client, "10.101.10.31")
    response = error_of(
        drs.update_launch_configuration,
        sourceServerID=sid,
        launchIntoInstanceProperties={"launchIntoEC2InstanceID": mine},
        copyPrivateIp=True,
    )
    assert response["Error"]["Code"] == "ValidationException"
    # and an unknown source server is not found
    response = error_of(drs.get_launch_configuration, sourceServerID="s-0000000000000000b")
    assert response["Error"]["Code"] == "ResourceNotFoundException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 404


# -- reads, pagination, tags, termination ---------------------------------------------------


def test_source_servers_carry_what_the_agent_reports_and_paginate(
    admin: Admin, client: ClientFactory
) -> None:
    sids = register(admin, 5, replication_state="BACKLOG", lag_seconds=3725)
    assert all(s.startswith("s-") and len(s) == 19 for s in sids)
    # Registering the same instances again returns the same servers (the agent re-registers)
    assert register(admin, 5) == sids
    drs = client("drs")
    pages = list(
        drs.get_paginator("describe_source_servers").paginate(PaginationConfig={"PageSize": 2})
    )
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    items = [i for p in pages for i in p["items"]]
    assert [i["sourceServerID"] for i in items] == sids
    first = items[0]
    assert first["sourceProperties"]["identificationHints"]["awsInstanceID"] == f"i-{1:017x}"
    assert first["sourceProperties"]["identificationHints"]["hostname"] == "srv-000"
    assert first["sourceProperties"]["networkInterfaces"][0]["ips"] == ["10.1.10.10"]
    assert first["dataReplicationInfo"]["dataReplicationState"] == "CONTINUOUS"
    assert first["dataReplicationInfo"]["lagDuration"] == "PT30S"
    assert first["replicationDirection"] == "FAILOVER"
    assert first["sourceCloudProperties"]["originRegion"] == PRIMARY
    assert first["tags"]["Customer"] == "acme"
    assert first["lastLaunchResult"] == "NOT_STARTED"
    only = drs.describe_source_servers(filters={"sourceServerIDs": sids[3:4]})["items"]
    assert [s["sourceServerID"] for s in only] == sids[3:4]


def test_jobs_filter_by_id_and_date_and_paginate(admin: Admin, client: ClientFactory) -> None:
    drs = client("drs")
    sids = register(admin, 3)
    jobs = [drs.start_recovery(sourceServers=[{"sourceServerID": s}])["job"] for s in sids]
    for job in jobs:
        wait_job(drs, job["jobID"])
    pages = list(drs.get_paginator("describe_jobs").paginate(PaginationConfig={"PageSize": 2}))
    assert sum(len(p["items"]) for p in pages) == 3 and len(pages) == 2
    picked = drs.describe_jobs(filters={"jobIDs": [jobs[1]["jobID"]]})["items"]
    assert [j["jobID"] for j in picked] == [jobs[1]["jobID"]]
    future = drs.describe_jobs(filters={"fromDate": "2999-01-01T00:00:00Z"})["items"]
    past = drs.describe_jobs(filters={"toDate": "2000-01-01T00:00:00Z"})["items"]
    assert future == [] and past == []
    window = drs.describe_jobs(
        filters={"fromDate": jobs[0]["creationDateTime"], "toDate": "2999-01-01T00:00:00Z"}
    )["items"]
    assert len(window) == 3


def test_terminating_recovery_instances_is_a_terminate_job(
    admin: Admin, client: ClientFactory
) -> None:
    drs = client("drs")
    (sid,) = register(admin, 1)
    launched, _ = wait_job(
        drs,
        drs.start_recovery(sourceServers=[{"sourceServerID": sid}], isDrill=True)["job"]["jobID"],
    )
    rid = launched["participatingServers"][0]["recoveryInstanceID"]
    assert drs.describe_recovery_instances()["items"][0]["isDrill"] is True

    job = drs.terminate_recovery_instances(recoveryInstanceIDs=[rid])["job"]
    assert job["type"] == "TERMINATE" and job["initiatedBy"] == "TERMINATE_RECOVERY_INSTANCES"
    done, _ = wait_job(drs, job["jobID"])
    assert done["participatingServers"][0]["launchStatus"] == "TERMINATED"
    assert drs.describe_recovery_instances()["items"] == []
    state = client("ec2").describe_instances(InstanceIds=[rid])["Reservations"][0]["Instances"][0]
    assert state["State"]["Name"] == "terminated"
    assert "recoveryInstanceId" not in drs.describe_source_servers()["items"][0]


def test_tags_on_source_servers_and_jobs(admin: Admin, client: ClientFactory) -> None:
    drs = client("drs")
    (sid,) = register(admin, 1)
    server_arn = drs.describe_source_servers()["items"][0]["arn"]
    drs.tag_resource(resourceArn=server_arn, tags={"team": "dr"})
    assert drs.list_tags_for_resource(resourceArn=server_arn)["tags"]["team"] == "dr"
    job = drs.start_recovery(sourceServers=[{"sourceServerID": sid}], tags={"op": "x"})["job"]
    assert drs.list_tags_for_resource(resourceArn=job["arn"])["tags"] == {"op": "x"}
    response = error_of(
        drs.list_tags_for_resource,
        resourceArn=f"arn:aws:drs:{DR}:{DEFAULT_ACCOUNT}:source-server/s-00000000000000000",
    )
    assert response["Error"]["Code"] == "ResourceNotFoundException"


# -- response validation: an emulator bug must be loud --------------------------------------


def test_the_response_checker_catches_wrong_responses() -> None:
    codec = ServiceCodec("drs")
    op = codec.operation("DescribeJobs")
    good = {
        "items": [
            {
                "jobID": "drsjob-0123456789abcdef0",
                "status": "COMPLETED",
                "creationDateTime": "2026-01-01T00:00:00.000Z",
                "participatingServers": [
                    {"sourceServerID": "s-0123456789abcdef0", "launchStatus": "LAUNCHED"}
                ],
            }
        ]
    }
    codec.validate_response(op, good)
    bad_cases = {
        "enum": ("status", "FAILED", "enum value set"),
        "pattern": ("jobID", "job-1", "regular expression"),
        "type": ("participatingServers", "none", "must be a list"),
        "timestamp": ("creationDateTime", "yesterday", "regular expression"),
        "unknown": ("failed", True, "Unknown member"),
    }
    for case, (member, value, expected) in bad_cases.items():
        bad = json.loads(json.dumps(good))
        bad["items"][0][member] = value
        with pytest.raises(ResponseInvalid) as caught:
            codec.validate_response(op, bad)
        assert expected in str(caught.value), case
        assert f"items[0].{member}" in str(caught.value), case
    missing = {"items": [{"status": "COMPLETED"}]}
    problems = check_shape(op.output_shape, missing)
    assert "Value null at 'items[0].jobID'" in format_problems(problems)


def test_an_emulator_bug_answers_500_with_the_detail(
    endpoint: Any, admin: Admin, client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    drs: DrsEmulator = endpoint.app.drs
    monkeypatch.setattr(drs, "describe_jobs", lambda caller, params: {"items": [{"status": "X"}]})
    response = error_of(client("drs", retries=1).describe_jobs)
    assert response["Error"]["Code"] == "InternalServerException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "items[0].jobID" in response["Error"]["Message"]


def test_error_bodies_follow_the_error_shapes() -> None:
    codec = ServiceCodec("drs")
    status, headers, body = codec.serialize_error(
        ServiceError("ThrottlingException", "slow down", retryAfterSeconds="3")
    )
    assert status == 429
    assert headers["x-amzn-ErrorType"] == "ThrottlingException"
    assert headers["Retry-After"] == "3"
    assert json.loads(body) == {"message": "slow down"}
    with pytest.raises(ResponseInvalid):
        codec.serialize_error(ServiceError("ValidationException", "x", reason="not-a-reason"))


def test_knobs_draw_from_a_seeded_rng() -> None:
    first, second = Knobs(SandboxConfig(seed=7)), Knobs(SandboxConfig(seed=7))
    assert [first.launch_seconds() for _ in range(5)] == [second.launch_seconds() for _ in range(5)]
    assert all(2 <= first.launch_seconds() <= 6 for _ in range(20))
    assert iso_duration(30) == "PT30S" and iso_duration(3725) == "PT1H2M5S"
    assert iso_duration(0) == "PT0S" and iso_duration(90000) == "P1DT1H"
