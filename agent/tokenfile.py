"""Atomic token file writes: a reader sees the old token or the new one, whole.

The token is written to a temporary file in the same folder, given its mode
and owner, flushed to disk, then renamed over the old file; the folder is
synced so the rename survives a crash. An error leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

from agent.errors import TokenFileError

__all__ = ["write_atomic"]

log = logging.getLogger(__name__)


def write_atomic(
    path: Path,
    content: str,
    *,
    mode: int = 0o644,
    uid: int | None = None,
    gid: int | None = None,
    exclusive: bool = False,
) -> bool:
    """Replace ``path`` with ``content`` in one rename; never empty or partial.

    With ``exclusive`` an existing file is kept (the new one is linked into
    place only if none is there, so concurrent writers agree on one content);
    the return value says whether ``content`` was written.
    """
    if not content:
        raise TokenFileError("refusing to write an empty file", where=str(path))
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise TokenFileError(
            f"cannot write in folder: {exc.strerror}", where=str(folder)
        ) from exc
    written = True
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if uid is not None or gid is not None:
                os.fchown(
                    handle.fileno(),
                    -1 if uid is None else uid,
                    -1 if gid is None else gid,
                )
            os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                written = False
        else:
            os.replace(tmp, path)
    except OSError as exc:
        raise TokenFileError(
            f"cannot write file: {exc.strerror}", where=str(path)
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _sync_folder(folder)
    log.debug("wrote %s (mode %o)", path, mode)
    return written


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
