"""Any OIDC provider with the client-credentials grant, found by discovery.

Client authentication: ``client_secret_basic``, ``client_secret_post`` or
``private_key_jwt`` (a short-lived assertion signed with the client's key,
carrying the certificate thumbprints Entra and others look for).
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agent.config import Secret, Settings
from agent.errors import IdpError, IdpUnavailable
from agent.http import make_session
from agent.logsetup import register_secret
from agent.providers.base import http_failures, response_failure

if TYPE_CHECKING:
    from agent.providers.certificate import ClientCertificate

__all__ = ["OidcProvider", "discover"]

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def discover(session: Any, issuer: str) -> dict[str, Any]:
    """Fetch and check ``{issuer}/.well-known/openid-configuration``."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    with http_failures(url):
        response = session.get(url)
    if response.status_code != 200:
        raise response_failure(response, url)
    try:
        doc = response.json()
    except ValueError as exc:
        raise IdpUnavailable("discovery document is not JSON", where=url) from exc
    if not isinstance(doc, dict) or "token_endpoint" not in doc:
        raise IdpError("discovery document has no token_endpoint", where=url)
    if doc.get("issuer", "").rstrip("/") != issuer.rstrip("/"):
        raise IdpError(
            f"discovery issuer {doc.get('issuer')!r} differs from the authority"
            f" {issuer!r}; set --authority to the issuer exactly",
            where=url,
        )
    return doc


class OidcProvider:
    """Client-credentials grant against a discovered OIDC token endpoint."""

    name = "oidc"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session = make_session(
            ca_bundle=settings.ca_bundle, timeout=settings.timeout
        )
        self._discovery: dict[str, Any] | None = None
        self._method = settings.effective_auth_method
        self._certificate: ClientCertificate | None = None
        self._secret: Secret | None = None
        if self._method == "private_key_jwt":
            # cryptography is loaded only for certificate credentials
            from agent.providers.certificate import ClientCertificate

            self._certificate = ClientCertificate(settings)
        else:
            self._secret = settings.client_secret()
            register_secret(self._secret.reveal())
            # an IdP may echo the Authorization header in an error description
            user = quote(settings.client_id, safe="")
            basic = f"{user}:{quote(self._secret.reveal(), safe='')}"
            register_secret(base64.b64encode(basic.encode()).decode())

    def expected_issuer(self) -> str | None:
        if self._settings.issuer:
            return self._settings.issuer
        return self._discovery["issuer"] if self._discovery else None

    def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            self._discovery = discover(self._session, self._settings.authority_url)
        return self._discovery

    def _request_body(self, token_endpoint: str) -> tuple[dict[str, str], Any]:
        settings = self._settings
        data = {"grant_type": "client_credentials"}
        if settings.scopes:
            data["scope"] = " ".join(settings.scopes)
        data.update(dict(settings.extra_params))
        auth = None
        if self._method == "private_key_jwt":
            assert self._certificate is not None  # noqa: S101
            data["client_id"] = settings.client_id
            data["client_assertion_type"] = ASSERTION_TYPE
            data["client_assertion"] = self._certificate.assertion(
                client_id=settings.client_id, audience=token_endpoint
            )
        elif self._method == "client_secret_post":
            assert self._secret is not None  # noqa: S101
            data["client_id"] = settings.client_id
            data["client_secret"] = self._secret.reveal()
        else:
            assert self._secret is not None  # noqa: S101
            # RFC 6749 2.3.1: both parts form-urlencoded before Basic encoding.
            auth = (
                quote(settings.client_id, safe=""),
                quote(self._secret.reveal(), safe=""),
            )
        return data, auth

    def fetch(self) -> str:
        token_endpoint = str(self.discovery()["token_endpoint"])
        data, auth = self._request_body(token_endpoint)

        # post the grant
        log.debug("requesting a token from %s (%s)", token_endpoint, self._method)
        with http_failures(token_endpoint):
            response = self._session.post(
                token_endpoint,
                data=data,
                auth=auth,
                headers={"Accept": "application/json"},
            )
        if response.status_code != 200:
            raise response_failure(response, token_endpoint)

        # read the token out of the answer
        try:
            body = response.json()
        except ValueError as exc:
            raise IdpUnavailable(
                "token response is not valid JSON", where=token_endpoint
            ) from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise IdpError("token response has no access_token", where=token_endpoint)
        return token

    def close(self) -> None:
        self._session.close()
