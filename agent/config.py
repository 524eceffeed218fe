"""Engine settings: one frozen dataclass, the click options that fill it, and
the ``--config`` file reader.

Every option reads ``WEBID_<OPTION>`` from the environment and the same key
from the config file (YAML or TOML; ``client-id`` and ``client_id`` alike).
The order of precedence is command line, environment, config file, default.
Secrets are read from files (or from a named environment variable when asked)
and are held only in :class:`Secret` objects, whose ``repr`` hides them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from agent.contract import TOKEN_PATH
from agent.errors import ConfigError

__all__ = [
    "AUTH_METHODS",
    "CONFIG_META_KEY",
    "ENGINE_OPTION_NAMES",
    "config_default",
    "finite",
    "PROVIDERS",
    "Secret",
    "Settings",
    "engine_options",
    "idp_options",
    "table_options",
    "load_config_file",
    "settings_from_options",
]

PROVIDERS = ("entra", "oidc")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")

F = TypeVar("F", bound=Callable[..., Any])


class Secret:
    """A secret value that never shows itself in ``repr``, ``str`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself; call only where it is sent to the IdP."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """Everything the engine needs to fetch and keep a token.

    Build it with :func:`settings_from_options` (the CLI does) or directly.
    """

    provider: Literal["entra", "oidc"]
    authority: str
    client_id: str
    tenant_id: str | None = None
    client_secret_file: Path | None = None
    client_secret_env: str | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    auth_method: str | None = None
    scope: str | None = None
    audience: str | None = None
    issuer: str | None = None
    extra_params: tuple[tuple[str, str], ...] = ()
    token_file: Path | None = Path(TOKEN_PATH)
    file_mode: int = 0o644
    file_uid: int | None = None
    file_gid: int | None = None
    ca_bundle: Path | None = None
    refresh_at: float = 0.8
    min_remaining: float = 60.0
    jitter: float = 0.1
    timeout: float = 10.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    listen: str = "127.0.0.1:8081"

    # -- derived values ---------------------------------------------------

    @property
    def authority_url(self) -> str:
        """The authority with the Entra tenant filled in, without a trailing /."""
        authority = self.authority.rstrip("/")
        if self.provider == "entra" and self.tenant_id:
            return f"{authority}/{self.tenant_id}"
        return authority

    @property
    def scopes(self) -> list[str]:
        """Scopes to request: ``--scope`` split on spaces, else from audience."""
        if self.scope:
            return self.scope.split()
        if self.provider == "entra" and self.audience:
            return [f"{self.audience.rstrip('/')}/.default"]
        return []

    @property
    def uses_certificate(self) -> bool:
        return self.client_cert_file is not None or self.client_key_file is not None

    @property
    def effective_auth_method(self) -> str:
        if self.auth_method:
            return self.auth_method
        return "private_key_jwt" if self.uses_certificate else "client_secret_basic"

    def client_secret(self) -> Secret:
        """Read the client secret from its file or named variable."""
        if self.client_secret_file is not None:
            where = f"--client-secret-file {self.client_secret_file}"
            if (
                self.client_secret_file.exists()
                and not self.client_secret_file.is_file()
            ):
                # a FIFO or a device would block the read forever
                raise ConfigError("not a regular file", where=where)
            try:
                value = self.client_secret_file.read_text(encoding="utf-8").strip()
            except UnicodeDecodeError as exc:
                raise ConfigError(
                    "client secret file is not UTF-8 text", where=where
                ) from exc
            except OSError as exc:
                raise ConfigError(
                    f"cannot read client secret file: {exc.strerror}",
                    where=f"--client-secret-file {self.client_secret_file}",
                ) from exc
            if not value:
                raise ConfigError(
                    "client secret file is empty",
                    where=f"--client-secret-file {self.client_secret_file}",
                )
            return Secret(value)
        if self.client_secret_env:
            value = os.environ.get(self.client_secret_env, "").strip()
            if not value:
                raise ConfigError(
                    f"environment variable {self.client_secret_env} is unset or empty",
                    where="--client-secret-env",
                )
            return Secret(value)
        raise ConfigError(
            "no client credential: give --client-secret-file, --client-secret-env,"
            " or --client-cert-file with --client-key-file"
        )

    def validate(self) -> Settings:
        """Check the settings for completeness; raise ConfigError naming the option."""
        if self.provider not in PROVIDERS:
            raise ConfigError(
                f"unknown provider {self.provider!r} (one of: {', '.join(PROVIDERS)})",
                where="--provider",
            )
        if not self.authority:
            raise ConfigError("missing authority (IdP issuer URL)", where="--authority")
        if not self.authority.startswith("https://"):
            raise ConfigError(
                f"authority must be an https:// URL, got {self.authority!r}",
                where="--authority",
            )
        if not self.client_id:
            raise ConfigError("missing client id", where="--client-id")
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ConfigError(
                "--client-cert-file and --client-key-file go together",
                where="--client-cert-file/--client-key-file",
            )
        if not self.uses_certificate and not (
            self.client_secret_file or self.client_secret_env
        ):
            raise ConfigError(
                "no client credential: give --client-secret-file, --client-secret-env,"
                " or --client-cert-file with --client-key-file"
            )
        if self.auth_method and self.auth_method not in AUTH_METHODS:
            raise ConfigError(
                f"unknown auth method {self.auth_method!r}", where="--auth-method"
            )
        if self.auth_method == "private_key_jwt" and not self.uses_certificate:
            raise ConfigError(
                "private_key_jwt needs --client-cert-file and --client-key-file",
                where="--auth-method",
            )
        if not 0.1 <= self.refresh_at <= 0.95:
            raise ConfigError(
                f"must be between 0.1 and 0.95, got {self.refresh_at}",
                where="--refresh-at",
            )
        for option, path in (
            ("--ca-bundle", self.ca_bundle),
            ("--client-cert-file", self.client_cert_file),
            ("--client-key-file", self.client_key_file),
        ):
            if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
                raise ConfigError(
                    "file not found or unreadable", where=f"{option} {path}"
                )
        if self.ca_bundle is not None:
            _check_ca_bundle(self.ca_bundle)
        for option, value, low, high in (
            ("--timeout", self.timeout, 0.1, 300.0),
            ("--min-remaining", self.min_remaining, 0.0, 86400.0),
        ):
            if not low <= value <= high:  # also refuses nan and inf
                raise ConfigError(
                    f"must be between {low} and {high}, got {value}", where=option
                )
        if self.file_mode & ~0o777 or self.file_mode & 0o002:
            raise ConfigError(
                f"{self.file_mode:04o} is not allowed: permission bits only, and"
                " never writable by others",
                where="--file-mode",
            )
        for option, ident in (
            ("--file-owner", self.file_uid),
            ("--file-owner", self.file_gid),
        ):
            if ident is not None and not 0 <= ident < 2**32 - 1:
                raise ConfigError(f"no such id: {ident}", where=option)
        if self.client_secret_file and self.client_secret_env:
            raise ConfigError(
                "give the secret once: a file or a variable, not both",
                where="--client-secret-file/--client-secret-env",
            )
        if self.uses_certificate and (
            self.client_secret_file or self.client_secret_env
        ):
            raise ConfigError(
                "give a secret or a certificate, not both",
                where="--client-secret-file/--client-cert-file",
            )
        reserved = {key for key, _ in self.extra_params} & RESERVED_PARAMS
        if reserved:
            raise ConfigError(
                f"{sorted(reserved)[0]!r} is set by webid-agent itself"
                " (credentials never go on the command line)",
                where="--extra-param",
            )
        check_url(self.authority, "--authority")
        if self.provider == "entra" and not (self.scopes or self.audience):
            raise ConfigError(
                "entra needs --scope or --audience (e.g. api://my-app/.default)",
                where="--scope",
            )
        return self


# Token request parameters webid-agent sets itself; --extra-param cannot.
RESERVED_PARAMS = {
    "client_assertion",
    "client_assertion_type",
    "client_id",
    "client_secret",
    "grant_type",
}


def check_url(value: str, option: str) -> None:
    """A URL with a host and a valid port, or a ConfigError naming ``option``."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"not a valid URL: {value!r} ({exc})", where=option) from exc
    if not parts.hostname:
        raise ConfigError(f"not a valid URL: {value!r} (no host)", where=option)


def _check_ca_bundle(path: Path) -> None:
    """A CA bundle must hold at least one PEM certificate we can load."""
    import ssl

    try:
        context = ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(
            f"not a PEM CA bundle ({exc})", where=f"--ca-bundle {path}"
        ) from exc
    if not context.get_ca_certs():
        raise ConfigError("no CA certificate in the file", where=f"--ca-bundle {path}")


# -- click options ----------------------------------------------------------

OptionTable = Sequence[tuple[str | tuple[str, ...], dict[str, Any]]]

_OPTIONS: OptionTable = [
    (("--provider",), {"type": click.Choice(PROVIDERS), "help": "IdP kind."}),
    (("--authority",), {"help": "Entra authority or OIDC issuer URL (https)."}),
    (("--tenant-id",), {"help": "Entra tenant, appended to the authority."}),
    (("--client-id",), {"help": "OAuth client (application) id."}),
    (
        ("--client-id-file",),
        {"type": click.Path(dir_okay=False), "help": "Read the client id from a file."},
    ),  # noqa: E501
    (
        ("--client-secret-file",),
        {"type": click.Path(dir_okay=False), "help": "File holding the client secret."},
    ),  # noqa: E501
    (
        ("--client-secret-env",),
        {"metavar": "VAR", "help": "Read the secret from env VAR (only when asked)."},
    ),  # noqa: E501
    (
        ("--client-cert-file",),
        {
            "type": click.Path(dir_okay=False),
            "help": "PEM certificate for certificate credentials.",
        },
    ),  # noqa: E501
    (
        ("--client-key-file",),
        {
            "type": click.Path(dir_okay=False),
            "help": "PEM private key for the certificate.",
        },
    ),  # noqa: E501
    (
        ("--auth-method",),
        {
            "type": click.Choice(AUTH_METHODS),
            "help": "Token endpoint client auth (oidc).",
        },
    ),  # noqa: E501
    (("--scope",), {"help": "Scope(s) to request, space separated."}),
    (
        ("--audience",),
        {"help": "Expected aud claim (Entra: scope defaults to AUD/.default)."},
    ),  # noqa: E501
    (("--issuer",), {"help": "Expected iss claim (default: the discovered issuer)."}),  # noqa: E501
    (
        ("--extra-param",),
        {
            "multiple": True,
            "metavar": "KEY=VALUE",
            "help": "Extra token request parameter (oidc), e.g. resource=...",
        },
    ),  # noqa: E501
    (
        ("--token-file",),
        {
            "type": click.Path(dir_okay=False),
            "help": f"Where to write the token [{TOKEN_PATH}].",
        },
    ),  # noqa: E501
    (("--file-mode",), {"help": "Token file mode, octal [0644]."}),
    (("--file-owner",), {"metavar": "UID[:GID]", "help": "Token file owner."}),
    (
        ("--ca-bundle",),
        {
            "type": click.Path(dir_okay=False),
            "help": "CA bundle for the IdP; wins over REQUESTS_CA_BUNDLE.",
        },
    ),  # noqa: E501
    (
        ("--refresh-at",),
        {"type": float, "help": "Refresh at this fraction of the lifetime [0.8]."},
    ),  # noqa: E501
    (
        ("--min-remaining",),
        {"type": float, "help": "Seconds a written token must still be valid [60]."},
    ),  # noqa: E501
    (("--timeout",), {"type": float, "help": "Seconds per IdP request [10]."}),
    (
        ("--listen",),
        {"help": "Health/metrics address [127.0.0.1:8081]; 'off' disables."},
    ),  # noqa: E501
]

ENGINE_OPTION_NAMES = tuple(
    decls[0].lstrip("-").replace("-", "_") for decls, _ in _OPTIONS
)


CONFIG_META_KEY = "webid_agent.config"


def finite(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A click callback refusing nan and infinities (FloatRange lets nan pass)."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds")
    return value


def config_default(name: str, fallback: Any = None) -> Callable[[], Any]:
    """A click default that reads ``name`` from the ``--config`` file, if any."""

    def read() -> Any:
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            values = ctx.find_root().meta.get(CONFIG_META_KEY, {})
            if name in values:
                return values[name]
        return fallback

    return read


# Options that describe where the token goes and how the agent serves it,
# rather than how it is fetched; injectors decide these themselves.
LOCAL_OPTION_NAMES = ("token_file", "file_mode", "file_owner", "listen")


def table_options(
    table: OptionTable, *, skip: tuple[str, ...] = ()
) -> Callable[[F], F]:
    """A decorator adding each option of ``table`` the webid-agent way.

    Each option reads ``WEBID_<NAME>`` from the environment, then the same key
    from the ``--config`` file; ``table`` rows are (declaration(s), click
    keyword arguments). Injectors use this for their own option tables.
    """

    def decorate(func: F) -> F:
        for decls, attrs in reversed(table):
            names = (decls,) if isinstance(decls, str) else decls
            name = names[0].lstrip("-").replace("-", "_")
            if name in skip:
                continue
            fallback = () if attrs.get("multiple") else None
            func = click.option(
                *names,
                envvar=f"WEBID_{name.upper()}",
                show_envvar=True,
                default=config_default(name, fallback),
                **attrs,
            )(func)
        return func

    return decorate


def engine_options(func: F) -> F:
    """Decorate a click command with every engine option.

    Each reads ``WEBID_<NAME>`` from the environment, then the config file.
    """
    return table_options(_OPTIONS)(func)


def idp_options(func: F) -> F:
    """Like :func:`engine_options`, without the token file and listen options.

    For injectors, which place the token and the health port themselves.
    """
    return table_options(_OPTIONS, skip=LOCAL_OPTION_NAMES)(func)


def _path(value: Any) -> Path | None:
    return Path(str(value)) if value not in (None, "") else None


def _parse_owner(value: str) -> tuple[int | None, int | None]:
    uid, _, gid = value.partition(":")
    try:
        return int(uid), int(gid) if gid else None
    except ValueError as exc:
        raise ConfigError(
            f"expected numeric UID[:GID], got {value!r}", where="--file-owner"
        ) from exc


# An empty environment variable counts as unset for click, so "off" is the
# spelling that disables the server from WEBID_LISTEN; '' still works as a flag.
LISTEN_OFF = ("", "off", "none")


def _listen(value: Any, default: str) -> str:
    if value is None:
        return default
    return "" if str(value).strip().lower() in LISTEN_OFF else str(value)


def settings_from_options(
    options: Mapping[str, Any], *, default_token_file: str | None = TOKEN_PATH
) -> Settings:
    """Build validated Settings from click's keyword arguments.

    ``default_token_file=None`` leaves the token file unset when no option
    names one (``webid-agent token`` then prints claims instead of writing).
    """
    opts = {k: v for k, v in options.items() if v not in (None, "", ())}
    client_id = str(opts.get("client_id", ""))
    if client_id and opts.get("client_id_file"):
        raise ConfigError(
            "give the client id once: a value or a file, not both",
            where="--client-id/--client-id-file",
        )
    if not client_id and opts.get("client_id_file"):
        path = Path(str(opts["client_id_file"]))
        try:
            client_id = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read client id file: {exc.strerror}",
                where=f"--client-id-file {path}",
            ) from exc
    extra: list[tuple[str, str]] = []
    for item in opts.get("extra_param", ()):
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise ConfigError(
                f"expected KEY=VALUE, got {item!r}", where="--extra-param"
            )
        extra.append((key, value))
    mode = 0o644
    if "file_mode" in opts:
        try:
            mode = int(str(opts["file_mode"]), 8)
        except ValueError as exc:
            raise ConfigError(
                f"expected an octal mode like 0640, got {opts['file_mode']!r}",
                where="--file-mode",
            ) from exc
    uid, gid = (
        _parse_owner(str(opts["file_owner"])) if "file_owner" in opts else (None, None)
    )
    defaults = {f.name: f.default for f in fields(Settings)}
    settings = Settings(
        provider=opts.get("provider", "oidc"),
        authority=str(opts.get("authority", "")),
        client_id=client_id,
        tenant_id=opts.get("tenant_id"),
        client_secret_file=_path(opts.get("client_secret_file")),
        client_secret_env=opts.get("client_secret_env"),
        client_cert_file=_path(opts.get("client_cert_file")),
        client_key_file=_path(opts.get("client_key_file")),
        auth_method=opts.get("auth_method"),
        scope=opts.get("scope"),
        audience=opts.get("audience"),
        issuer=opts.get("issuer"),
        extra_params=tuple(extra),
        token_file=_path(opts.get("token_file") or default_token_file),
        file_mode=mode,
        file_uid=uid,
        file_gid=gid,
        ca_bundle=_path(opts.get("ca_bundle")),
        refresh_at=float(opts.get("refresh_at", defaults["refresh_at"])),
        min_remaining=float(opts.get("min_remaining", defaults["min_remaining"])),
        timeout=float(opts.get("timeout", defaults["timeout"])),
        listen=_listen(options.get("listen"), str(defaults["listen"])),
    )
    return settings.validate()


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML or TOML config file into ``{option_name: value}``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file: {exc.strerror}", where=str(path)
        ) from exc
    import yaml  # only a config file needs it; keeps start-up cheap

    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=str(path)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "syntax error"
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"not valid YAML: {problem}", where=where) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            "expected a mapping of option names to values", where=str(path)
        )
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in ("client_secret", "secret"):
            raise ConfigError(
                f"key {key!r}: secrets are not read from the config file;"
                " use client-secret-file",
                where=str(path),
            )
        out[name] = value
    return out
