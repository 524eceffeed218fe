"""The per-role cache of ``aws credential-process``: one token, one set of credentials.

An SDK runs its ``credential_process`` command whenever it has no fresh
credentials, often many times a day and from many processes at once. The
cache keeps the IdP token and the STS credentials of one role (and one IdP
client) in a JSON file in the user's cache folder, so those calls cost one STS
call per credential lifetime.

* The folder is made mode 0700 and every file mode 0600.
* Files are replaced in one rename (:func:`agent.tokenfile.write_atomic`),
  so a reader sees the old entry or the new one, never half of one.
* A file that is not valid JSON of the expected shape is ignored (and
  rewritten by the next refresh); so is one owned by another user.
* A refresh holds an ``flock`` on a lock file next to the entry, so
  concurrent cold calls make one IdP and one STS call between them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.aws.sts import Credentials
from agent.errors import TokenFileError

__all__ = [
    "CACHE_VERSION",
    "CacheEntry",
    "CredentialCache",
    "cache_key",
    "default_cache_dir",
]

log = logging.getLogger(__name__)

CACHE_VERSION = 1
APP_NAME = "webid-agent"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/webid-agent/aws`` or the platform's user cache folder."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / APP_NAME / "aws"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME)) / "aws"


def cache_key(*parts: str | int | None) -> str:
    """A file name stem that identifies ``parts`` without revealing them."""
    text = "\0".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


@dataclass(frozen=True)
class CacheEntry:
    """What one cache file holds; either half may be missing."""

    token: str | None = None
    token_expires_at: float | None = None
    credentials: Credentials | None = None
    obtained_at: float | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": CACHE_VERSION,
                "token": self.token,
                "token_expires_at": self.token_expires_at,
                "credentials": (
                    self.credentials.to_dict() if self.credentials else None
                ),
                "obtained_at": self.obtained_at,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> CacheEntry:
        """Parse a cache file; ValueError if it is not an entry of this version."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            raise ValueError("not a cache entry of this version")
        token, expires = data.get("token"), data.get("token_expires_at")
        if token is not None and not (
            isinstance(token, str) and isinstance(expires, int | float)
        ):
            raise ValueError("malformed token")
        raw_creds, obtained = data.get("credentials"), data.get("obtained_at")
        creds = None
        if raw_creds is not None:
            creds = Credentials.from_dict(raw_creds)
            if not isinstance(obtained, int | float):
                raise ValueError("credentials without obtained_at")
        return cls(
            token=token,
            token_expires_at=float(expires)
            if isinstance(expires, int | float)
            else None,
            credentials=creds,
            obtained_at=float(obtained) if isinstance(obtained, int | float) else None,
        )


class CredentialCache:
    """One cache file (and its lock file) in ``folder``."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = folder
        self.path = folder / f"{key}.json"
        self.lock_path = folder / f"{key}.lock"

    def load(self) -> CacheEntry | None:
        """The entry, or None when missing, unreadable, foreign or malformed."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("ignoring cache file %s: %s", self.path, exc.strerror)
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                log.warning("ignoring cache file %s: not a file of ours", self.path)
                return None
            with os.fdopen(fd, "r", encoding="utf-8", closefd=False) as handle:
                text = handle.read(1 << 20)
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("ignoring unreadable cache file %s: %s", self.path, exc)
            return None
        finally:
            os.close(fd)
        try:
            return CacheEntry.from_json(text)
        except ValueError as exc:
            log.warning("ignoring corrupt cache file %s (%s)", self.path, exc)
            return None

    def store(self, entry: CacheEntry) -> None:
        """Replace the file atomically, mode 0600; a failure is only logged."""
        from agent.tokenfile import write_atomic  # not needed on the warm path

        try:
            self._make_folder()
            write_atomic(self.path, entry.to_json(), mode=0o600)
        except (OSError, TokenFileError) as exc:
            log.warning("cannot write cache file %s: %s", self.path, exc)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock for one refresh; no lock if it cannot be made."""
        try:
            self._make_folder()
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            log.warning("cache lock %s unavailable: %s", self.lock_path, exc.strerror)
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _make_folder(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.folder.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(self.folder, 0o700)
