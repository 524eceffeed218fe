"""Both providers against the real OpenID provider: tokens verified by its JWKS."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.engine import TokenEngine
from agent.errors import IdpError, TokenRejected
from devenv.idp import DEFAULT_SCOPE, Idp, verify_token


@pytest.fixture
def settings_for(idp: Idp, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for one of the IdP's clients; keywords override fields."""

    def make(client_id: str, **overrides: Any) -> Settings:
        client = idp.client(client_id)
        values: dict[str, Any] = {
            "provider": "oidc",
            "authority": idp.issuer,
            "client_id": client_id,
            "audience": idp.audience,
            "ca_bundle": idp.ca_file,
            "token_file": tmp_path / "token",
        }
        if client.uses_secret:
            secret_file = tmp_path / f"{client_id}.secret"
            secret_file.write_text(client.secret or "")
            values["client_secret_file"] = secret_file
            values["auth_method"] = client.auth_method
        else:
            values["client_cert_file"] = client.cert_file
            values["client_key_file"] = client.key_file
        values.update(overrides)
        return Settings(**values).validate()

    return make


CLIENTS = [
    pytest.param("oidc", "webid-secret", {}, id="oidc-client_secret_basic"),
    pytest.param("oidc", "webid-post", {}, id="oidc-client_secret_post"),
    pytest.param("oidc", "webid-cert", {}, id="oidc-private_key_jwt"),
    pytest.param("oidc", "webid-secret", {"scope": DEFAULT_SCOPE}, id="oidc-scope"),
    pytest.param("entra", "webid-post", {"scope": DEFAULT_SCOPE}, id="entra-secret"),
    pytest.param("entra", "webid-cert", {"scope": DEFAULT_SCOPE}, id="entra-cert"),
]


@pytest.mark.parametrize(("provider", "client_id", "extra"), CLIENTS)
def test_token_verifies_against_jwks(
    idp: Idp,
    settings_for: Callable[..., Settings],
    provider: str,
    client_id: str,
    extra: dict[str, str],
) -> None:
    settings = settings_for(client_id, provider=provider, **extra)
    if provider == "entra":
        settings = Settings(**{**settings.__dict__, "auth_method": None}).validate()
    engine = TokenEngine(settings)

    token = engine.refresh()

    assert settings.token_file is not None
    written = settings.token_file.read_text()
    assert written == token.value
    claims = verify_token(idp, written, idp.audience)
    assert claims["iss"] == idp.issuer
    assert claims["sub"] == client_id
    assert claims["exp"] == int(token.expires_at)
    assert engine.is_ready()


def test_entra_fetches_a_new_token_each_refresh(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for("webid-post", provider="entra", scope=DEFAULT_SCOPE)
    engine = TokenEngine(Settings(**{**settings.__dict__, "auth_method": None}))

    first = engine.refresh()
    second = engine.refresh()

    assert first.value != second.value  # msal's cache does not decide for us


def test_wrong_secret_is_a_clear_idp_error(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret")
    engine = TokenEngine(settings_for("webid-secret", client_secret_file=wrong))

    with pytest.raises(IdpError, match="invalid_client.*check the client id"):
        engine.refresh()


def test_other_resource_has_the_wrong_audience(
    settings_for: Callable[..., Settings],
) -> None:
    engine = TokenEngine(
        settings_for("webid-secret", extra_params=(("resource", "urn:webid:other"),))
    )

    with pytest.raises(TokenRejected, match="does not include 'sts.amazonaws.com'"):
        engine.refresh()


def test_refresh_never_exposes_a_partial_file(
    idp: Idp, settings_for: Callable[..., Settings]
) -> None:
    """Short-lived tokens are replaced while a reader hammers the file."""
    settings = settings_for("webid-short", min_remaining=1.0, refresh_at=0.5)
    engine = TokenEngine(settings)
    assert settings.token_file is not None
    path = settings.token_file
    stop = threading.Event()
    loop = threading.Thread(target=engine.run, args=(stop,))
    loop.start()
    seen: set[str] = set()
    reads = 0
    try:
        deadline = time.time() + 30
        while not path.exists():
            assert time.time() < deadline
            time.sleep(0.01)
        while (len(seen) < 3 or reads < 1000) and time.time() < deadline:
            content = path.read_text()
            reads += 1
            assert content.count(".") == 2 and len(content) > 100, content
            seen.add(content)
    finally:
        stop.set()
        loop.join(10)

    assert reads >= 1000
    assert len(seen) >= 3
    assert verify_token(idp, path.read_text(), idp.audience)["sub"] == "webid-short"
