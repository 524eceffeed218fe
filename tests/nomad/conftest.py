"""Fixtures for the Nomad injector tests: this checkout, the CLI, job files.

The job files people reported (``data/cases``) are injected through the real
``webid-agent`` command line; golden outputs live in ``data/golden`` (set
``UPDATE_GOLDEN=1`` to rewrite them after a deliberate change).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.nomad.helpers import IDP_ARGS, Run


@pytest.fixture(autouse=True)
def _no_nomad_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's NOMAD_* settings away from the tests."""
    for name in list(os.environ):
        if name.startswith("NOMAD_"):
            monkeypatch.delenv(name)


CliRunner = Callable[..., Run]


@pytest.fixture
def webid(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """Run ``webid-agent ARGS...`` in-process; returns exit code, stdout, stderr."""
    from agent.cli import main

    def run(*args: str | Path) -> Run:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        else:  # pragma: no cover - main always exits
            code = 0
        captured = capsys.readouterr()
        return Run(code=code, out=captured.out, err=captured.err)

    return run


@pytest.fixture
def inject(webid: CliRunner) -> Callable[..., Run]:
    """``webid-agent inject nomad FILE`` with the test IdP settings."""

    def run(path: Path, *args: str | Path) -> Run:
        return webid("inject", "nomad", path, *IDP_ARGS, *args)

    return run


@pytest.fixture
def write_job(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a job text to a file in the test's folder and return its path."""

    def write(text: str, name: str = "job.nomad.hcl") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
