"""``fetch_credentials``: the cache decides how many IdP and STS calls happen.

The IdP step is replaced by a counting stub here (the real IdP is used in
``test_e2e.py``); STS is moto behind the counting proxy.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import agent.aws.credential_process as cp
from agent.aws.cache import CacheEntry, CredentialCache
from agent.aws.options import StsSettings
from agent.aws.sts import Credentials
from agent.config import Settings
from agent.errors import IdpError, StsError

from .conftest import ROLE_ARN, CountingSts, fake_jwt

pytestmark = pytest.mark.usefixtures("aws_env")


class TokenStub:
    """Counts token fetches; fails with ``error`` when set."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: Exception | None = None
        self.lock = threading.Lock()

    def __call__(self, settings: Settings, *, deadline: float) -> tuple[str, float]:
        with self.lock:
            self.calls += 1
        if self.error:
            raise self.error
        time.sleep(0.05)  # widen the window concurrent callers could race in
        expires = time.time() + 600
        return fake_jwt(exp=int(expires)), expires


@pytest.fixture
def idp(monkeypatch: pytest.MonkeyPatch) -> TokenStub:
    """The IdP step of credential-process, counted."""
    stub = TokenStub()
    monkeypatch.setattr(cp, "_fetch_token", stub)
    return stub


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Engine settings (never used to reach an IdP here)."""
    return Settings(provider="oidc", authority="https://idp.test/t", client_id="c")


@pytest.fixture
def sts_settings(counting_sts: CountingSts) -> StsSettings:
    """The role at the counting STS."""
    return StsSettings(role_arn=ROLE_ARN, endpoint_url=counting_sts.endpoint_url)


@pytest.fixture
def cache(tmp_path: Path) -> CredentialCache:
    """An empty cache."""
    return CredentialCache(tmp_path / "aws", "key")


def test_second_call_is_served_from_the_cache(
    idp: TokenStub,
    settings: Settings,
    sts_settings: StsSettings,
    cache: CredentialCache,
    counting_sts: CountingSts,
) -> None:
    first = cp.fetch_credentials(settings, sts_settings, cache=cache)
    second = cp.fetch_credentials(settings, sts_settings, cache=cache)
    assert first == second
    assert (idp.calls, counting_sts.calls()) == (1, 1)


def test_without_cache_every_call_goes_out(
    idp: TokenStub,
    settings: Settings,
    sts_settings: StsSettings,
    counting_sts: CountingSts,
) -> None:
    first = cp.fetch_credentials(settings, sts_settings, cache=None)
    second = cp.fetch_credentials(settings, sts_settings, cache=None)
    assert first.access_key_id != second.access_key_id
    assert (idp.calls, counting_sts.calls()) == (2, 2)


def test_concurrent_cold_calls_make_one_sts_call(
    idp: TokenStub,
    settings: Settings,
    sts_settings: StsSettings,
    tmp_path: Path,
    counting_sts: CountingSts,
) -> None:
    results: list[Credentials] = []

    def call() -> None:
        # each thread opens the files itself, as separate processes would
        cache = CredentialCache(tmp_path / "aws", "shared")
        results.append(cp.fetch_credentials(settings, sts_settings, cache=cache))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6
    assert len({creds.access_key_id for creds in results}) == 1
    assert (idp.calls, counting_sts.calls()) == (1, 1)


def test_credentials_inside_the_margin_are_renewed_with_the_cached_token(
    idp: TokenStub,
    settings: Settings,
    sts_settings: StsSettings,
    cache: CredentialCache,
    counting_sts: CountingSts,
) -> None:
    now = time.time()
    old = Credentials("ASIAOLD", "s", "t", now + 600, None)  # < 1200 s margin
    cache.store(
        CacheEntry(
            token=fake_jwt(),
            token_expires_at=now + 500,
            credentials=old,
            obtained_at=now - 3000,
        )
    )
    creds = cp.fetch_credentials(settings, sts_settings, cache=cache)
    assert creds.access_key_id != "ASIAOLD"
    assert (idp.calls, counting_sts.calls()) == (0, 1)
    stored = cache.load()
    assert stored is not None and stored.credentials == creds


def test_stale_cached_token_is_replaced(
    idp: TokenStub,
    settings: Settings,
    sts_settings: StsSettings,
    cache: CredentialCache,
) -> None:
    now = time.time()
    cache.store(CacheEntry(token=fake_jwt(), token_expires_at=now + 30))  # < 60 s
    cp.fetch_credentials(settings, sts_settings, cache=cache)
    assert idp.calls == 1


def test_cached_token_refused_by_sts_is_fetched_again_once(
    idp: TokenStub,
    settings: Settings,
    sts_settings: StsSettings,
    cache: CredentialCache,
    counting_sts: CountingSts,
) -> None:
    cache.store(CacheEntry(token=fake_jwt(), token_expires_at=time.time() + 500))
    counting_sts.refuse_with = ("ExpiredTokenException", "Token expired")
    with pytest.raises(StsError) as info:
        cp.fetch_credentials(settings, sts_settings, cache=cache)
    assert (idp.calls, counting_sts.calls()) == (1, 2)
    assert info.value.where == cp.STEP_STS
    assert "ExpiredTokenException" in info.value.message


def test_idp_failure_names_the_step(
    idp: TokenStub,
    settings: Settings,
    sts_settings: StsSettings,
    cache: CredentialCache,
    counting_sts: CountingSts,
) -> None:
    idp.error = IdpError("HTTP 401: invalid_client", where="https://idp.test/token")
    with pytest.raises(IdpError) as info:
        cp.fetch_credentials(settings, sts_settings, cache=cache)
    assert info.value.format() == (
        "IdP token: https://idp.test/token: HTTP 401: invalid_client"
    )
    assert counting_sts.calls() == 0
    assert cache.load() is None


def test_corrupt_cache_is_recovered(
    idp: TokenStub,
    settings: Settings,
    sts_settings: StsSettings,
    cache: CredentialCache,
) -> None:
    cache.folder.mkdir(parents=True)
    cache.path.write_text('{"version": 1, "credentials": ')
    creds = cp.fetch_credentials(settings, sts_settings, cache=cache)
    stored = cache.load()
    assert stored is not None and stored.credentials == creds
