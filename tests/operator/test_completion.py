"""Shell completion: the script, and completions that include plugin commands."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.operator.helpers import RunCli


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "_WEBID_AGENT_COMPLETE=bash_complete"),
        ("zsh", "#compdef webid-agent"),
        ("fish", "complete --no-files --command webid-agent"),
    ],
)
def test_completion_script(run_cli: RunCli, shell: str, marker: str) -> None:
    result = run_cli("completion", shell)
    assert result.exit_code == 0
    assert marker in result.stdout


def test_unknown_shell_is_a_usage_error(run_cli: RunCli) -> None:
    assert run_cli("completion", "tcsh").exit_code == 2


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("webid-agent ", {"doctor", "inject", "aws", "completion", "token"}),
        ("webid-agent inject ", {"compose"}),
        ("webid-agent doctor --trust", {"--trust-policy"}),
    ],
)
def test_bash_completions(words: str, expected: set[str]) -> None:
    env = {
        **os.environ,
        "_WEBID_AGENT_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }
    done = subprocess.run(
        [sys.executable, "-c", "from agent.cli import main; main()"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    offered = {line.split(",", 1)[1] for line in done.stdout.splitlines()}
    assert expected <= offered, done.stderr
