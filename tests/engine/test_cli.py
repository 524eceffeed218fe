"""The engine's commands end to end in a subprocess: exit codes and output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.engine.conftest import AUDIENCE, CLIENT_ID, CLIENT_SECRET, IdpDouble
from tests.engine.conftest import status as answer


def webid(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def idp_args(idp_double: IdpDouble, secret_file: Path) -> list[str]:
    """Engine options pointing at the double."""
    return [
        "--authority",
        idp_double.issuer,
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        str(secret_file),
        "--audience",
        AUDIENCE,
        "--ca-bundle",
        str(idp_double.ca_file),
    ]


def test_token_prints_claims_not_the_token(
    idp_args: list[str], idp_double: IdpDouble
) -> None:
    result = webid("token", *idp_args)

    assert result.returncode == 0, result.stderr
    claims = json.loads(result.stdout)
    assert claims["iss"] == idp_double.issuer
    assert claims["aud"] == [AUDIENCE]
    assert claims["sub"] == CLIENT_ID
    assert idp_double.issued[0] not in result.stdout + result.stderr


def test_token_writes_file(
    idp_args: list[str], idp_double: IdpDouble, tmp_path: Path
) -> None:
    target = tmp_path / "t" / "token"

    result = webid("token", *idp_args, "--token-file", str(target))

    assert result.returncode == 0, result.stderr
    assert target.read_text() == idp_double.issued[0]
    assert result.stdout == ""


def test_settings_from_environment(
    idp_double: IdpDouble, secret_file: Path, tmp_path: Path
) -> None:
    env = {
        "WEBID_AUTHORITY": idp_double.issuer,
        "WEBID_CLIENT_ID": CLIENT_ID,
        "WEBID_CLIENT_SECRET_FILE": str(secret_file),
        "WEBID_CA_BUNDLE": str(idp_double.ca_file),
        "WEBID_TOKEN_FILE": str(tmp_path / "token"),
    }

    result = webid("token", env=env)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "token").read_text() == idp_double.issued[0]


def test_config_file_and_precedence(
    idp_double: IdpDouble, secret_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "webid.yaml"
    config.write_text(
        f"authority: {idp_double.issuer}\nclient-id: wrong-id\n"
        f"client-secret-file: {secret_file}\nca-bundle: {idp_double.ca_file}\n"
    )

    result = webid("--config", str(config), "token", env={"WEBID_CLIENT_ID": CLIENT_ID})

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sub"] == CLIENT_ID
    _, form, headers = idp_double.requests[0]
    assert "Authorization" in headers  # basic auth with the env's client id


def test_user_ca_bundle_wins_over_environment(
    idp_args: list[str], tmp_path: Path
) -> None:
    system = "/etc/ssl/certs/ca-certificates.crt"
    env = {"REQUESTS_CA_BUNDLE": system, "CURL_CA_BUNDLE": system}

    result = webid("token", *idp_args, env=env)

    assert result.returncode == 0, result.stderr


def test_wrong_ca_is_one_clear_line(idp_double: IdpDouble, secret_file: Path) -> None:
    result = webid(
        "token",
        "--authority",
        idp_double.issuer,
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        str(secret_file),
        "--ca-bundle",
        "/etc/ssl/certs/ca-certificates.crt",
    )

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("webid-agent: error: ")
    assert "TLS verification failed" in lines[-1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["token"], 2, "missing authority"),
        (["token", "--authority", "https://x.example/t"], 2, "missing client id"),
        (
            [
                "token",
                "--authority",
                "https://x.example/t",
                "--client-id",
                "a",
                "--client-secret-file",
                "/nonexistent/s",
            ],
            2,
            "cannot read client secret",
        ),
        (["token", "--refresh-at", "abc"], 2, "Invalid value for '--refresh-at'"),
        (["--config", "/nonexistent.yaml", "token"], 2, "cannot read config file"),
        (["nosuchcommand"], 2, "No such command"),
    ],
)
def test_bad_usage_exits_2_with_one_line(args: list[str], code: int, text: str) -> None:
    result = webid(*args)

    assert result.returncode == code
    assert text in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_idp_exits_1_after_deadline(secret_file: Path) -> None:
    result = webid(
        "token",
        "--authority",
        "https://127.0.0.1:9/tenant1",
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        str(secret_file),
        "--deadline",
        "1",
        "--timeout",
        "0.5",
    )

    assert result.returncode == 1
    assert "no token within the 1s deadline" in result.stderr
    assert "cannot connect" in result.stderr


def test_run_serves_health_and_stops_on_sigterm(
    idp_args: list[str], idp_double: IdpDouble, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "agent",
            "run",
            *idp_args,
            "--token-file",
            str(token_file),
            "--listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        deadline = time.time() + 20
        assert proc.stderr is not None
        while port is None and time.time() < deadline:
            line = proc.stderr.readline()
            if "health and metrics on http://" in line:
                port = int(line.rsplit(":", 1)[1])
        assert port, "health server did not start"
        while not token_file.exists() and time.time() < deadline:
            time.sleep(0.05)

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as response:
            assert json.loads(response.read())["ready"] is True
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            metrics = response.read().decode()
        assert 'webid_token_refreshes_total{result="success"} 1.0' in metrics
        assert idp_double.issued[0] not in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert CLIENT_SECRET not in stderr


def test_run_answers_not_ready_before_first_token(
    idp_args: list[str], idp_double: IdpDouble, tmp_path: Path
) -> None:
    idp_double.then(*[answer(503)] * 1000)
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "agent",
            "run",
            *idp_args,
            "--token-file",
            str(tmp_path / "token"),
            "--listen",
            "127.0.0.1:0",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = ""
        while "health and metrics on" not in line:
            line = proc.stderr.readline()
        port = int(line.rsplit(":", 1)[1])
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz")
        assert info.value.code == 503
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize("value", ["off", "none"])
def test_listen_off_from_environment_disables_the_server(
    idp_args: list[str], tmp_path: Path, value: str
) -> None:
    token_file = tmp_path / "token"
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "agent",
            "run",
            *idp_args,
            "--token-file",
            str(token_file),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WEBID_LISTEN": value},
    )
    try:
        deadline = time.time() + 20
        while not token_file.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert token_file.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "health and metrics on" not in stderr


def test_unknown_config_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text("audiance: sts.amazonaws.com\n")

    result = webid("--config", str(config), "token")

    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"webid-agent: error: {config}: unknown key 'audiance'"
        " (did you mean 'audience'?)"
    )


def test_plugin_keys_are_known_config_keys(tmp_path: Path) -> None:
    config = tmp_path / "shared.yaml"
    config.write_text("image: my/agent:1\nmapping: m.yaml\nrole-arn: x\n")

    result = webid("--config", str(config), "token")

    assert result.returncode == 2
    assert "missing authority" in result.stderr  # the keys passed, the IdP did not


def test_usage_errors_are_one_line() -> None:
    result = webid("token", "--refresh-at", "abc")

    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "(see 'webid-agent token --help')" in result.stderr


def test_engine_command_keys_cover_credential_process_run_and_token() -> None:
    """credential-process with --config must not pay for importing every plugin."""
    from agent.aws.credential_process import credential_process
    from agent.cli import ENGINE_COMMAND_KEYS
    from agent.commands import run, token
    from agent.config import ENGINE_OPTION_NAMES

    names = {
        p.name for command in (credential_process, run, token) for p in command.params
    }

    assert names - {None} <= set(ENGINE_OPTION_NAMES) | ENGINE_COMMAND_KEYS
