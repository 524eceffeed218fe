"""The code stays as STYLE.md asks: ruff lint and format, mypy strict, layers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CODE = ["agent", "injectors", "tests", "bench", "devenv"]


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["ruff", "check", *CODE], id="ruff-check"),
        pytest.param(["ruff", "format", "--check", *CODE], id="ruff-format"),
        pytest.param(["mypy"], id="mypy-strict"),
    ],
)
def test_tool_is_clean(argv: list[str]) -> None:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", *argv],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path", sorted((REPO / "agent").rglob("*.py")), ids=lambda p: p.name
)
def test_engine_never_imports_injectors(path: Path) -> None:
    assert not {n for n in imports_of(path) if n.split(".")[0] == "injectors"}


@pytest.mark.parametrize(
    "path", sorted((REPO / "injectors").rglob("*.py")), ids=lambda p: p.name
)
def test_injectors_use_the_public_api_and_not_each_other(path: Path) -> None:
    platform = path.relative_to(REPO / "injectors").parts[0]
    for name in imports_of(path):
        parts = name.split(".")
        if parts[0] == "agent":
            assert parts == ["agent"], f"{path}: imports {name}, not the public API"
        if parts[0] == "injectors" and len(parts) > 1:
            assert parts[1] == platform, f"{path}: imports another injector {name}"
