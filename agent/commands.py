"""The engine's own commands: ``run`` (the sidecar loop) and ``token`` (once).

``run --serve-credentials`` adds the loopback container-credentials endpoint
(:mod:`agent.credentials_endpoint`); both commands create its authorization
token file when given ``--credentials-auth-token-file``.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from agent.aws.options import sts_options, sts_settings_from_options
from agent.config import (
    Settings,
    config_default,
    engine_options,
    finite,
    settings_from_options,
)
from agent.engine import Stopped, TokenEngine
from agent.errors import ConfigError, IdpUnavailable, RuntimeFailure
from agent.server import HealthServer

__all__ = ["run", "token"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

AUTH_TOKEN_FILE_OPTION = "--credentials-auth-token-file"  # noqa: S105 - a name


def _auth_token_file_option(func: F) -> F:
    return click.option(
        AUTH_TOKEN_FILE_OPTION,
        "credentials_auth_token_file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="WEBID_CREDENTIALS_AUTH_TOKEN_FILE",
        show_envvar=True,
        default=config_default("credentials_auth_token_file"),
        help="Authorization token file of the credentials endpoint; created if"
        " missing [next to --token-file].",
    )(func)


def _ensure_auth_token(settings: Settings, path: Path) -> None:
    """Create the endpoint's authorization token file like the token file."""
    from agent.credentials_endpoint import ensure_auth_token

    ensure_auth_token(
        path, mode=settings.file_mode, uid=settings.file_uid, gid=settings.file_gid
    )


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command()
@engine_options
@click.option(
    "--serve-credentials",
    is_flag=True,
    envvar="WEBID_SERVE_CREDENTIALS",
    show_envvar=True,
    default=config_default("serve_credentials", False),
    help="Also serve --role-arn's credentials on --credentials-listen for"
    " AWS_CONTAINER_CREDENTIALS_FULL_URI.",
)
@click.option(
    "--credentials-listen",
    envvar="WEBID_CREDENTIALS_LISTEN",
    show_envvar=True,
    default=config_default("credentials_listen", "127.0.0.1:8082"),
    show_default="127.0.0.1:8082",
    help="Loopback address of the credentials endpoint.",
)
@_auth_token_file_option
@sts_options
def run(
    serve_credentials: bool,
    credentials_listen: str,
    credentials_auth_token_file: Path | None,
    **options: Any,
) -> None:
    """Fetch a token, write it, and keep it fresh until stopped (the sidecar).

    Serves /healthz, /readyz and /metrics on --listen. SIGTERM or SIGINT
    stops it cleanly with exit code 0. With --serve-credentials it also
    serves the role's credentials on a loopback address to workloads whose
    SDK reads AWS_CONTAINER_CREDENTIALS_FULL_URI.

    \b
    Examples:
      webid-agent run --provider oidc --authority https://idp.example/t1 \\
          --client-id app --client-secret-file /secrets/client-secret \\
          --audience sts.amazonaws.com --token-file /var/run/secrets/webid/token
      webid-agent run --config idp.yaml --serve-credentials \\
          --role-arn arn:aws:iam::111122223333:role/app
    """
    sts = sts_settings_from_options(options) if serve_credentials else None
    settings = settings_from_options(options)
    engine = TokenEngine(settings)
    stop = threading.Event()
    _stop_on_signals(stop)

    # the credentials endpoint and its authorization token, when asked for
    endpoint = None
    if sts is not None:
        from agent.credentials_endpoint import CredentialsEndpoint, loopback_listen

        loopback_listen(credentials_listen)  # refuse a bad address before any file
        auth_file = credentials_auth_token_file or _default_auth_token_file(settings)
        _ensure_auth_token(settings, auth_file)
        endpoint = CredentialsEndpoint(
            engine, sts, listen=credentials_listen, auth_token_file=auth_file
        )

    # health and metrics first, so probes answer while the first token is due
    server = HealthServer(engine, settings.listen) if settings.listen else None
    if server and endpoint:
        server.route("/readyz", endpoint.readyz)
    try:
        if server:
            server.start()
        if endpoint:
            endpoint.start()
        engine.run(stop)
    finally:
        if endpoint:
            endpoint.stop()
        if server:
            server.stop()
        engine.provider.close()


def _default_auth_token_file(settings: Settings) -> Path:
    from agent.credentials_endpoint import AUTH_TOKEN_FILENAME

    if settings.token_file is None:
        raise ConfigError("give the file's path", where=AUTH_TOKEN_FILE_OPTION)
    return settings.token_file.parent / AUTH_TOKEN_FILENAME


@click.command()
@engine_options
@click.option(
    "--deadline",
    type=click.FloatRange(1, 86400),
    callback=finite,
    default=60.0,
    show_default=True,
    envvar="WEBID_DEADLINE",
    help="Give up (exit 1) after this many seconds of transient failures.",
)
@click.option("--raw", is_flag=True, help="Print the raw token on stdout.")
@_auth_token_file_option
def token(
    deadline: float,
    raw: bool,
    credentials_auth_token_file: Path | None,
    **options: Any,
) -> None:
    """Fetch one token: write it to --token-file, or print its claims.

    Retries transient IdP failures until --deadline; exit 0 once the token is
    written. Use it as an init or prestart step so the app starts with a token.

    \b
    Examples:
      webid-agent token --config idp.yaml                 # print the claims
      webid-agent token --config idp.yaml --token-file /var/run/secrets/webid/token
    """
    settings = settings_from_options(options, default_token_file=None)
    if credentials_auth_token_file is not None:
        _ensure_auth_token(settings, credentials_auth_token_file)
    engine = TokenEngine(settings)
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        result = engine.refresh_with_retry(stop=stop, deadline=time.time() + deadline)
    except Stopped as exc:
        raise RuntimeFailure("stopped before a token was fetched") from exc
    except IdpUnavailable as exc:
        raise IdpUnavailable(
            f"no token within the {deadline:.0f}s deadline; last error: {exc.message}",
            where=exc.where,
        ) from exc
    finally:
        engine.provider.close()

    if raw:
        click.echo(result.value)
    elif settings.token_file is None:
        click.echo(json.dumps(result.summary(), indent=2))
    else:
        click.echo(f"token written to {settings.token_file}", err=True)
