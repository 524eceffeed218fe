"""The operator docs: every doctor problem is explained, every command runs."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from agent.doctor import PROBLEMS
from tests.operator.helpers import RunCli

DOCS = Path(__file__).parents[2] / "docs"
# ```console blocks hold commands a test runs; ```sh blocks need real infrastructure
CONSOLE = re.compile(r"```console\n(.*?)```", re.S)


def commands() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for block in CONSOLE.findall(page.read_text()):
            for line in block.splitlines():
                if line.startswith("$ "):
                    found.append((page.name, line[2:]))
    return found


def test_every_problem_has_a_troubleshooting_section() -> None:
    text = (DOCS / "troubleshooting.md").read_text()
    headings = set(re.findall(r"^### `([a-z-]+)`$", text, re.M))
    assert headings == set(PROBLEMS)


def test_the_docs_show_commands() -> None:
    pages = {page for page, _ in commands()}
    assert {"iam.md", "compose.md"} <= pages


@pytest.mark.parametrize(("page", "command"), commands())
def test_documented_command_runs(
    run_cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    page: str,
    command: str,
) -> None:
    shutil.copytree(DOCS / "examples" / "compose", tmp_path, dirs_exist_ok=True)
    (tmp_path / "client-secret").write_text("placeholder-secret\n")
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(command)
    assert argv[0] == "webid-agent"
    result = run_cli(*argv[1:])
    assert result.exit_code == 0, f"{page}: {command}\n{result.stderr}"
