"""The token engine: fetch, check, write and refresh one identity's token.

Scheduling comes from the token's real lifetime: a token received at ``t``
with lifetime ``L`` is refreshed at ``t + L * refresh_at``, less up to
``jitter`` of that, and never later than ``exp - min_remaining``. Between
refreshes the engine sleeps on an event (no polling). Failures are retried
with exponential backoff and full jitter, capped, honouring ``Retry-After``;
the last valid token stays in the file until it expires.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_random_exponential,
)

from agent.claims import Token, check_token, parse_token
from agent.config import Settings
from agent.errors import (
    IdpError,
    IdpUnavailable,
    TokenFileError,
    TokenRejected,
    WebIdError,
)
from agent.logsetup import redact
from agent.metrics import EngineMetrics
from agent.providers import Provider, make_provider
from agent.tokenfile import write_atomic

__all__ = ["EngineStatus", "Stopped", "TokenEngine"]

log = logging.getLogger(__name__)


class Stopped(Exception):
    """Raised out of a wait when the engine was asked to stop."""


@dataclass(frozen=True)
class EngineStatus:
    """A snapshot for health checks and ``doctor``: no token value inside."""

    ready: bool
    token: Token | None
    last_error: str | None
    consecutive_failures: int


class TokenEngine:
    """Keeps one identity's token fresh in its file."""

    def __init__(
        self,
        settings: Settings,
        *,
        provider: Provider | None = None,
        metrics: EngineMetrics | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.provider = provider or make_provider(settings)
        self.metrics = metrics or EngineMetrics()
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._received_at = 0.0
        self._last_error: str | None = None
        self._failures = 0
        self._backoff = wait_random_exponential(
            multiplier=settings.backoff_base, max=settings.backoff_cap
        )

    # -- state --------------------------------------------------------------

    @property
    def token(self) -> Token | None:
        with self._lock:
            return self._token

    def is_ready(self) -> bool:
        """True while the file holds a token valid for half of min_remaining or more.

        A refresh is due by ``exp - min_remaining`` at the latest, so a ready
        engine that turns unready has missed its refresh by a wide margin.
        """
        token = self.token
        ready = (
            token is not None
            and token.remaining(self._clock()) >= self.settings.min_remaining / 2
        )
        self.metrics.ready.set(1 if ready else 0)
        return ready

    def status(self) -> EngineStatus:
        with self._lock:
            token, error, failures = self._token, self._last_error, self._failures
        return EngineStatus(self.is_ready(), token, error, failures)

    # -- one attempt ----------------------------------------------------------

    def refresh(self) -> Token:
        """Fetch, check and write one token; record the outcome in metrics."""
        source = self.settings.authority_url
        started = self._clock()
        try:
            # fetch from the IdP
            with self.metrics.latency.time():
                raw = self.provider.fetch()
            received = self._clock()

            # check the claims against the configuration
            token = parse_token(raw, source=source, received_at=received)
            check_token(
                token,
                source=source,
                issuer=self.provider.expected_issuer(),
                audience=self.settings.audience,
                min_remaining=self.settings.min_remaining,
                now=received,
            )

            # write it where the workload reads it
            if self.settings.token_file is not None:
                write_atomic(
                    self.settings.token_file,
                    raw,
                    mode=self.settings.file_mode,
                    uid=self.settings.file_uid,
                    gid=self.settings.file_gid,
                )
        except WebIdError as exc:
            self._record_failure(exc)
            raise

        with self._lock:
            self._token = token
            self._received_at = received
            self._last_error = None
            self._failures = 0
        self.metrics.refreshes.labels(result="success").inc()
        self.metrics.expiry.set(token.expires_at)
        self.metrics.last_success.set(received)
        self.is_ready()
        log.info(
            "token %s: iss=%s aud=%s expires in %.0fs (took %.2fs)",
            f"written to {self.settings.token_file}"
            if self.settings.token_file
            else "received",
            token.issuer,
            ",".join(token.audience),
            token.remaining(received),
            received - started,
            extra={"event": "token_written"},
        )
        return token

    def _record_failure(self, exc: WebIdError) -> None:
        if isinstance(exc, IdpUnavailable):
            result = "unavailable"
        elif isinstance(exc, TokenRejected):
            result = "rejected"
        elif isinstance(exc, TokenFileError):
            result = "write_error"
        else:
            result = "idp_error"
        self.metrics.refreshes.labels(result=result).inc()
        with self._lock:
            self._last_error = redact(exc.format())
            self._failures += 1
        self.is_ready()

    # -- retries --------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        delay = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, IdpUnavailable) and exc.retry_after:
            delay = max(delay, exc.retry_after)
        return delay

    def refresh_with_retry(
        self,
        *,
        stop: threading.Event,
        deadline: float | None = None,
        retry_on: tuple[type[WebIdError], ...] = (IdpUnavailable,),
    ) -> Token:
        """Refresh until it works, ``stop`` is set, or ``deadline`` would pass."""

        def sleep(seconds: float) -> None:
            if deadline is not None and self._clock() + seconds > deadline:
                seconds = max(0.0, deadline - self._clock())
            if stop.wait(seconds):
                raise Stopped

        def should_stop(state: RetryCallState) -> bool:
            if stop.is_set():
                return True
            return deadline is not None and self._clock() >= deadline

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "token refresh failed (attempt %d), retrying in %.1fs: %s",
                state.attempt_number,
                state.upcoming_sleep,
                exc.format() if isinstance(exc, WebIdError) else exc,
            )

        retrying = Retrying(
            retry=retry_if_exception_type(retry_on),
            wait=self._wait,
            stop=should_stop,
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            token: Token = retrying(self.refresh)
        except WebIdError as exc:
            if stop.is_set():
                raise Stopped from exc
            raise
        return token

    # -- the loop -------------------------------------------------------------

    def next_refresh_at(self, token: Token) -> float:
        """When to replace ``token``: a jittered fraction of its lifetime."""
        with self._lock:
            received = self._received_at or self._clock()
        lifetime = max(0.0, token.expires_at - received)
        span = lifetime * self.settings.refresh_at
        span -= span * self.settings.jitter * self._rng()
        latest = received + lifetime - self.settings.min_remaining
        return max(received, min(received + span, latest))

    def run(self, stop: threading.Event) -> None:
        """Keep the token fresh until ``stop`` is set.

        The first token is retried only on transient failures: a bad client id
        or credential ends the loop with its error. Once a token was written,
        every failure is retried and the last token stays in place.
        """
        retry_on: tuple[type[WebIdError], ...] = (IdpUnavailable,)
        while not stop.is_set():
            try:
                token = self.refresh_with_retry(stop=stop, retry_on=retry_on)
            except Stopped:
                break
            except (IdpError, TokenFileError):
                if retry_on == (IdpUnavailable,):
                    raise
                continue
            retry_on = (IdpError, TokenFileError)
            delay = self.next_refresh_at(token) - self._clock()
            log.debug("next refresh in %.1fs", delay)
            if stop.wait(max(0.0, delay)):
                break
        log.info("token engine stopped")
