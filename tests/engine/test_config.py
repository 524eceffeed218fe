"""Settings: every bad configuration names the option that is wrong."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings, load_config_file, settings_from_options
from agent.errors import ConfigError

BASE = {
    "provider": "oidc",
    "authority": "https://idp.example/tenant1",
    "client_id": "app",
}


@pytest.fixture
def options(secret_file: Path) -> Callable[..., dict[str, Any]]:
    """Click-style keyword arguments with a readable secret file."""

    def make(**overrides: Any) -> dict[str, Any]:
        values: dict[str, Any] = {**BASE, "client_secret_file": str(secret_file)}
        values.update(overrides)
        return values

    return make


BAD = [
    ({"client_id": None}, "--client-id", "missing client id"),
    ({"authority": None}, "--authority", "missing authority"),
    ({"authority": "http://idp.example/t"}, "--authority", "https://"),
    ({"client_secret_file": "/nonexistent/secret"}, None, None),
    ({"client_secret_file": None}, None, "no client credential"),
    ({"client_cert_file": "/etc/hostname"}, "--client-key-file", "go together"),
    ({"refresh_at": 1.5}, "--refresh-at", "between 0.1 and 0.95"),
    ({"file_mode": "rw-r--r--"}, "--file-mode", "octal"),
    ({"file_owner": "root"}, "--file-owner", "numeric"),
    ({"extra_param": ("novalue",)}, "--extra-param", "KEY=VALUE"),
    ({"ca_bundle": "/nonexistent/ca.pem"}, "--ca-bundle", "unreadable"),
    ({"provider": "entra"}, "--scope", "entra needs --scope or --audience"),
    ({"auth_method": "private_key_jwt"}, "--auth-method", "needs --client-cert"),
    ({"timeout": 0}, "--timeout", "between 0.1 and 300.0"),
    ({"min_remaining": -5}, "--min-remaining", "between 0.0 and 86400.0"),
    ({"ca_bundle": "/etc/hostname"}, "--ca-bundle", "not a PEM CA bundle"),
    ({"client_secret_file": "/dev/null"}, None, "not a regular file"),
    ({"timeout": float("inf")}, "--timeout", "between 0.1 and 300.0"),
    ({"timeout": float("nan")}, "--timeout", "between 0.1 and 300.0"),
    ({"file_mode": "07777"}, "--file-mode", "permission bits only"),
    ({"file_mode": "0666"}, "--file-mode", "never writable by others"),
    ({"file_owner": "99999999999999999999"}, "--file-owner", "no such id"),
    ({"client_secret_env": "X"}, "--client-secret-env", "not both"),
    ({"client_id_file": "/etc/hostname"}, "--client-id-file", "not both"),
    ({"extra_param": ("client_secret=x",)}, "--extra-param", "set by webid-agent"),
    ({"extra_param": ("grant_type=password",)}, "--extra-param", "set by webid-agent"),
    ({"authority": "https://localhost:99999/x"}, "--authority", "not a valid URL"),
    ({"authority": "https://[::1"}, "--authority", "not a valid URL"),
    ({"authority": "https:///path"}, "--authority", "no host"),
]


@pytest.mark.parametrize(("overrides", "where", "text"), BAD)
def test_bad_settings_name_the_option(
    options: Callable[..., dict[str, Any]],
    overrides: dict[str, Any],
    where: str | None,
    text: str | None,
) -> None:
    with pytest.raises(ConfigError) as info:
        settings = settings_from_options(options(**overrides))
        settings.client_secret()  # reading the secret is where a bad file shows

    assert info.value.exit_code == 2
    if where:
        assert where in (info.value.where or "")
    if text:
        assert text in info.value.message


def test_unreadable_secret_file_is_named(
    options: Callable[..., dict[str, Any]],
) -> None:
    settings = settings_from_options(options(client_secret_file="/nonexistent/s"))

    with pytest.raises(ConfigError, match="cannot read client secret file") as info:
        settings.client_secret()
    assert "/nonexistent/s" in str(info.value)


def test_secret_from_env_only_when_asked(
    options: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_IDP_SECRET", "from-env-secret")
    settings = settings_from_options(
        options(client_secret_file=None, client_secret_env="MY_IDP_SECRET")
    )

    assert settings.client_secret().reveal() == "from-env-secret"
    assert "from-env-secret" not in repr(settings.client_secret())


def test_entra_scope_defaults_from_audience(
    options: Callable[..., dict[str, Any]],
) -> None:
    settings = settings_from_options(
        options(provider="entra", audience="api://webid-app", tenant_id="contoso")
    )

    assert settings.scopes == ["api://webid-app/.default"]
    assert settings.authority_url == "https://idp.example/tenant1/contoso"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("c.yaml", "client-id: from-file\naudience: aud-1\nrefresh-at: 0.5\n"),
        ("c.toml", 'client_id = "from-file"\naudience = "aud-1"\nrefresh_at = 0.5\n'),
    ],
)
def test_config_file_keys(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)

    assert load_config_file(path) == {
        "client_id": "from-file",
        "audience": "aud-1",
        "refresh_at": 0.5,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("client-secret: hunter2\n", "secrets are not read from the config file"),
        ("- a\n- b\n", "expected a mapping"),
        ("key: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)

    with pytest.raises(ConfigError, match=message) as info:
        load_config_file(path)
    assert (info.value.where or "").startswith(str(path))
    assert "hunter2" not in str(info.value)


def test_settings_repr_hides_nothing_secret(secret_file: Path) -> None:
    settings = Settings(**BASE, client_secret_file=secret_file)  # type: ignore[arg-type]

    assert secret_file.read_text().strip() not in repr(settings)


def test_fifo_secret_file_is_refused_not_read(
    options: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    fifo = tmp_path / "secret-fifo"
    os.mkfifo(fifo)
    settings = settings_from_options(options(client_secret_file=str(fifo)))

    with pytest.raises(ConfigError, match="not a regular file"):
        settings.client_secret()  # would block forever if it opened the FIFO


def test_empty_ca_bundle_is_a_config_error(
    options: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("")

    with pytest.raises(ConfigError, match="--ca-bundle") as info:
        settings_from_options(options(ca_bundle=str(empty)))
    assert info.value.exit_code == 2
