"""Credentials-endpoint mode: group meta ``webid_mode`` and ``--mode``.

The workload tasks get the container-credentials pair instead of the web
identity pair; the sidecar serves the endpoint; the group must share one
network namespace (bridge or CNI), else the job is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.nomad.helpers import ROLE, Run, groups_of, hcl_job, tasks_of

Inject = Callable[..., Run]
WriteJob = Callable[..., Path]

URI = "http://127.0.0.1:8082/v1/credentials"
AUTH_FILE = "${NOMAD_ALLOC_DIR}/webid/credentials-auth-token"

JOB = """\
job "j" {
  group "g" {
    meta {
      webid_role_arn = "arn:aws:iam::111122223333:role/meta"
      META_MODE
    }

    NETWORK

    task "app" {
      driver = "docker"
    }
  }
}
"""


def job_text(*, mode: str | None = None, network: str = 'mode = "bridge"') -> str:
    meta = f"webid_mode     = {mode}" if mode else ""
    block = f"network {{\n      {network}\n    }}" if network else ""
    return JOB.replace("META_MODE", meta).replace("NETWORK", block)


def _ok(run: Run) -> str:
    assert run.code == 0, run.err
    return run.out


def _group(out: str) -> dict[str, dict[str, Any]]:
    return tasks_of(groups_of(hcl_job(out))["g"])


def _env(task: dict[str, Any]) -> dict[str, Any]:
    (env,) = task["env"]
    return {k: v for k, v in env.items() if not k.startswith("__")}


@pytest.mark.parametrize(
    ("meta", "args"),
    [
        ('"credentials-endpoint"', ()),
        (None, ("--mode", "credentials-endpoint")),
        ('"credentials-endpoint"', ("--mode", "web-identity")),
    ],
    ids=["meta", "flag", "meta-wins-over-flag"],
)
def test_endpoint_mode_env_of_every_task(
    meta: str | None, args: tuple[str, ...], inject: Inject, write_job: WriteJob
) -> None:
    out = _ok(
        inject(
            write_job(job_text(mode=meta)),
            "--session-name",
            "jobs",
            "--region",
            "eu-west-1",
            *args,
        )
    )
    tasks = _group(out)
    assert _env(tasks["app"]) == {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": URI,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": AUTH_FILE,
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    agent = _env(tasks["webid-agent"])
    assert {k: v for k, v in agent.items() if k not in _common(agent)} == {
        "WEBID_SERVE_CREDENTIALS": "true",
        "WEBID_ROLE_ARN": "arn:aws:iam::111122223333:role/meta",
        "WEBID_CREDENTIALS_LISTEN": "127.0.0.1:8082",
        "WEBID_CREDENTIALS_AUTH_TOKEN_FILE": AUTH_FILE,
        "WEBID_SESSION_NAME": "jobs",
        "WEBID_REGION": "eu-west-1",
    }
    token = _env(tasks["webid-token"])
    assert {k: v for k, v in token.items() if k not in _common(token)} == {
        "WEBID_CREDENTIALS_AUTH_TOKEN_FILE": AUTH_FILE
    }


def _common(env: dict[str, Any]) -> set[str]:
    """The agent variables both modes share (IdP settings, token file)."""
    return {
        "WEBID_PROVIDER",
        "WEBID_AUTHORITY",
        "WEBID_CLIENT_ID",
        "WEBID_CLIENT_SECRET_FILE",
        "WEBID_AUDIENCE",
        "WEBID_TOKEN_FILE",
    } & set(env)


def test_web_identity_meta_wins_over_the_endpoint_flag(
    inject: Inject, write_job: WriteJob
) -> None:
    text = job_text(mode='"web-identity"', network="")
    tasks = _group(_ok(inject(write_job(text), "--mode", "credentials-endpoint")))
    env = _env(tasks["app"])
    assert set(env) == {"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"}
    assert "WEBID_SERVE_CREDENTIALS" not in _env(tasks["webid-agent"])


@pytest.mark.parametrize("network", ['mode = "bridge"', 'mode = "cni/mesh"'])
def test_endpoint_mode_twice_is_once(
    network: str, inject: Inject, write_job: WriteJob
) -> None:
    text = job_text(mode='"credentials-endpoint"', network=network)
    once = _ok(inject(write_job(text)))
    assert _ok(inject(write_job(once, "again.hcl"))) == once


@pytest.mark.parametrize(
    ("meta", "network", "needle", "line"),
    [
        ('"credentials-endpoint"', "", "uses network mode 'host'", 2),
        ('"credentials-endpoint"', 'mode = "host"', "add network { mode", 9),
        ('"credentials-endpoint"', 'mode = "none"', "network mode 'none'", 9),
        ('"imds"', 'mode = "bridge"', "unknown mode 'imds'", 5),
        ("var.mode", 'mode = "bridge"', "must be a string literal", 5),
    ],
)
def test_refusals_name_file_and_line(
    meta: str,
    network: str,
    needle: str,
    line: int,
    inject: Inject,
    write_job: WriteJob,
) -> None:
    path = write_job(job_text(mode=meta, network=network))
    run = inject(path)
    assert run.code == 2
    assert needle in run.err
    assert f"{path}:{line}" in run.err
    assert run.out == ""


def test_network_mode_expression_is_a_warning(
    inject: Inject, write_job: WriteJob
) -> None:
    text = job_text(mode='"credentials-endpoint"', network="mode = var.net")
    run = inject(write_job(text))
    _ok(run)
    assert "network mode is an expression (var.net)" in run.err


def test_role_expression_reaches_the_agent_as_written(
    inject: Inject, write_job: WriteJob
) -> None:
    text = job_text(mode='"credentials-endpoint"').replace(
        '"arn:aws:iam::111122223333:role/meta"', "var.role"
    )
    out = _ok(inject(write_job(text)))
    assert "WEBID_ROLE_ARN                    = var.role" in out
    assert "AWS_ROLE_ARN" not in out


def test_json_job_in_endpoint_mode(inject: Inject, write_job: WriteJob) -> None:
    job = {
        "ID": "j",
        "TaskGroups": [
            {
                "Name": "g",
                "Networks": [{"Mode": "bridge"}],
                "Tasks": [{"Name": "app", "Driver": "docker"}],
            }
        ],
    }
    path = write_job(json.dumps(job), "job.json")
    out = _ok(inject(path, "--role-arn", ROLE, "--mode", "credentials-endpoint"))
    tasks = {t["Name"]: t for t in json.loads(out)["TaskGroups"][0]["Tasks"]}
    assert tasks["app"]["Env"] == {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": URI,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": AUTH_FILE,
    }
    assert tasks["webid-agent"]["Env"]["WEBID_ROLE_ARN"] == ROLE

    # host networking is refused, naming the JSON pointer
    del job["TaskGroups"][0]["Networks"]  # type: ignore[index]
    path.write_text(json.dumps(job))
    run = inject(path, "--role-arn", ROLE, "--mode", "credentials-endpoint")
    assert run.code == 2
    assert "/TaskGroups/0/Networks" in run.err
    assert "network mode 'host'" in run.err

    # a bad meta value names its pointer
    job["TaskGroups"][0]["Meta"] = {"webid_mode": "imds"}  # type: ignore[index]
    path.write_text(json.dumps(job))
    run = inject(path, "--role-arn", ROLE)
    assert run.code == 2
    assert "/TaskGroups/0/Meta/webid_mode" in run.err


def test_bad_mode_flag_is_a_usage_error(inject: Inject, write_job: WriteJob) -> None:
    run = inject(write_job(job_text()), "--mode", "imds")
    assert run.code == 2
    assert "--mode" in run.err


# -- --region (and its old name, --aws-region) --------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("--region", "eu-west-1"),
        ("--aws-region", "eu-west-1"),
        ("--region", "eu-west-1", "--aws-region", "eu-west-1"),
    ],
    ids=["region", "old-name", "both-agree"],
)
def test_region_and_its_hidden_old_name(
    args: tuple[str, ...], inject: Inject, write_job: WriteJob
) -> None:
    out = _ok(inject(write_job(job_text(network="")), *args))
    env = _env(_group(out)["app"])
    assert (env["AWS_REGION"], env["AWS_DEFAULT_REGION"]) == ("eu-west-1",) * 2


def test_region_from_webid_region(
    inject: Inject, write_job: WriteJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBID_REGION", "ap-south-1")
    out = _ok(inject(write_job(job_text(network=""))))
    assert _env(_group(out)["app"])["AWS_REGION"] == "ap-south-1"


def test_region_and_old_name_disagreeing_exit_2(
    inject: Inject, write_job: WriteJob
) -> None:
    path = write_job(job_text(network=""))
    run = inject(path, "--region", "eu-west-1", "--aws-region", "us-east-1")
    assert run.code == 2
    assert "--aws-region is the old name of --region" in run.err


def test_help_shows_region_not_the_old_name(webid: Callable[..., Run]) -> None:
    run = webid("inject", "nomad", "--help")
    assert "--region" in run.out
    assert "--aws-region" not in run.out
