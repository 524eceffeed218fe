"""A client's certificate credential: the key, the thumbprints, assertions.

Kept apart from the providers so ``cryptography`` is imported only by clients
that authenticate with a certificate.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.config import Secret, Settings
from agent.errors import ConfigError
from agent.logsetup import register_secret

__all__ = ["ClientCertificate"]


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
