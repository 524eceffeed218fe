"""Fixtures for the credential-process and container-credentials tests.

Real parts: moto's STS in server mode on loopback behind a counting reverse
proxy (so tests can say how many ``AssumeRoleWithWebIdentity`` calls reached
STS), and an ``pytest-httpserver`` that answers STS errors verbatim.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

ACCOUNT_ID = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/webid-app"


def fake_jwt(**claims: Any) -> str:
    """An unsigned JWT-shaped token with ``claims`` (enough for moto and hints)."""

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    body = {
        "iss": "https://idp.test/tenant1",
        "aud": "sts.amazonaws.com",
        "sub": "client-1",
        "iat": now,
        "exp": now + 600,
    }
    body.update(claims)
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(body)}.c2ln"


@dataclass
class CountingSts:
    """An STS endpoint URL whose requests are counted by action."""

    endpoint_url: str
    upstream_url: str
    actions: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse_with: tuple[str, str] | None = None

    def calls(self, action: str = "AssumeRoleWithWebIdentity") -> int:
        with self.lock:
            return self.actions[action]

    def reset(self) -> None:
        with self.lock:
            self.actions.clear()
            self.refuse_with = None


def _proxy(sts: CountingSts) -> ThreadingHTTPServer:
    upstream = urllib.parse.urlsplit(sts.upstream_url)

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            action = form.get("Action", [""])[0]
            with sts.lock:
                sts.actions[action] += 1
                refusal = sts.refuse_with
            if refusal and action == "AssumeRoleWithWebIdentity":
                self._reply(400, sts_error_xml(*refusal), "text/xml")
                return
            conn = http.client.HTTPConnection(
                upstream.hostname or "127.0.0.1", upstream.port, timeout=10
            )
            try:
                headers = {k: v for k, v in self.headers.items() if k != "Host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                self._reply(
                    response.status,
                    payload,
                    response.getheader("Content-Type") or "text/xml",
                )
            finally:
                conn.close()

        def _reply(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _forward  # noqa: N815 - the http.server API

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def sts_error_xml(code: str, message: str) -> bytes:
    """An STS error response body as AWS sends it."""
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code>"
        f"<Message>{message}</Message></Error>"
        "<RequestId>00000000-0000-0000-0000-000000000000</RequestId>"
        "</ErrorResponse>"
    ).encode()


@pytest.fixture(scope="session")
def moto_sts() -> Iterator[str]:
    """moto's STS/IAM in server mode on 127.0.0.1; yields its URL."""
    app = DomainDispatcherApplication(create_backend_app)
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def counting_sts_session(moto_sts: str) -> Iterator[CountingSts]:
    """The counting proxy in front of moto (one per session)."""
    sts = CountingSts(endpoint_url="", upstream_url=moto_sts)
    server = _proxy(sts)
    sts.endpoint_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sts
    server.shutdown()
    server.server_close()


@pytest.fixture
def counting_sts(counting_sts_session: CountingSts) -> CountingSts:
    """The counting STS with its counts and refusal reset for one test."""
    counting_sts_session.reset()
    return counting_sts_session


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No AWS config, region or endpoint from the machine leaks into a test."""
    for name in (
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_STS",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_EC2_METADATA_DISABLED",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-creds"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
