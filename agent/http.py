"""The HTTP session every IdP call goes through: pinned CA, bounded timeouts,
and no redirects for requests that carry a credential.

``requests`` lets ``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE`` override a
session's ``verify`` whenever a call does not pass one itself (msal does not).
A CA bundle the user chose must win, so the session pins it after the
environment is merged. Proxies from the environment are still honoured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

__all__ = ["PinnedSession", "make_session"]


class PinnedSession(requests.Session):
    """A session whose CA bundle and default timeout cannot be overridden."""

    def __init__(self, *, ca_bundle: Path | None, timeout: float) -> None:
        super().__init__()
        self._ca_bundle = str(ca_bundle) if ca_bundle is not None else None
        self._timeout = timeout
        if self._ca_bundle:
            self.verify = self._ca_bundle
        self.headers["User-Agent"] = "webid-agent"

    def merge_environment_settings(
        self,
        url: str | bytes | None,
        proxies: Any,
        stream: bool | None,
        verify: bool | str | None,
        cert: Any,
    ) -> Any:
        settings = super().merge_environment_settings(
            url, proxies, stream, verify, cert
        )
        if self._ca_bundle:
            settings["verify"] = self._ca_bundle
        return settings

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        if method.upper() == "POST":
            # a token request carries the client's credential: never let a
            # redirect send it to another address
            kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)


def make_session(*, ca_bundle: Path | None, timeout: float) -> PinnedSession:
    """A session for one identity: its CA bundle wins over the environment."""
    return PinnedSession(ca_bundle=ca_bundle, timeout=timeout)
