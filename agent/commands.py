"""The engine's own commands: ``run`` (the sidecar loop) and ``token`` (once)."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

import click

from agent.config import engine_options, settings_from_options
from agent.engine import Stopped, TokenEngine
from agent.errors import IdpUnavailable, RuntimeFailure
from agent.server import HealthServer

__all__ = ["run", "token"]

log = logging.getLogger(__name__)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command()
@engine_options
def run(**options: Any) -> None:
    """Fetch a token, write it, and keep it fresh until stopped (the sidecar).

    Serves /healthz, /readyz and /metrics on --listen. SIGTERM or SIGINT
    stops it cleanly with exit code 0.

    \b
    Example:
      webid-agent run --provider oidc --authority https://idp.example/t1 \\
          --client-id app --client-secret-file /secrets/client-secret \\
          --audience sts.amazonaws.com --token-file /var/run/secrets/webid/token
    """
    settings = settings_from_options(options)
    engine = TokenEngine(settings)
    stop = threading.Event()
    _stop_on_signals(stop)

    # health and metrics first, so probes answer while the first token is due
    server = HealthServer(engine, settings.listen) if settings.listen else None
    if server:
        server.start()
    try:
        engine.run(stop)
    finally:
        if server:
            server.stop()
        engine.provider.close()


@click.command()
@engine_options
@click.option(
    "--deadline",
    type=float,
    default=60.0,
    show_default=True,
    envvar="WEBID_DEADLINE",
    help="Give up (exit 1) after this many seconds of transient failures.",
)
@click.option("--raw", is_flag=True, help="Print the raw token on stdout.")
def token(deadline: float, raw: bool, **options: Any) -> None:
    """Fetch one token: write it to --token-file, or print its claims.

    Retries transient IdP failures until --deadline; exit 0 once the token is
    written. Use it as an init or prestart step so the app starts with a token.

    \b
    Examples:
      webid-agent token --config idp.yaml                 # print the claims
      webid-agent token --config idp.yaml --token-file /var/run/secrets/webid/token
    """
    settings = settings_from_options(options, default_token_file=None)
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
