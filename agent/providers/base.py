"""What every provider offers the engine, and shared handling of HTTP failures."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import requests

from agent.errors import IdpError, IdpUnavailable

__all__ = ["Provider", "http_failures", "parse_retry_after"]


class Provider(Protocol):
    """Fetches one fresh access token per call."""

    name: str

    def fetch(self) -> str:
        """Return a new raw token; raise IdpUnavailable (retry) or IdpError."""
        ...

    def expected_issuer(self) -> str | None:
        """The issuer tokens must carry, once known (after discovery)."""
        ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@contextmanager
def http_failures(url: str) -> Iterator[None]:
    """Turn transport errors for ``url`` into IdpUnavailable or IdpError."""
    try:
        yield
    except requests.exceptions.SSLError as exc:
        raise IdpError(
            "TLS verification failed: the server certificate is not trusted by the"
            " CA bundle in use (set --ca-bundle to the IdP's CA)",
            where=url,
        ) from exc
    except requests.exceptions.Timeout as exc:
        raise IdpUnavailable("timed out", where=url) from exc
    except requests.exceptions.ConnectionError as exc:
        raise IdpUnavailable("cannot connect", where=url) from exc
    except requests.exceptions.RequestException as exc:
        raise IdpUnavailable(
            f"request failed: {type(exc).__name__}", where=url
        ) from exc


def response_failure(response: requests.Response, url: str) -> IdpError:
    """The error to raise for a non-200 token or discovery response."""
    status = response.status_code
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return IdpUnavailable(f"HTTP {status}", where=url, retry_after=retry_after)
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict) and "error" in body:
            detail = f": {body['error']}"
            if body.get("error_description"):
                detail += f" ({str(body['error_description'])[:200]})"
    except ValueError:
        pass
    hint = ""
    if status == 401 or "invalid_client" in detail:
        hint = " - check the client id and credential"
    return IdpError(f"HTTP {status}{detail}{hint}", where=url)
