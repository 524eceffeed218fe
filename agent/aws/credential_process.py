"""``webid-agent aws credential-process``: role credentials for ``~/.aws/config``.

Bare hosts, VMs and CI runners have no orchestrator to mint tokens; there an
AWS SDK runs this command (``credential_process = ...`` in a profile) and
reads the JSON it prints. One call:

1. returns the cached credentials if they still have more than the refresh
   margin left (the warm path: no IdP, no STS, no botocore import);
2. otherwise, under a lock, gets a token from the IdP (reusing the cached one
   while it is fresh), calls STS AssumeRoleWithWebIdentity, caches both and
   prints the credentials.

A failure prints one line on stderr naming the step (``IdP token`` or
``STS``) and why, exits non-zero, and prints nothing on stdout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from agent.aws.cache import CacheEntry, CredentialCache, cache_key, default_cache_dir
from agent.aws.options import StsSettings, sts_options, sts_settings_from_options
from agent.aws.sts import Credentials, resolve_endpoint_url
from agent.config import Settings, config_default, engine_options, settings_from_options
from agent.errors import RuntimeFailure, UsageError, WebIdError

__all__ = ["credential_process", "fetch_credentials"]

log = logging.getLogger(__name__)

STEP_IDP = "IdP token"
STEP_STS = "STS AssumeRoleWithWebIdentity"


@contextlib.contextmanager
def _step(name: str) -> Iterator[None]:
    """Prefix a runtime failure with the step it happened in, keeping its type."""
    try:
        yield
    except UsageError:
        raise
    except WebIdError as exc:
        exc.message = exc.format()
        exc.where = name
        exc.args = (exc.format(),)
        raise


def _fetch_token(settings: Settings, *, deadline: float) -> tuple[str, float]:
    """A fresh, checked token from the IdP, retrying transient failures."""
    from agent.engine import Stopped, TokenEngine

    engine = TokenEngine(settings)
    try:
        token = engine.refresh_with_retry(stop=threading.Event(), deadline=deadline)
    except Stopped as exc:  # only when the deadline passed mid-wait
        raise RuntimeFailure("no token before the deadline") from exc
    finally:
        engine.provider.close()
    return token.value, token.expires_at


def _fresh(
    entry: CacheEntry | None, sts: StsSettings, now: float
) -> Credentials | None:
    """The entry's credentials if they have more than the refresh margin left."""
    if entry is None or entry.credentials is None or entry.obtained_at is None:
        return None
    creds = entry.credentials
    margin = sts.margin_for(creds.expiration - entry.obtained_at)
    return creds if creds.remaining(now) > max(margin, 1.0) else None


def fetch_credentials(
    settings: Settings,
    sts: StsSettings,
    *,
    cache: CredentialCache | None,
    deadline: float = 30.0,
) -> Credentials:
    """Cached credentials if fresh, else new ones from the IdP and STS."""

    # the warm path: fresh credentials in the cache, read without a lock
    entry = cache.load() if cache else None
    creds = _fresh(entry, sts, time.time())
    if creds is not None:
        log.debug("using cached credentials (%.0fs left)", creds.remaining())
        return creds

    with cache.lock() if cache else contextlib.nullcontext():
        # another process may have refreshed while we waited for the lock
        entry = cache.load() if cache else None
        now = time.time()
        creds = _fresh(entry, sts, now)
        if creds is not None:
            return creds

        # a token: the cached one while fresh, else a new one from the IdP
        token: str | None = None
        expires_at = 0.0
        if entry and entry.token and entry.token_expires_at:
            if entry.token_expires_at - now > settings.min_remaining:
                token, expires_at = entry.token, entry.token_expires_at
        cached_token = token is not None
        if token is None:
            with _step(STEP_IDP):
                token, expires_at = _fetch_token(settings, deadline=now + deadline)

        # trade it for credentials; a cached token STS refuses is replaced once
        from agent.aws.sts import StsRefused

        try:
            with _step(STEP_STS):
                creds = sts.assume(token, timeout=settings.timeout)
        except StsRefused:
            if not cached_token:
                raise
            log.info("STS refused the cached token; fetching a new one")
            with _step(STEP_IDP):
                token, expires_at = _fetch_token(settings, deadline=now + deadline)
            with _step(STEP_STS):
                creds = sts.assume(token, timeout=settings.timeout)

        # remember both for the next calls
        if cache:
            cache.store(
                CacheEntry(
                    token=token,
                    token_expires_at=expires_at,
                    credentials=creds,
                    obtained_at=now,
                )
            )
    return creds


@click.command("credential-process")
@engine_options
@sts_options
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="WEBID_CACHE_DIR",
    show_envvar=True,
    default=config_default("cache_dir"),
    help="Cache folder [$XDG_CACHE_HOME/webid-agent/aws].",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help="Neither read nor write the cache (one IdP and one STS call).",
)
@click.option(
    "--deadline",
    type=float,
    default=30.0,
    show_default=True,
    envvar="WEBID_DEADLINE",
    help="Give up on transient IdP failures after this many seconds.",
)
@click.pass_context
def credential_process(
    ctx: click.Context,
    /,
    cache_dir: Path | None,
    no_cache: bool,
    deadline: float,
    **options: Any,
) -> None:
    """Print AWS credential-process JSON for --role-arn (IdP token -> STS).

    Credentials and the token are cached per role (mode 0600) and reused
    while fresh, so the many calls an SDK makes cost one STS call per
    credential lifetime. Errors: one line on stderr, exit 1 (2 for bad
    options), nothing on stdout.

    \b
    In ~/.aws/config (one line):
      [profile app]
      credential_process = webid-agent --config /etc/webid-agent.yaml aws
      credential-process --role-arn arn:aws:iam::111122223333:role/app
    """
    # a credential process speaks on stderr only when it fails, in one line:
    # retry warnings and cache notes show only with an explicit --log-level
    root = ctx.find_root()
    if root.get_parameter_source("log_level") in (
        click.core.ParameterSource.DEFAULT,
        None,
    ):
        logging.getLogger().setLevel(logging.CRITICAL)

    sts = sts_settings_from_options(options)
    settings = settings_from_options(options, default_token_file=None)
    cache = None
    if not no_cache:
        key = cache_key(
            sts.role_arn,
            settings.authority_url,
            settings.client_id,
            " ".join(settings.scopes),
            settings.audience,
            sts.session_name,
            sts.duration,
            sts.region,
            resolve_endpoint_url(sts.endpoint_url),
        )
        cache = CredentialCache(cache_dir or default_cache_dir(), key)
    creds = fetch_credentials(settings, sts, cache=cache, deadline=deadline)
    click.echo(json.dumps(creds.credential_process()))
