"""Fixtures for engine tests: a scripted IdP double over TLS and settings for it.

The double answers discovery and the token endpoint like an OIDC provider and
can be scripted per request (429, 500, timeouts, bad JSON, odd claims). Tests
against the real OpenID provider live in ``tests/idp``.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import trustme
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agent.config import Settings

TENANT = "tenant1"
AUDIENCE = "sts.amazonaws.com"
CLIENT_ID = "engine-test-client"
CLIENT_SECRET = "s3cr3t-Value-that-must-never-leak"  # noqa: S105 - test fixture
SIGNING_KEY = "double-signing-key-0123456789abcdef"

Step = Callable[[Request], Response]


@dataclass
class IdpDouble:
    """An OIDC provider double: discovery plus a scripted token endpoint."""

    server: HTTPServer
    ca_file: Path
    lifetime: int = 300
    script: list[Step] = field(default_factory=list)
    requests: list[tuple[float, dict[str, str], dict[str, str]]] = field(
        default_factory=list
    )
    issued: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def issuer(self) -> str:
        return self.server.url_for(f"/{TENANT}").rstrip("/")

    @property
    def token_endpoint(self) -> str:
        return self.server.url_for(f"/{TENANT}/token")

    def make_token(self, **overrides: Any) -> str:
        """A signed token with the double's issuer; ``None`` drops a claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": CLIENT_ID,
            "iat": now,
            "exp": now + self.lifetime,
            "jti": str(uuid.uuid4()),
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, SIGNING_KEY, algorithm="HS256")

    def token_response(self, **overrides: Any) -> Response:
        token = self.make_token(**overrides)
        with self.lock:
            self.issued.append(token)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        return Response(json.dumps(body), 200, content_type="application/json")

    def then(self, *steps: Step) -> None:
        """Queue steps for the next token requests; afterwards tokens are valid."""
        with self.lock:
            self.script.extend(steps)

    def _token(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(
                (time.time(), dict(request.form), dict(request.headers))
            )
            step = self.script.pop(0) if self.script else None
        return step(request) if step else self.token_response()


def status(code: int, body: str = "", **headers: str) -> Step:
    """A step answering ``code`` with ``body`` and headers."""
    return lambda request: Response(body, code, headers=headers)


def slow(seconds: float) -> Step:
    """A step that answers only after ``seconds`` (to trip client timeouts)."""

    def step(request: Request) -> Response:
        time.sleep(seconds)
        return Response("{}", 200, content_type="application/json")

    return step


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """A throwaway CA and its PEM file, trusted by nothing but our tests."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture
def idp_double(tls_ca: tuple[trustme.CA, Path]) -> Iterator[IdpDouble]:
    """A fresh IdP double over HTTPS on loopback for one test."""
    ca, ca_file = tls_ca
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = HTTPServer(host="localhost", port=0, ssl_context=context, threaded=True)
    server.start()
    double = IdpDouble(server=server, ca_file=ca_file)
    server.expect_request(
        f"/{TENANT}/.well-known/openid-configuration"
    ).respond_with_json(
        {
            "issuer": double.issuer,
            "token_endpoint": double.token_endpoint,
            "jwks_uri": server.url_for(f"/{TENANT}/jwks"),
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
        }
    )
    server.expect_request(f"/{TENANT}/token", method="POST").respond_with_handler(
        double._token
    )
    yield double
    server.clear()
    server.stop()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """The client secret in a file, as the engine wants it."""
    path = tmp_path / "client-secret"
    path.write_text(CLIENT_SECRET + "\n")
    return path


@pytest.fixture
def make_settings(
    idp_double: IdpDouble, secret_file: Path, tmp_path: Path
) -> Callable[..., Settings]:
    """Settings pointing at the double; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "provider": "oidc",
            "authority": idp_double.issuer,
            "client_id": CLIENT_ID,
            "client_secret_file": secret_file,
            "audience": AUDIENCE,
            "token_file": tmp_path / "out" / "token",
            "ca_bundle": idp_double.ca_file,
            "min_remaining": 5.0,
            "timeout": 2.0,
            "backoff_base": 0.05,
            "backoff_cap": 0.2,
        }
        values.update(overrides)
        return Settings(**values).validate()

    return make
