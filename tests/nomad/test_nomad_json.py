"""JSON jobs: both shapes, golden outputs, env merge, idempotence, errors."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.nomad.helpers import CASES, GOLDEN, ROLE, Run

JSON_CASES = sorted(p.name for p in CASES.glob("*.json"))
TOKEN_PATH = "${NOMAD_ALLOC_DIR}/webid/token"

Inject = Callable[..., Run]
WriteJob = Callable[..., Path]


def _ok(run: Run) -> str:
    assert run.code == 0, run.err
    return run.out


def _job(document: dict[str, Any]) -> dict[str, Any]:
    job: dict[str, Any] = document.get("Job", document)
    return job


def _tasks(job: dict[str, Any], group: str) -> dict[str, dict[str, Any]]:
    (found,) = [g for g in job["TaskGroups"] if g["Name"] == group]
    return {t["Name"]: t for t in found["Tasks"]}


@pytest.mark.parametrize("case", JSON_CASES)
def test_golden_output(case: str, inject: Inject) -> None:
    out = _ok(inject(CASES / case, "--role-arn", ROLE))
    golden = GOLDEN / case
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(out)
    assert out == golden.read_text()


@pytest.mark.parametrize("case", JSON_CASES)
def test_wrapper_shape_is_kept(case: str, inject: Inject) -> None:
    before = json.loads((CASES / case).read_text())
    after = json.loads(_ok(inject(CASES / case, "--role-arn", ROLE)))
    assert ("Job" in after) == ("Job" in before)
    assert list(after) == list(before)
    assert list(_job(after)) == list(_job(before))


@pytest.mark.parametrize("case", JSON_CASES)
def test_injecting_twice_changes_nothing(
    case: str, inject: Inject, write_job: WriteJob
) -> None:
    once = _ok(inject(CASES / case, "--role-arn", ROLE))
    twice = _ok(inject(write_job(once, "once.json"), "--role-arn", ROLE))
    assert twice == once


def test_api_wrapper_case(inject: Inject) -> None:
    doc = json.loads(_ok(inject(CASES / "n03-api-wrapper.json")))
    export = _tasks(doc["Job"], "export")
    assert list(export) == ["exporter", "webid-token", "webid-agent"]
    assert export["exporter"]["Env"] == {
        "TARGET": "s3://billing-exports/daily",
        "AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/billing-export",
        "AWS_WEB_IDENTITY_TOKEN_FILE": TOKEN_PATH,
    }
    assert export["webid-token"]["Lifecycle"] == {"Hook": "prestart", "Sidecar": False}
    assert export["webid-agent"]["Lifecycle"] == {"Hook": "prestart", "Sidecar": True}
    (template,) = export["webid-agent"]["Templates"]
    assert template["DestPath"] == "secrets/client-secret"
    assert template["EmbeddedTmpl"] == (
        '{{ with nomadVar "nomad/jobs/billing/export" }}'
        "{{ .webid_client_secret }}{{ end }}"
    )
    # the group without a role is untouched, its null Env included
    notify = _tasks(doc["Job"], "notify")
    assert list(notify) == ["mailer"]
    assert notify["mailer"]["Env"] is None


def test_null_env_becomes_an_object(inject: Inject) -> None:
    doc = json.loads(_ok(inject(CASES / "n03-api-wrapper.json", "--role-arn", ROLE)))
    env = _tasks(doc["Job"], "notify")["mailer"]["Env"]
    assert env == {"AWS_ROLE_ARN": ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": TOKEN_PATH}


def test_existing_variable_wins_with_a_warning(
    inject: Inject, write_job: WriteJob
) -> None:
    doc = json.loads((CASES / "n04-bare-job.json").read_text())
    doc["TaskGroups"][0]["Tasks"][0]["Env"] = {"AWS_ROLE_ARN": "mine"}
    run = inject(write_job(json.dumps(doc), "job.json"), "--role-arn", ROLE)
    env = _tasks(json.loads(_ok(run)), "web")["app"]["Env"]
    assert env["AWS_ROLE_ARN"] == "mine"
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == TOKEN_PATH
    assert "keeps its own AWS_ROLE_ARN" in run.err
    assert "/TaskGroups/0/Tasks/0" in run.err


def test_template_envvars_warn(inject: Inject, write_job: WriteJob) -> None:
    doc = json.loads((CASES / "n04-bare-job.json").read_text())
    doc["TaskGroups"][0]["Tasks"][0]["Templates"] = [
        {"DestPath": "local/x.env", "EmbeddedTmpl": "A=1", "Envvars": True}
    ]
    run = inject(write_job(json.dumps(doc), "job.json"), "--role-arn", ROLE)
    _ok(run)
    assert "sets env from a template" in run.err


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"Job": {"ID": "x", "TaskGroups": []}}', "/Job/TaskGroups: job has no"),
        ('{"ID": "x"}', "job.json: /TaskGroups: job has no TaskGroups"),
        ('{"job": {"x": {}}}', "HCL's JSON syntax"),
        ("[1]", "expected a JSON object"),
        ('{"ID": "x",\n "TaskGroups": [,]}', "job.json:2:17: JSON syntax error"),
        (
            '{"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", '
            '"Env": "A=1"}]}]}',
            "/TaskGroups/0/Tasks/0/Env: Env must be an object",
        ),
        (
            '{"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [], '
            '"Meta": {"webid_role_arn": "arn:aws:iam::1:role/x"}}]}',
            "/TaskGroups/0/Meta/webid_role_arn: not an IAM role ARN",
        ),
    ],
)
def test_bad_json_exits_2(
    document: str, message: str, inject: Inject, write_job: WriteJob
) -> None:
    path = write_job(document, "job.json")
    output = path.with_name("out.json")
    run = inject(path, "--role-arn", ROLE, "-o", output)
    assert run.code == 2, run.err
    assert message in run.err
    assert not output.exists()


def test_unknown_group_exits_2(inject: Inject) -> None:
    run = inject(CASES / "n04-bare-job.json", "--role-arn", ROLE, "--group", "api")
    assert run.code == 2
    assert "no group named 'api'" in run.err


def test_hcl_output_from_json_is_refused(inject: Inject) -> None:
    run = inject(CASES / "n04-bare-job.json", "--format", "hcl")
    assert run.code == 2
    assert "JSON input can only be written as JSON" in run.err


def test_json_output_from_hcl_needs_nomad(inject: Inject) -> None:
    run = inject(
        CASES / "n01-two-groups-existing-env.nomad.hcl",
        "--format",
        "json",
        "--nomad-addr",
        "http://127.0.0.1:9",
    )
    assert run.code == 1
    assert "127.0.0.1:9 POST /v1/jobs/parse" in run.err


# -- a user task with one of our names --------------------------------------------


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        ({"Name": "webid-agent", "Driver": "docker"}, "not a prestart sidecar"),
        (
            {"Name": "webid-token", "Lifecycle": {"Hook": "prestart"}, "Env": None},
            "its env has no WEBID_TOKEN_FILE",
        ),
    ],
)
def test_user_task_with_our_name_is_refused(
    task: dict[str, Any], reason: str, inject: Inject, write_job: WriteJob
) -> None:
    doc = json.loads((CASES / "n03-api-wrapper.json").read_text())
    doc["Job"]["TaskGroups"][0]["Tasks"].append(task)
    run = inject(write_job(json.dumps(doc), "job.json"))
    assert run.code == 2, run.err
    assert f"job.json: /Job/TaskGroups/0/Tasks/1: a task is named {task['Name']!r}" in (
        run.err
    )
    assert reason in run.err


def test_our_json_tasks_are_recognised_after_a_driver_change(
    inject: Inject, write_job: WriteJob
) -> None:
    case = CASES / "n04-bare-job.json"
    first = _ok(inject(case, "--role-arn", ROLE, "--driver", "raw_exec"))
    again = _ok(inject(write_job(first, "once.json"), "--role-arn", ROLE))
    assert again == _ok(inject(case, "--role-arn", ROLE))


# -- wrong types anywhere the injector reads ------------------------------------

ROLE_META = {"webid_role_arn": ROLE}


def _bare(**group: Any) -> str:
    base: dict[str, Any] = {"Name": "g", "Tasks": [{"Name": "t"}], **group}
    return json.dumps({"ID": "x", "TaskGroups": [base]})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"ID": "x", "TaskGroups": 5}', "/TaskGroups: TaskGroups must be an array"),
        ('{"ID": "x", "TaskGroups": [5]}', "/TaskGroups/0: expected an object, got a"),
        ('{"ID": 5, "TaskGroups": [{"Name": "g"}]}', "/ID: ID must be a string"),
        ('{"Job": 5}', "/Job: Job must be an object"),
        (_bare(Name=5), "/TaskGroups/0/Name: Name must be a string, got a number"),
        (_bare(Tasks=5), "/TaskGroups/0/Tasks: Tasks must be an array, got a"),
        (_bare(Tasks=[5]), "/TaskGroups/0/Tasks/0: expected an object"),
        (_bare(Tasks=[{"Name": ["t"]}]), "/Tasks/0/Name: Name must be a string"),
        (_bare(Tasks=[{}]), "/TaskGroups/0/Tasks/0: task without a Name"),
        (_bare(Meta=5), "/TaskGroups/0/Meta: Meta must be an object, got a number"),
        (_bare(Meta={"webid_role_arn": 5}), "/Meta/webid_role_arn: webid_role_arn"),
        (
            _bare(Meta={**ROLE_META, "webid_mode": True}),
            "/Meta/webid_mode: webid_mode must be a string, got a boolean",
        ),
        (
            _bare(Meta=ROLE_META, Tasks=[{"Name": "t", "Env": {"A": 1}}]),
            "/TaskGroups/0/Tasks/0/Env/A: must be a string, got a number",
        ),
        (
            _bare(Meta=ROLE_META, Tasks=[{"Name": "t", "Templates": 5}]),
            "/Tasks/0/Templates: Templates must be an array",
        ),
        (
            _bare(Meta=ROLE_META, Tasks=[{"Name": "t", "Templates": [None]}]),
            "/Tasks/0/Templates/0: expected an object, got null",
        ),
        (
            _bare(Meta={**ROLE_META, "webid_mode": "credentials-endpoint"}, Networks=5),
            "/TaskGroups/0/Networks: Networks must be an array",
        ),
        (
            _bare(
                Meta={**ROLE_META, "webid_mode": "credentials-endpoint"},
                Networks=[{"Mode": 1}],
            ),
            "/TaskGroups/0/Networks/0/Mode: Mode must be a string",
        ),
        (
            _bare(Meta=ROLE_META, Tasks=[{"Name": "webid-agent", "Lifecycle": 5}]),
            "/Tasks/0/Lifecycle: Lifecycle must be an object",
        ),
    ],
)
def test_wrong_types_exit_2_with_a_pointer(
    document: str, message: str, inject: Inject, write_job: WriteJob
) -> None:
    run = inject(write_job(document, "job.json"))
    assert run.code == 2, run.err
    assert message in run.err
    assert "Traceback" not in run.err
