"""The emulated ONTAP REST API (SnapMirror relationships, PATCH state, jobs) and FSx
DescribeFileSystems with ONTAP endpoints, in process."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from werkzeug.test import Client

from sandbox.emulators import ConfigError, Knobs
from sandbox.emulators.ontap import OntapRestEmulator, iso_duration

FS = "fs-0123456789abcdef0"


def emulator(**extra: Any) -> tuple[Client, OntapRestEmulator]:
    ontap = OntapRestEmulator(Knobs())
    ontap.configure(
        {
            "file_system_id": FS,
            "password": "pw",
            "relationships": [
                {"source_path": "a:v1", "destination_path": "b:v1_dst", "lag_seconds": 312} | extra
            ],
        }
    )
    return Client(lambda env, start: ontap.handle(_request(env))(env, start)), ontap


def _request(env: dict[str, Any]) -> Any:
    from werkzeug.wrappers import Request

    return Request(env)


AUTH = {"Authorization": "Basic " + base64.b64encode(b"fsxadmin:pw").decode()}


def test_relationships_report_state_health_and_lag_as_iso_duration() -> None:
    client, _ = emulator()
    answer = client.get(f"/_ontap/{FS}/api/snapmirror/relationships", headers=AUTH)
    assert answer.status_code == 200
    [record] = json.loads(answer.data)["records"]
    assert record["state"] == "snapmirrored" and record["healthy"] is True
    assert record["lag_time"] == "PT5M12S"
    assert record["destination"]["path"] == "b:v1_dst"


def test_wrong_credentials_answer_401() -> None:
    client, _ = emulator()
    bad = {"Authorization": "Basic " + base64.b64encode(b"fsxadmin:no").decode()}
    answer = client.get(f"/_ontap/{FS}/api/snapmirror/relationships", headers=bad)
    assert answer.status_code == 401


def test_break_then_resync_run_as_jobs_and_a_second_break_is_refused() -> None:
    client, ontap = emulator()
    [record] = json.loads(
        client.get(f"/_ontap/{FS}/api/snapmirror/relationships", headers=AUTH).data
    )["records"]
    path = f"/_ontap/{FS}/api/snapmirror/relationships/{record['uuid']}"
    answer = client.patch(path, headers=AUTH, json={"state": "broken_off"})
    assert answer.status_code == 202
    job = json.loads(answer.data)["job"]["uuid"]
    status = json.loads(client.get(f"/_ontap/{FS}/api/cluster/jobs/{job}", headers=AUTH).data)
    assert status["state"] == "success"
    assert ontap.state(FS) == {"b:v1_dst": "broken_off"}
    again = client.patch(path, headers=AUTH, json={"state": "broken_off"})
    assert again.status_code == 409 and "broken_off" in json.loads(again.data)["error"]["message"]
    assert client.patch(path, headers=AUTH, json={"state": "snapmirrored"}).status_code == 202
    assert ontap.state(FS) == {"b:v1_dst": "snapmirrored"}


def test_unhealthy_relationships_say_why_and_failing_jobs_fail() -> None:
    client, ontap = emulator(healthy=False, fail_jobs=True)
    [record] = json.loads(
        client.get(f"/_ontap/{FS}/api/snapmirror/relationships", headers=AUTH).data
    )["records"]
    assert record["healthy"] is False and record["unhealthy_reason"]
    path = f"/_ontap/{FS}/api/snapmirror/relationships/{record['uuid']}"
    job = json.loads(client.patch(path, headers=AUTH, json={"state": "broken_off"}).data)
    status = json.loads(
        client.get(f"/_ontap/{FS}/api/cluster/jobs/{job['job']['uuid']}", headers=AUTH).data
    )
    assert status["state"] == "failure"
    assert ontap.state(FS) == {"b:v1_dst": "snapmirrored"}


def test_a_bad_registration_names_the_bad_value() -> None:
    with pytest.raises(ConfigError, match="file_system_id"):
        OntapRestEmulator(Knobs()).configure({"file_system_id": "nope", "password": "x"})


@pytest.mark.parametrize(("seconds", "text"), [(0, "PT0S"), (312, "PT5M12S"), (90000, "P1DT1H")])
def test_iso_durations(seconds: int, text: str) -> None:
    assert iso_duration(seconds) == text
