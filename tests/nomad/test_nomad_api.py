"""API mode against an HTTP double of Nomad's documented endpoints.

The double answers ``POST /v1/jobs/parse``, ``POST /v1/job/:id/plan``,
``POST /v1/jobs`` and ``GET /v1/job/:id`` with the documented shapes; the
tests check the exact requests the injector sends (path, query, token header,
body) and what it does with the answers.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.nomad.helpers import CASES, IDP_ARGS, Run

N02 = CASES / "n02-variables-and-locals.nomad.hcl"
NOMAD_TOKEN = "0d5e6a10-test-acl-token"
NAMESPACE = "team-a"

Webid = Callable[..., Run]

# what Nomad's parse endpoint returns for n02 (variables evaluated)
PARSED_N02: dict[str, Any] = {
    "ID": "ingest",
    "Name": "ingest",
    "Namespace": NAMESPACE,
    "Type": "service",
    "Datacenters": ["dc1"],
    "TaskGroups": [
        {
            "Name": "workers",
            "Count": 3,
            "Meta": {"webid_role_arn": "arn:aws:iam::111122223333:role/ingest"},
            "Tasks": [
                {
                    "Name": "worker",
                    "Driver": "docker",
                    "Config": {
                        "image": "registry.example/ingest/worker:eu-west-1-1.0",
                        "args": [
                            "--region",
                            "eu-west-1",
                            "--tmp",
                            "${NOMAD_TASK_DIR}/tmp",
                        ],
                    },
                    "Env": {"AWS_REGION": "eu-west-1"},
                    "Lifecycle": None,
                    "Templates": None,
                }
            ],
        }
    ],
}

PLAN_ANSWER: dict[str, Any] = {
    "JobModifyIndex": 7,
    "Diff": {
        "Type": "Edited",
        "ID": "ingest",
        "Fields": None,
        "Objects": None,
        "TaskGroups": [
            {
                "Type": "Edited",
                "Name": "workers",
                "Fields": None,
                "Objects": None,
                "Updates": {"create/destroy update": 3},
                "Tasks": [
                    {
                        "Type": "Added",
                        "Name": "webid-token",
                        "Fields": [
                            {
                                "Type": "Added",
                                "Name": "Driver",
                                "Old": "",
                                "New": "docker",
                            }
                        ],
                        "Objects": None,
                    },
                    {
                        "Type": "Edited",
                        "Name": "worker",
                        "Fields": [
                            {
                                "Type": "Added",
                                "Name": "Env[AWS_ROLE_ARN]",
                                "Old": "",
                                "New": "arn:aws:iam::111122223333:role/ingest",
                            },
                            {
                                "Type": "None",
                                "Name": "Driver",
                                "Old": "docker",
                                "New": "docker",
                            },
                        ],
                        "Objects": None,
                    },
                ],
            }
        ],
    },
    "FailedTGAllocs": None,
}


@pytest.fixture
def nomad_env(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    """Point NOMAD_ADDR/NOMAD_TOKEN/NOMAD_NAMESPACE at the HTTP double."""
    monkeypatch.setenv("NOMAD_ADDR", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("NOMAD_TOKEN", NOMAD_TOKEN)
    monkeypatch.setenv("NOMAD_NAMESPACE", NAMESPACE)
    return httpserver


def _inject(webid: Webid, *args: str | Path) -> Run:
    return webid("inject", "nomad", *args, *IDP_ARGS)


def _expect(server: HTTPServer, method: str, path: str, **kwargs: Any) -> Any:
    return server.expect_ordered_request(
        path,
        method=method,
        query_string={"namespace": NAMESPACE},
        headers={"X-Nomad-Token": NOMAD_TOKEN},
        **kwargs,
    )


def _bodies(server: HTTPServer) -> list[tuple[str, str, Any]]:
    return [
        (req.method, req.path, json.loads(req.data) if req.data else None)
        for req, _ in server.log
    ]


def test_plan_parses_with_nomad_then_plans_the_injected_job(
    webid: Webid, nomad_env: HTTPServer
) -> None:
    text = N02.read_text()
    _expect(
        nomad_env,
        "POST",
        "/v1/jobs/parse",
        json={"JobHCL": text, "Canonicalize": True},
    ).respond_with_json(PARSED_N02)
    _expect(nomad_env, "POST", "/v1/job/ingest/plan").respond_with_json(PLAN_ANSWER)

    run = _inject(webid, N02, "--plan")
    assert run.code == 0, run.err
    nomad_env.check_assertions()

    # exactly two calls; the plan carries the injected job with diff asked
    calls = _bodies(nomad_env)
    assert [(m, p) for m, p, _ in calls] == [
        ("POST", "/v1/jobs/parse"),
        ("POST", "/v1/job/ingest/plan"),
    ]
    plan = calls[1][2]
    assert plan["Diff"] is True and plan["PolicyOverride"] is False
    (group,) = plan["Job"]["TaskGroups"]
    assert [t["Name"] for t in group["Tasks"]] == [
        "worker",
        "webid-token",
        "webid-agent",
    ]
    assert group["Tasks"][0]["Env"] == {
        "AWS_REGION": "eu-west-1",
        "AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/ingest",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "${NOMAD_ALLOC_DIR}/webid/token",
    }

    # the diff is shown; the token never is
    assert "~   Task Group: 'workers' (3 create/destroy update)" in run.out
    assert "+     Task: 'webid-token'" in run.out
    assert (
        "+       Env[AWS_ROLE_ARN]: 'arn:aws:iam::111122223333:role/ingest'" in run.out
    )
    assert "Driver: 'docker' => " not in run.out
    assert NOMAD_TOKEN not in run.out + run.err


def test_submit_registers_with_the_planned_index(
    webid: Webid, nomad_env: HTTPServer, tmp_path: Path
) -> None:
    _expect(nomad_env, "POST", "/v1/jobs/parse").respond_with_json(PARSED_N02)
    _expect(nomad_env, "POST", "/v1/job/ingest/plan").respond_with_json(PLAN_ANSWER)
    _expect(nomad_env, "POST", "/v1/jobs").respond_with_json(
        {"EvalID": "d092fdc0-e1fd-2536-67d8-43af8ca798ac", "JobModifyIndex": 8}
    )
    output = tmp_path / "injected.json"
    run = _inject(webid, N02, "--submit", "-o", output)
    assert run.code == 0, run.err
    nomad_env.check_assertions()

    register = _bodies(nomad_env)[2][2]
    assert register["EnforceIndex"] is True
    assert register["JobModifyIndex"] == 7
    assert register["Job"] == json.loads(output.read_text())["Job"]
    assert "evaluation d092fdc0-e1fd-2536-67d8-43af8ca798ac" in run.out


def test_job_id_reads_injects_and_plans(webid: Webid, nomad_env: HTTPServer) -> None:
    registered = json.loads((CASES / "n03-api-wrapper.json").read_text())["Job"]
    registered.update({"Status": "running", "Version": 3, "JobModifyIndex": 41})
    _expect(nomad_env, "GET", "/v1/job/billing").respond_with_json(registered)
    _expect(nomad_env, "POST", "/v1/job/billing/plan").respond_with_json(
        {"JobModifyIndex": 41, "Diff": {"Type": "Edited", "ID": "billing"}}
    )
    run = webid("inject", "nomad", "--job-id", "billing", *IDP_ARGS)
    assert run.code == 0, run.err
    nomad_env.check_assertions()
    planned = _bodies(nomad_env)[1][2]["Job"]
    tasks = [t["Name"] for t in planned["TaskGroups"][0]["Tasks"]]
    assert tasks == ["exporter", "webid-token", "webid-agent"]
    assert planned["Version"] == 3
    assert "~ Job: 'billing'" in run.out


def test_a_parse_result_that_lost_a_task_is_refused(
    webid: Webid, nomad_env: HTTPServer
) -> None:
    lost = json.loads(json.dumps(PARSED_N02))
    lost["TaskGroups"][0]["Tasks"] = []
    _expect(nomad_env, "POST", "/v1/jobs/parse").respond_with_json(lost)
    run = _inject(webid, N02, "--plan")
    assert run.code == 2
    assert f"{N02}:29: Nomad's parse result lost task 'worker'" in run.err
    assert [p for _, p, _ in _bodies(nomad_env)] == ["/v1/jobs/parse"]


def test_nomad_rejecting_the_hcl_exits_2(webid: Webid, nomad_env: HTTPServer) -> None:
    _expect(nomad_env, "POST", "/v1/jobs/parse").respond_with_data(
        'input.hcl:24,13-14: Unsupported argument; "cuont" is not expected here',
        status=400,
    )
    run = _inject(webid, N02, "--plan")
    assert run.code == 2
    assert "Nomad refused the job: input.hcl:24,13-14: Unsupported argument" in run.err


def test_permission_denied_exits_1(webid: Webid, nomad_env: HTTPServer) -> None:
    _expect(nomad_env, "POST", "/v1/jobs/parse").respond_with_json(PARSED_N02)
    _expect(nomad_env, "POST", "/v1/job/ingest/plan").respond_with_data(
        "Permission denied", status=403
    )
    run = _inject(webid, N02, "--submit")
    assert run.code == 1
    assert "POST /v1/job/ingest/plan: permission denied" in run.err
    assert NOMAD_TOKEN not in run.err
    assert len(nomad_env.log) == 2


def test_json_input_skips_the_parse_endpoint(
    webid: Webid, nomad_env: HTTPServer
) -> None:
    _expect(nomad_env, "POST", "/v1/job/reports/plan").respond_with_json(
        {"JobModifyIndex": 0, "Diff": {"Type": "Added", "ID": "reports"}}
    )
    run = _inject(
        webid,
        CASES / "n04-bare-job.json",
        "--plan",
        "--role-arn",
        "arn:aws:iam::111122223333:role/reports",
    )
    assert run.code == 0, run.err
    assert [p for _, p, _ in _bodies(nomad_env)] == ["/v1/job/reports/plan"]
    assert "+ Job: 'reports'" in run.out


# -- TLS ------------------------------------------------------------------------------


@pytest.fixture
def tls_nomad(tmp_path: Path) -> Iterator[tuple[HTTPServer, Path]]:
    """A Nomad double over HTTPS with a throw-away CA; yields (server, CA file)."""
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "nomad-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    yield server, ca_file
    server.clear()
    if server.is_running():
        server.stop()


def _parse_handler(request: Request) -> Response:
    return Response(json.dumps(PARSED_N02), content_type="application/json")


def test_tls_with_the_nomad_ca(
    webid: Webid, tls_nomad: tuple[HTTPServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca_file = tls_nomad
    server.expect_request("/v1/jobs/parse", method="POST").respond_with_handler(
        _parse_handler
    )
    address = f"https://127.0.0.1:{server.port}"
    monkeypatch.setenv("NOMAD_CACERT", str(ca_file))
    run = _inject(webid, N02, "--format", "json", "--nomad-addr", address)
    assert run.code == 0, run.err
    assert json.loads(run.out)["Job"]["ID"] == "ingest"

    # without the CA the server is not trusted: a runtime failure, exit 1
    monkeypatch.delenv("NOMAD_CACERT")
    run = _inject(webid, N02, "--format", "json", "--nomad-addr", address)
    assert run.code == 1
    assert "POST /v1/jobs/parse" in run.err
    assert "TLS certificate is not trusted" in run.err
    assert "SSLError" not in run.err


# -- addresses that do not work --------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("flag", ["--plan", "--format=json"])
def test_unreachable_nomad_is_one_line_exit_1(
    flag: str, webid: Webid, closed_port: int
) -> None:
    address = f"http://127.0.0.1:{closed_port}"
    run = _inject(webid, N02, flag, "--nomad-addr", address)
    assert run.code == 1
    (line,) = [x for x in run.err.splitlines() if "error:" in x]
    assert f"{address} POST /v1/jobs/parse: cannot reach Nomad: connection refused" in (
        line
    )
    for dump in ("HTTPConnectionPool", "Max retries", "Errno", "Traceback"):
        assert dump not in run.err
    # HCL to JSON: the user is told why Nomad was asked at all
    assert ("needs the Nomad API" in line) == (flag == "--format=json")


def test_default_address_is_said_when_unreachable(
    webid: Webid, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from injectors.nomad import api

    monkeypatch.setattr(api, "DEFAULT_ADDRESS", f"http://127.0.0.1:{closed_port}")
    run = _inject(webid, N02, "--format", "json")
    assert run.code == 1
    assert "no NOMAD_ADDR or --nomad-addr was given: default address" in run.err
    assert "asking Nomad at http://127.0.0.1:" in run.err


@pytest.mark.parametrize(
    "address",
    [
        "notaurl",
        "127.0.0.1:4646",
        "ftp://127.0.0.1:4646",
        "http://[::1",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:4646/v1",
        "http://",
    ],
)
def test_malformed_address_exits_2_before_any_call(
    address: str, webid: Webid, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOMAD_ADDR", address)
    run = _inject(webid, N02, "--plan")
    assert run.code == 2
    (line,) = [x for x in run.err.splitlines() if "error:" in x]
    assert "--nomad-addr/NOMAD_ADDR" in line
    assert repr(address) in line
    assert "MissingSchema" not in run.err and "InvalidSchema" not in run.err


def test_help_says_hcl_to_json_needs_nomad(webid: Webid) -> None:
    run = webid("inject", "nomad", "--help")
    assert run.code == 0
    assert "HCL to JSON needs the Nomad API" in " ".join(run.out.split())


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed_with_the_token(
    webid: Webid, nomad_env: HTTPServer, status: int
) -> None:
    elsewhere = nomad_env.url_for("/elsewhere/v1/jobs/parse")
    _expect(nomad_env, "POST", "/v1/jobs/parse").respond_with_data(
        "", status=status, headers={"Location": elsewhere}
    )

    run = _inject(webid, N02, "--plan")

    assert run.code == 1
    assert f"redirecting to {elsewhere}; not followed" in run.err
    assert NOMAD_TOKEN not in run.err
    assert [req.path for req, _ in nomad_env.log] == ["/v1/jobs/parse"]
