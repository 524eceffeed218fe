"""Where an injector's result goes: standard output, ``-o FILE`` or the input.

Every ``inject`` command offers the same two options and the same promise: the
input file is changed only with ``--in-place``, and a file is written whole
(atomically, keeping an existing file's mode) or not at all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from agent.errors import ConfigError, RuntimeFailure, TokenFileError
from agent.tokenfile import write_atomic

__all__ = ["output_options", "output_target", "write_output"]

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
