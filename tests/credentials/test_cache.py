"""The credential-process cache: mode 0600, atomic rewrites, corrupt files ignored."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.aws.cache import CacheEntry, CredentialCache, cache_key, default_cache_dir
from agent.aws.sts import Credentials


def entry(n: int = 0, *, lifetime: float = 3600) -> CacheEntry:
    """A cache entry whose key id carries ``n``."""
    now = time.time()
    return CacheEntry(
        token=f"token-{n}",
        token_expires_at=now + 300,
        credentials=Credentials(
            f"ASIA{n:08d}", f"secret-{n}", f"session-{n}", now + lifetime, "arn:x"
        ),
        obtained_at=now,
    )


@pytest.fixture
def cache(tmp_path: Path) -> CredentialCache:
    """A cache whose folder does not exist yet."""
    return CredentialCache(tmp_path / "cache" / "aws", cache_key("role", "idp"))


def test_store_and_load_round_trip(cache: CredentialCache) -> None:
    assert cache.load() is None
    stored = entry(1)
    cache.store(stored)
    assert cache.load() == stored


def test_file_and_folder_modes(cache: CredentialCache) -> None:
    os.umask(0o022)
    cache.store(entry())
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.folder.stat().st_mode) == 0o700


def test_loose_folder_is_tightened(cache: CredentialCache) -> None:
    cache.folder.mkdir(parents=True, mode=0o755)
    os.chmod(cache.folder, 0o755)  # noqa: S103 - the loose mode under test
    cache.store(entry())
    assert stat.S_IMODE(cache.folder.stat().st_mode) == 0o700


def test_rewrite_replaces_the_file_whole(cache: CredentialCache) -> None:
    cache.store(entry(1))
    inode = cache.path.stat().st_ino
    cache.store(entry(2))
    assert cache.path.stat().st_ino != inode
    assert sorted(p.name for p in cache.folder.iterdir()) == [cache.path.name]
    loaded = cache.load()
    assert loaded is not None and loaded.credentials is not None
    assert loaded.credentials.access_key_id == "ASIA00000002"


def test_readers_never_see_a_partial_file(cache: CredentialCache) -> None:
    cache.store(entry(0))
    done = threading.Event()
    seen: list[CacheEntry | None] = []

    def read() -> None:
        while not done.is_set():
            seen.append(cache.load())

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(1, 150):
        cache.store(entry(n))
    done.set()
    reader.join()
    assert seen and all(item is not None for item in seen)


def test_key_hides_its_parts_and_separates_them() -> None:
    key = cache_key("arn:aws:iam::123456789012:role/app", "https://idp/t", "client")
    assert "app" not in key and "client" not in key
    assert len(key) == 40
    assert cache_key("a", "bc") != cache_key("ab", "c")
    assert cache_key("a", None) == cache_key("a", "")


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "webid-agent" / "aws"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir().parts[-2:] == ("webid-agent", "aws")


CORRUPT = [
    pytest.param(b"", id="empty"),
    pytest.param(b"{", id="truncated"),
    pytest.param(b"\xff\xfe\x00", id="binary"),
    pytest.param(b"[]", id="list"),
    pytest.param(b'{"version": 99}', id="other-version"),
    pytest.param(b'{"version": 1, "credentials": {"access_key_id": 1}}', id="types"),
    pytest.param(
        b'{"version": 1, "credentials": {"access_key_id": "a",'
        b' "secret_access_key": "b", "session_token": "c", "expiration": 1}}',
        id="no-obtained-at",
    ),
    pytest.param(b'{"version": 1, "token": 5}', id="token-type"),
]


@pytest.mark.parametrize("content", CORRUPT)
def test_corrupt_file_is_ignored_then_rewritten(
    cache: CredentialCache, content: bytes
) -> None:
    cache.folder.mkdir(parents=True)
    cache.path.write_bytes(content)
    assert cache.load() is None
    fresh = entry(3)
    cache.store(fresh)
    assert cache.load() == fresh


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=300))
def test_any_bytes_load_or_none(cache: CredentialCache, content: bytes) -> None:
    cache.folder.mkdir(parents=True, exist_ok=True)
    cache.path.write_bytes(content)
    loaded = cache.load()
    assert loaded is None or isinstance(loaded, CacheEntry)


def test_foreign_or_linked_files_are_ignored(
    cache: CredentialCache, tmp_path: Path
) -> None:
    cache.store(entry(1))
    if os.getuid() == 0:
        os.chown(cache.path, 4242, -1)
        assert cache.load() is None
        os.chown(cache.path, 0, -1)
    assert cache.load() is not None

    # a symlink planted in the folder is not followed
    target = tmp_path / "elsewhere.json"
    target.write_text(entry(9).to_json())
    cache.path.unlink()
    cache.path.symlink_to(target)
    assert cache.load() is None


def test_unwritable_folder_only_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = CredentialCache(blocker / "aws", "k")
    cache.store(entry())
    with cache.lock():
        pass
    assert "cannot write cache file" in caplog.text
    assert "secret-0" not in caplog.text
