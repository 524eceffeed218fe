"""Fixtures for the credential-process and container-credentials tests.

Real parts come from the root conftest (the local IdP, moto's STS plain and
token-checking); here they get a counting reverse proxy in front, so tests can
say how many ``AssumeRoleWithWebIdentity`` calls reached STS.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from devenv.idp import Idp
    from devenv.sts import Sts

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
def moto_sts(sts: Sts) -> str:
    """URL of the shared moto STS (accepts any token)."""
    return sts.endpoint_url


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
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
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


# -- the real IdP and STS (devenv) ------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
# what the console script runs, kept on this checkout whatever is installed
CLI = [sys.executable, "-c", "from agent.cli import main; main()"]


@dataclass
class Stack:
    """The local IdP, STS (behind the counting proxy) and a role trusting the IdP."""

    idp: Idp
    sts: Sts
    counting: CountingSts
    role_arn: str


@pytest.fixture(scope="session")
def stack(idp: Idp, checked_sts: Sts) -> Iterator[Stack]:
    """The shared IdP, the STS checking its tokens behind a counting proxy, a role."""
    from devenv.sts import create_role

    counting = CountingSts(endpoint_url="", upstream_url=checked_sts.endpoint_url)
    proxy = _proxy(counting)
    counting.endpoint_url = f"http://127.0.0.1:{proxy.server_address[1]}"
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        role_arn = create_role(checked_sts, "webid-e2e", issuer=idp.issuer)
        yield Stack(idp=idp, sts=checked_sts, counting=counting, role_arn=role_arn)
    finally:
        proxy.shutdown()
        proxy.server_close()


@dataclass
class Profile:
    """A webid-agent config file for the stack, and the environment to run in."""

    config: Path
    env: dict[str, str]
    cache_dir: Path

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``webid-agent --config CONFIG ARGS`` in a subprocess."""
        return subprocess.run(
            [*CLI, "--config", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def profile(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    aws_env: None,
) -> Profile:
    """Settings for client ``webid-secret`` and the e2e role; counts reset."""
    stack.counting.reset()
    client = stack.idp.client("webid-secret")
    secret = tmp_path / "client.secret"
    secret.write_text(client.secret or "")
    secret.chmod(0o600)
    config = tmp_path / "webid.yaml"
    config.write_text(
        f"authority: {stack.idp.issuer}\n"
        f"client-id: {client.client_id}\n"
        f"client-secret-file: {secret}\n"
        f"ca-bundle: {stack.idp.ca_file}\n"
        f"audience: {stack.idp.audience}\n"
        f"role-arn: {stack.role_arn}\n"
        f"sts-endpoint-url: {stack.counting.endpoint_url}\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBID_")}
    return Profile(config=config, env=env, cache_dir=tmp_path / "xdg-cache")
