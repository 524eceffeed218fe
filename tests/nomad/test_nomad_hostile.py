"""Hostile job files: one-line errors with exit 2, never a traceback or a hang."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.nomad.helpers import Run

HCL_BLOCKS = 'job "x" {\n' + "x {\n" * 3000 + "}\n" * 3001

HOSTILE = [
    ("brackets.json", "[" * 100_000, "JSON nested deeper than 200"),
    ("deep.json", '{"Job": ' + "[" * 300 + "]" * 300 + "}", "nested deeper"),
    ("deep.hcl", HCL_BLOCKS, "HCL nested too deeply"),
    ("bad-utf8.hcl", 'job "x" {\udcff}', "not UTF-8"),
]


@pytest.mark.parametrize(
    ("name", "text", "needle"), HOSTILE, ids=[n for n, _, _ in HOSTILE]
)
def test_hostile_job_is_exit_2_one_line(
    name: str,
    text: str,
    needle: str,
    tmp_path: Path,
    inject: Callable[..., Run],
) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    run = inject(path)
    assert run.code == 2, run.err
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert str(path) in lines[0]
    assert needle in lines[0]


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_non_regular_files_are_refused(path: str, inject: Callable[..., Run]) -> None:
    run = inject(Path(path))
    assert run.code == 2
    assert "not a regular file" in run.err


def test_oversized_job_is_refused(
    tmp_path: Path, inject: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agent.output.MAX_INPUT_BYTES", 1024)
    path = tmp_path / "big.json"
    path.write_text('{"Job": {}}' + " " * 2048)
    run = inject(path)
    assert run.code == 2
    assert "input limit" in run.err


def test_depth_at_the_limit_is_not_refused(
    tmp_path: Path, inject: Callable[..., Run]
) -> None:
    path = tmp_path / "ok.json"
    path.write_text('{"Job": {"Meta": ' + "[" * 150 + "]" * 150 + "}}")
    run = inject(path)
    assert "nested" not in run.err
