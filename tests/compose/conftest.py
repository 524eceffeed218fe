"""Fixtures for the Compose injector: the CLI, IdP settings, a Compose validator."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main
from tests.compose.helpers import CLIENT_SECRET, CliResult, RunCli


@pytest.fixture
def run_cli() -> RunCli:
    """Run ``webid-agent ARGS`` in-process through ``main`` (real exit codes)."""

    def run(*args: str) -> CliResult:
        runner = CliRunner()
        with runner.isolation() as (out, err, _):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            return CliResult(code, out.getvalue().decode(), err.getvalue().decode())

    return run


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Compose project folder (the cwd) with a client secret file in it."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "client-secret").write_text(CLIENT_SECRET + "\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.fixture(scope="session")
def compose_config() -> Callable[[Path], subprocess.CompletedProcess[str]]:
    """Validate a file with ``docker compose config`` (or Debian's docker-compose).

    Needs the Compose plugin or ``apt-get install docker-compose``; fails in CI
    (CI=true) when neither is there, so validation is never silently skipped.
    """
    command = _compose_command()
    if command is None:
        message = "neither 'docker compose' nor 'docker-compose' is installed"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

    def validate(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "-f", str(path), "config", "-q"],
            capture_output=True,
            text=True,
            check=False,
            cwd=path.parent,
            timeout=60,
        )

    return validate
