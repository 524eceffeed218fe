"""Entra ID (Azure AD) through msal, one ConfidentialClientApplication per identity.

msal keeps its own token cache and hands back a cached token until it is close
to expiry; the engine decides when a token is due from its real ``exp``, so
every fetch first drops cached access tokens and asks the IdP for a new one.
An authority on a Microsoft login host is passed as ``authority``; any other
(a CIAM custom domain, a generic OIDC issuer) as ``oidc_authority``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

import msal
import requests

from agent.config import Settings
from agent.errors import IdpError, IdpUnavailable
from agent.http import make_session
from agent.logsetup import register_secret
from agent.providers.base import http_failures

__all__ = ["EntraProvider"]

log = logging.getLogger(__name__)

MICROSOFT_LOGIN_HOSTS = (
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
)

# msal error codes worth retrying; anything else is a configuration problem.
TRANSIENT_ERRORS = {"temporarily_unavailable", "server_error", "throttled"}


class EntraProvider:
    """Client credentials through msal."""

    name = "entra"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session = make_session(
            ca_bundle=settings.ca_bundle, timeout=settings.timeout
        )
        credential: Any
        if settings.uses_certificate:
            from agent.providers.certificate import ClientCertificate

            cert = ClientCertificate(settings)
            credential = {
                "private_key": cert.key_pem.reveal(),
                "thumbprint": cert.fingerprint_sha1_hex(),
                "public_certificate": cert.cert_pem,
            }
        else:
            secret = settings.client_secret()
            register_secret(secret.reveal())
            credential = secret.reveal()
        self._credential = credential
        self._app: msal.ConfidentialClientApplication | None = None

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is not None:
            return self._app
        url = self._settings.authority_url
        kwargs: dict[str, Any] = {
            "client_credential": self._credential,
            "http_client": self._session,
            "timeout": self._settings.timeout,
        }
        if urlparse(url).hostname in MICROSOFT_LOGIN_HOSTS:
            kwargs["authority"] = url
        else:
            kwargs["oidc_authority"] = url
        # msal reads the discovery document while it is constructed.
        with http_failures(url):
            try:
                self._app = msal.ConfidentialClientApplication(
                    self._settings.client_id, **kwargs
                )
            except ValueError as exc:
                raise IdpError(
                    f"msal rejected the authority: {exc}", where=url
                ) from exc
        return self._app

    def expected_issuer(self) -> str | None:
        if self._settings.issuer:
            return self._settings.issuer
        url = self._settings.authority_url
        if urlparse(url).hostname in MICROSOFT_LOGIN_HOSTS and self._settings.tenant_id:
            # v2 access tokens carry .../{tenant}/v2.0 as their issuer.
            return f"{url}/v2.0"
        return url

    def fetch(self) -> str:
        app = self._application()
        cache = app.token_cache
        for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(entry)
        url = self._settings.authority_url
        with http_failures(url):
            try:
                result = app.acquire_token_for_client(scopes=self._settings.scopes)
            except (ValueError, KeyError) as exc:
                raise IdpUnavailable(
                    f"unreadable answer from the IdP ({type(exc).__name__})", where=url
                ) from exc
            except requests.RequestException:
                raise
        if not isinstance(result, dict):
            raise IdpUnavailable("no answer from msal", where=url)
        token = result.get("access_token")
        if isinstance(token, str) and token:
            return token
        error = str(result.get("error", "unknown_error"))
        description = str(result.get("error_description", ""))[:200]
        message = f"{error}: {description}" if description else error
        if error in TRANSIENT_ERRORS:
            raise IdpUnavailable(message, where=url)
        raise IdpError(message, where=url)

    def close(self) -> None:
        self._session.close()
