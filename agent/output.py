"""An inject command's input and output: read safely, written whole.

Input is UTF-8 text from a regular file or standard input, at most
:data:`MAX_INPUT_BYTES` (an endless ``/dev/zero`` or a FIFO cannot hang a
command). Output goes to standard output, ``-o FILE`` or the input itself:
the input file is changed only with ``--in-place``, and a file is written
whole (atomically, keeping an existing file's mode) or not at all.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from agent.errors import (
    ConfigError,
    InputError,
    RuntimeFailure,
    TokenFileError,
    WebIdError,
)
from agent.tokenfile import write_atomic

__all__ = [
    "MAX_INPUT_BYTES",
    "output_options",
    "output_target",
    "read_input",
    "write_output",
]

# far above any real manifest, job or Compose file
MAX_INPUT_BYTES = 64 * 1024 * 1024

F = TypeVar("F", bound=Callable[..., Any])


def output_options(func: F) -> F:
    """Add ``-o/--output FILE`` and ``--in-place`` to an inject command."""
    func = click.option(
        "--in-place",
        is_flag=True,
        help="Rewrite the input file itself (atomically).",
    )(func)
    return click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the result here (atomically) instead of standard output.",
    )(func)


def output_target(
    *, source: Path | None, output: Path | None, in_place: bool
) -> Path | None:
    """The file to write, or None for standard output; checks the combination.

    ``source`` is the input file, or None when the input is not a file
    (standard input, a job read from an API).
    """
    if in_place and output is not None:
        raise ConfigError("give -o or --in-place, not both", where="--in-place")
    if in_place and source is None:
        raise ConfigError("--in-place needs an input file", where="--in-place")
    return source if in_place else output


def write_output(text: str, target: Path | None) -> None:
    """Print ``text``, or replace ``target`` with it, keeping its mode."""
    if target is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    # write through a symlink, like a shell redirection, keeping the link
    target = target.resolve() if target.is_symlink() else target
    try:
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        write_atomic(target, text, mode=mode)
    except (TokenFileError, OSError) as exc:
        message = exc.message if isinstance(exc, TokenFileError) else exc.strerror
        raise RuntimeFailure(
            f"cannot write output: {message}", where=str(target)
        ) from exc


def read_input(
    path: Path,
    *,
    where: str | None = None,
    error: type[WebIdError] = InputError,
) -> str:
    """The UTF-8 text of a regular file (or standard input for ``-``), capped.

    Line endings are kept as they are. Any read or decoding problem is raised
    as ``error`` naming ``where`` (the path by default).
    """
    where = where or str(path)
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with open(path, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise error("not a regular file", where=where)
                data = handle.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise error("file not found", where=where) from None
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", where=where) from None
    if len(data) > MAX_INPUT_BYTES:
        raise error(
            f"larger than the {MAX_INPUT_BYTES >> 20} MiB input limit", where=where
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"not UTF-8 text (byte {exc.start} cannot be decoded)", where=where
        ) from None
