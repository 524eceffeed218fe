"""Fixtures for the operator commands: the CLI runner, a TLS IdP double, STS doubles."""

from __future__ import annotations

import json
import secrets
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
import trustme
from click.testing import CliRunner
from moto.server import ThreadedMotoServer
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agent.cli import main
from tests.operator.helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    CliResult,
    IdpDouble,
    RunCli,
)


@pytest.fixture
def run_cli() -> RunCli:
    """Run ``webid-agent ARGS`` in-process through ``main`` (real exit codes)."""

    def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
        runner = CliRunner()
        with runner.isolation(env=env) as (out, err, _):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            return CliResult(code, out.getvalue().decode(), err.getvalue().decode())

    return run


# -- an IdP double over TLS ----------------------------------------------------


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A throw-away CA trusted only through --ca-bundle."""
    return trustme.CA()


@pytest.fixture(scope="session")
def _idp_server(tls_ca: trustme.CA) -> Iterator[HTTPServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = HTTPServer(host="localhost", port=0, ssl_context=context)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def fake_idp(
    _idp_server: HTTPServer, tls_ca: trustme.CA, tmp_path: Path
) -> Iterator[IdpDouble]:
    """The IdP double, reset for each test, with its CA and the client secret file."""
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    double = IdpDouble(
        server=_idp_server,
        ca_file=ca_file,
        secret_file=secret_file,
        claims={},
        issued=[],
    )
    key = secrets.token_bytes(32)

    def discovery(request: Request) -> Response:
        doc = {
            "issuer": double.discovery_issuer or double.issuer,
            "token_endpoint": f"{double.issuer}/token",
            "jwks_uri": f"{double.issuer}/jwks",
        }
        return Response(json.dumps(doc), content_type="application/json")

    def token(request: Request) -> Response:
        if double.token_status != 200:
            body = {"error": double.token_error, "error_description": "refused"}
            return Response(
                json.dumps(body),
                status=double.token_status,
                content_type="application/json",
            )
        now = int(time.time())
        claims = {
            "iss": double.issuer,
            "aud": "sts.amazonaws.com",
            "sub": CLIENT_ID,
            "iat": now,
            "exp": now + 3600,
            **double.claims,
        }
        value = jwt.encode(
            {k: v for k, v in claims.items() if v is not None}, key, algorithm="HS256"
        )
        assert double.issued is not None
        double.issued.append(value)
        body = {"access_token": value, "token_type": "Bearer", "expires_in": 3600}
        return Response(json.dumps(body), content_type="application/json")

    _idp_server.clear()
    _idp_server.expect_request(
        "/tenant1/.well-known/openid-configuration"
    ).respond_with_handler(discovery)
    _idp_server.expect_request("/tenant1/token", method="POST").respond_with_handler(
        token
    )
    yield double
    _idp_server.clear()


# -- STS doubles -----------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_sts() -> Iterator[str]:
    """moto's STS on loopback: accepts any token for any role (the happy path)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def sts_refusing(httpserver: HTTPServer) -> Callable[[str, str], str]:
    """An STS stand-in answering every call with one error; returns its URL."""

    def refuse(code: str, message: str) -> str:
        body = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error>"
            "<RequestId>00000000-0000-0000-0000-000000000000</RequestId>"
            "</ErrorResponse>"
        )
        httpserver.expect_request("/", method="POST").respond_with_data(
            body, status=400, content_type="text/xml"
        )
        return httpserver.url_for("/")

    return refuse
