"""Fixtures for the operator commands: the CLI runner, a TLS IdP double, STS doubles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from agent.cli import main


@dataclass(frozen=True)
class CliResult:
    """What one run of ``webid-agent`` left behind."""

    exit_code: int
    stdout: str
    stderr: str


RunCli = Callable[..., CliResult]


@pytest.fixture
def run_cli() -> RunCli:
    """Run ``webid-agent ARGS`` in-process through ``main`` (real exit codes)."""

    def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
        runner = CliRunner()
        with runner.isolation(env=env) as (out, err, _):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            return CliResult(code, out.getvalue().decode(), err.getvalue().decode())

    return run
