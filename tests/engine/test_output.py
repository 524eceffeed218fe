"""Where inject commands write: stdout, -o FILE or the input, whole or not at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.errors import ConfigError, InputError, RuntimeFailure
from agent.output import output_target, read_input, write_output


@pytest.mark.parametrize(
    ("source", "output", "in_place", "expected"),
    [
        (Path("in.yaml"), None, False, None),
        (Path("in.yaml"), Path("out.yaml"), False, Path("out.yaml")),
        (Path("in.yaml"), None, True, Path("in.yaml")),
        (None, Path("out.yaml"), False, Path("out.yaml")),
    ],
)
def test_output_target(
    source: Path | None, output: Path | None, in_place: bool, expected: Path | None
) -> None:
    assert output_target(source=source, output=output, in_place=in_place) == expected


@pytest.mark.parametrize(
    ("source", "output", "message"),
    [
        (Path("in.yaml"), Path("out.yaml"), "not both"),
        (None, None, "needs an input file"),
    ],
)
def test_bad_output_combinations(
    source: Path | None, output: Path | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        output_target(source=source, output=output, in_place=True)


def test_unicode_text_is_written_whole_keeping_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "job.hcl"
    target.write_text("old\n")
    target.chmod(0o600)

    write_output('NAME = "héllo 🚀"\n', target)

    assert target.read_text(encoding="utf-8") == 'NAME = "héllo 🚀"\n'
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["job.hcl"]  # no temp file left


def test_unwritable_target_is_a_runtime_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")

    with pytest.raises(RuntimeFailure, match="cannot write output") as info:
        write_output("text\n", blocker / "out.yaml")
    assert info.value.exit_code == 1
    assert blocker.read_text() == "x"


def test_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    write_output("héllo\n", None)

    assert capsys.readouterr().out == "héllo\n"


def test_a_symlinked_target_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_text("old\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)

    write_output("new\n", link)

    assert link.is_symlink()
    assert real.read_text() == "new\n"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "Is a directory"),
        (lambda d: d / "missing", "file not found"),
        (lambda d: Path("/dev/zero"), "not a regular file"),
    ],
)
def test_read_input_refuses_what_it_cannot_read(
    tmp_path: Path, make: Any, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        read_input(make(tmp_path))


def test_read_input_caps_the_size_and_checks_the_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2048)
    latin = tmp_path / "latin"
    latin.write_bytes(b"caf\xe9\r\n")
    monkeypatch.setattr("agent.output.MAX_INPUT_BYTES", 1024)

    with pytest.raises(InputError, match="1024|MiB input limit"):
        read_input(big)
    with pytest.raises(InputError, match="not UTF-8 text"):
        read_input(latin)
    latin.write_bytes(b"caf\xc3\xa9\r\n")
    assert read_input(latin) == "café\r\n"  # line endings kept
