"""Any OIDC provider with the client-credentials grant, found by discovery.

Client authentication: ``client_secret_basic``, ``client_secret_post`` or
``private_key_jwt`` (a short-lived assertion signed with the client's key,
carrying the certificate thumbprints Entra and others look for).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from typing import Any
from urllib.parse import quote

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.config import Secret, Settings
from agent.errors import ConfigError, IdpError, IdpUnavailable
from agent.http import make_session
from agent.logsetup import register_secret
from agent.providers.base import http_failures, response_failure

__all__ = ["ClientCertificate", "OidcProvider", "discover"]

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ClientCertificate:
    """A client's certificate and private key, loaded once from PEM files."""

    def __init__(self, settings: Settings) -> None:
        assert settings.client_cert_file and settings.client_key_file  # noqa: S101
        try:
            cert_pem = settings.client_cert_file.read_bytes()
            key_pem = settings.client_key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read certificate or key: {exc.strerror}",
                where=str(exc.filename),
            ) from exc
        try:
            self.certificate = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise ConfigError(
                "not a PEM certificate", where=str(settings.client_cert_file)
            ) from exc
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "not an unencrypted PEM private key",
                where=str(settings.client_key_file),
            ) from exc
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ConfigError(
                "only RSA and EC keys are supported",
                where=str(settings.client_key_file),
            )
        self.key = key
        self.key_pem = Secret(key_pem.decode())
        self.cert_pem = cert_pem.decode()
        register_secret(self.key_pem.reveal())
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        self.sha1 = hashlib.sha1(der, usedforsecurity=False).digest()
        self.sha256 = hashlib.sha256(der).digest()

    @property
    def algorithm(self) -> str:
        return "RS256" if isinstance(self.key, rsa.RSAPrivateKey) else "ES256"

    def assertion(self, *, client_id: str, audience: str) -> str:
        """A client assertion JWT for ``private_key_jwt`` (valid 5 minutes)."""
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        headers = {"x5t": _b64url(self.sha1), "x5t#S256": _b64url(self.sha256)}
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)

    def fingerprint_sha1_hex(self) -> str:
        return self.certificate.fingerprint(hashes.SHA1()).hex()  # noqa: S303


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
            self._certificate = ClientCertificate(settings)
        else:
            self._secret = settings.client_secret()
            register_secret(self._secret.reveal())

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
