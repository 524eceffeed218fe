"""The README tells the truth: its commands run, its option table is complete.

``console`` blocks run as they are (from the repository root). ``sh`` blocks
need an IdP: they run against the local one, with the README's placeholders
($ISSUER, $CLIENT_ID, $ROLE_ARN, client-secret) pointing at it.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.config import _OPTIONS
from devenv.idp import Idp

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def blocks(kind: str) -> list[str]:
    lines = []
    for block in re.findall(rf"```{kind}\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.removeprefix("$ ")
            if line.startswith("webid-agent "):
                lines.append(line)
    return lines


def webid(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "agent", *argv],
        capture_output=True, text=True, timeout=120, check=False, **kwargs,
    )  # fmt: skip


def test_readme_shows_both_commands() -> None:
    assert "scripts/quickstart.sh" in README
    assert "scripts/test.sh" in README
    assert len(blocks("console")) >= 5
    assert len(blocks("sh")) >= 4


@pytest.mark.parametrize("command", blocks("console"))
def test_console_command_runs(command: str) -> None:
    result = webid(shlex.split(command)[1:], cwd=REPO)

    assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert result.stdout.strip()


def test_every_engine_option_is_in_the_table() -> None:
    for decls, _ in _OPTIONS:
        name = decls[0]
        env = "WEBID_" + name.lstrip("-").replace("-", "_").upper()
        assert re.search(rf"^\| `{name}[ `].*\| `{env}` \|", README, re.M), name


@pytest.fixture
def placeholders(
    idp: Idp, role_arn: str, checked_sts: Any, tmp_path: Path
) -> dict[str, str]:
    """The README's placeholders, filled in for the local IdP."""
    (tmp_path / "client-secret").write_text(idp.client("webid-secret").secret or "")
    return {
        **os.environ,
        "ISSUER": idp.issuer,
        "CLIENT_ID": "webid-secret",
        "ROLE_ARN": role_arn,
        "WEBID_CA_BUNDLE": str(idp.ca_file),
        "AWS_ENDPOINT_URL_STS": checked_sts.endpoint_url,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def expand(command: str, env: dict[str, str]) -> list[str]:
    argv = shlex.split(os.path.expandvars(command.replace('"', "")))
    for key, value in env.items():
        argv = [a.replace(f"${key}", value) for a in argv]
    return argv[1:]


@pytest.mark.parametrize(
    "command", [c for c in blocks("sh") if c.split()[1] in ("token", "doctor")]
)
def test_idp_command_runs(
    command: str, placeholders: dict[str, str], tmp_path: Path
) -> None:
    result = webid(expand(command, placeholders), cwd=tmp_path, env=placeholders)

    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"


def test_run_command_keeps_a_token(
    placeholders: dict[str, str], tmp_path: Path
) -> None:
    (command,) = [c for c in blocks("sh") if c.split()[1] == "run"]
    env = {
        **placeholders,
        "WEBID_LISTEN": "127.0.0.1:0",
    }  # the default port may be taken
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "agent", *expand(command, placeholders)],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 30
        while not (tmp_path / "token").exists() and time.time() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "token").read_text().count(".") == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


@pytest.mark.docker
def test_docker_command_runs(
    placeholders: dict[str, str], tmp_path: Path, docker_client: Any, agent_image: str
) -> None:
    (command,) = [c for c in blocks("sh") if c.split()[1] == "docker"]
    default = docker_client.images.get(agent_image)
    default.tag("webid-agent", "0.1.0")
    docker_client.images.get("webid-base:bookworm").tag("my-image", "latest")

    result = webid(expand(command, placeholders), cwd=tmp_path, env=placeholders)

    assert result.returncode == 0, result.stderr
    assert "waiting for the first token" in result.stderr


@pytest.mark.docker
def test_quickstart_runs(docker_client: Any, agent_image: str, app_image: str) -> None:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "devenv.quickstart"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ASSUMED arn:aws:sts::123456789012:assumed-role/quickstart-app/" in (
        result.stdout
    )
