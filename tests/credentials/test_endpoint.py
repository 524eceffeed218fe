"""The container-credentials endpoint: what SDKs get, who is refused, where it binds."""

from __future__ import annotations

import json
import logging
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from agent.aws.options import StsSettings
from agent.aws.sts import Credentials
from agent.config import Settings
from agent.credentials_endpoint import (
    CREDENTIALS_PATH,
    CredentialsEndpoint,
    credentials_uri,
    ensure_auth_token,
    loopback_listen,
    sidecar_env,
    workload_env,
)
from agent.engine import TokenEngine
from agent.errors import ConfigError, StsError
from agent.server import Request

from .conftest import ROLE_ARN, CountingSts, fake_jwt

pytestmark = pytest.mark.usefixtures("aws_env")


class FakeProvider:
    """Hands out JWT-shaped tokens; STS (moto) does not check signatures."""

    name = "fake"

    def fetch(self) -> str:
        return fake_jwt(exp=int(time.time()) + 600)

    def expected_issuer(self) -> str | None:
        return None

    def close(self) -> None:
        return None


@pytest.fixture
def engine(tmp_path: Path) -> TokenEngine:
    """A token engine holding one token, written to a temporary file."""
    settings = Settings(
        provider="oidc",
        authority="https://idp.test/tenant1",
        client_id="c",
        token_file=tmp_path / "webid" / "token",
    )
    engine = TokenEngine(settings, provider=FakeProvider())
    engine.refresh()
    return engine


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    """The per-workload authorization token file, generated."""
    path = tmp_path / "webid" / "credentials-auth-token"
    ensure_auth_token(path)
    return path


@pytest.fixture
def endpoint(
    engine: TokenEngine, auth_file: Path, counting_sts: CountingSts
) -> Iterator[CredentialsEndpoint]:
    """A running endpoint for ROLE_ARN on 127.0.0.1 (any free port)."""
    sts = StsSettings(role_arn=ROLE_ARN, endpoint_url=counting_sts.endpoint_url)
    server = CredentialsEndpoint(
        engine, sts, listen="127.0.0.1:0", auth_token_file=auth_file
    )
    server.start()
    yield server
    server.stop()


def get(url: str, authorization: str | None = None) -> tuple[int, bytes]:
    """GET ``url`` on loopback; (status, body) also for error statuses."""
    request = urllib.request.Request(url)  # noqa: S310 - loopback test URL
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_boto3_obtains_the_role_through_the_endpoint(
    endpoint: CredentialsEndpoint,
    auth_file: Path,
    counting_sts: CountingSts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.uri)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(auth_file))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    session = boto3.session.Session()
    identity = session.client(
        "sts", endpoint_url=counting_sts.endpoint_url
    ).get_caller_identity()
    assert identity["Arn"] == (
        "arn:aws:sts::123456789012:assumed-role/webid-app/webid-agent"
    )
    assert session.get_credentials().method == "container-role"
    assert counting_sts.calls() == 1


def test_response_shape(endpoint: CredentialsEndpoint, auth_file: Path) -> None:
    status, body = get(endpoint.uri, auth_file.read_text())
    assert status == 200
    data = json.loads(body)
    assert set(data) == {
        "AccessKeyId",
        "SecretAccessKey",
        "Token",
        "Expiration",
        "RoleArn",
    }
    assert data["Expiration"].endswith("Z")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "wrong", "Bearer {token}", "{token}x", "{token_upper}"],
    ids=["missing", "empty", "wrong", "bearer-prefix", "longer", "other-case"],
)
def test_wrong_or_missing_authorization_is_refused(
    endpoint: CredentialsEndpoint,
    auth_file: Path,
    counting_sts: CountingSts,
    authorization: str | None,
) -> None:
    token = auth_file.read_text()
    if authorization is not None:
        authorization = authorization.format(token=token, token_upper=token.upper())
    status, body = get(endpoint.uri, authorization)
    assert status == 401
    assert b"AccessKeyId" not in body
    assert counting_sts.calls() == 0


def test_other_paths_are_not_found(
    endpoint: CredentialsEndpoint, auth_file: Path
) -> None:
    base = endpoint.uri.removesuffix(CREDENTIALS_PATH)
    for path in ("/", "/v1", "/v1/credentials/x", "/latest/meta-data/"):
        status, _ = get(base + path, auth_file.read_text())
        assert status == 404, path


def test_removed_token_file_refuses_everyone(
    endpoint: CredentialsEndpoint, auth_file: Path
) -> None:
    token = auth_file.read_text()
    auth_file.unlink()
    assert get(endpoint.uri, token)[0] == 401
    assert get(endpoint.uri, "")[0] == 401


def test_token_never_logged(
    endpoint: CredentialsEndpoint, auth_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = auth_file.read_text()
    get(endpoint.uri, token)
    get(endpoint.uri, token + "x")
    assert caplog.records
    assert token not in caplog.text


def test_binds_loopback_only(endpoint: CredentialsEndpoint) -> None:
    host, port = endpoint.address
    assert host == "127.0.0.1"
    # every listening socket on that port is on a loopback address
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                listening.append(address)
    assert listening == ["0100007F"]  # 127.0.0.1, little-endian hex


@pytest.mark.parametrize(
    "listen",
    [
        "0.0.0.0:8082",
        "[::]:8082",
        "192.0.2.10:8082",
        "10.0.0.1:80",
        "169.254.170.2:80",
        "example.com:8082",
        "8082",
    ],
)
def test_non_loopback_addresses_are_refused(listen: str) -> None:
    with pytest.raises(ConfigError) as info:
        loopback_listen(listen)
    assert "--credentials-listen" in (info.value.where or "")


@pytest.mark.parametrize(
    ("listen", "uri"),
    [
        ("127.0.0.1:8082", "http://127.0.0.1:8082/v1/credentials"),
        ("localhost:9000", "http://127.0.0.1:9000/v1/credentials"),
        ("127.0.0.7:1", "http://127.0.0.7:1/v1/credentials"),
        ("[::1]:8082", "http://[::1]:8082/v1/credentials"),
    ],
)
def test_loopback_addresses_and_uris(listen: str, uri: str) -> None:
    assert credentials_uri(listen) == uri


def test_sts_refusal_gives_503_with_the_reason(
    engine: TokenEngine, auth_file: Path, counting_sts: CountingSts
) -> None:
    counting_sts.refuse_with = ("AccessDenied", "Not authorized")
    sts = StsSettings(role_arn=ROLE_ARN, endpoint_url=counting_sts.endpoint_url)
    server = CredentialsEndpoint(
        engine, sts, listen="127.0.0.1:0", auth_token_file=auth_file
    )
    try:
        status, body = get_direct(server, auth_file.read_text())
        ready = server.readyz(Request("GET", "/readyz", {}, "127.0.0.1"))
    finally:
        server.stop()
    assert status == 503
    assert "trust policy of " + ROLE_ARN in body["detail"]
    assert ready.status == 503
    assert "AccessDenied" in json.loads(ready.body)["last_error"]


def get_direct(endpoint: CredentialsEndpoint, token: str) -> tuple[int, dict[str, str]]:
    """Call the endpoint's handler without HTTP (for a stopped endpoint)."""
    response = endpoint.handle(
        Request("GET", CREDENTIALS_PATH, {"authorization": token}, "127.0.0.1")
    )
    return response.status, json.loads(response.body)


def test_background_refresh_before_expiry(engine: TokenEngine, auth_file: Path) -> None:
    calls: list[float] = []

    def assume(token: str, sts: StsSettings) -> Credentials:
        calls.append(time.time())
        return Credentials(f"ASIA{len(calls)}", "s", "t", time.time() + 2.0, None)

    sts = StsSettings(role_arn=ROLE_ARN, refresh_margin=1.0)
    server = CredentialsEndpoint(
        engine, sts, listen="127.0.0.1:0", auth_token_file=auth_file, assume=assume
    )
    server.start()
    try:
        deadline = time.time() + 10
        while len(calls) < 3 and time.time() < deadline:
            time.sleep(0.1)
    finally:
        server.stop()
    assert len(calls) >= 3
    # each refresh came about one margin before the previous credentials expired
    assert all(0.5 < b - a < 1.8 for a, b in zip(calls, calls[1:], strict=False))


def test_request_finding_stale_credentials_waits_for_new_ones(
    engine: TokenEngine, auth_file: Path
) -> None:
    issued: list[str] = []

    def assume(token: str, sts: StsSettings) -> Credentials:
        issued.append(f"ASIA{len(issued)}")
        lifetime = 30.0 if len(issued) == 1 else 3600.0  # first one nearly expired
        return Credentials(issued[-1], "s", "t", time.time() + lifetime, None)

    sts = StsSettings(role_arn=ROLE_ARN, refresh_margin=0)
    server = CredentialsEndpoint(
        engine, sts, listen="127.0.0.1:0", auth_token_file=auth_file, assume=assume
    )
    server.refresh()
    status, body = get_direct(server, auth_file.read_text())
    assert status == 200 and body["AccessKeyId"] == "ASIA1"
    server.stop()


def test_no_token_yet_is_503(tmp_path: Path, auth_file: Path) -> None:
    settings = Settings(provider="oidc", authority="https://x/t", client_id="c")
    engine = TokenEngine(settings, provider=FakeProvider())
    server = CredentialsEndpoint(
        engine,
        StsSettings(role_arn=ROLE_ARN),
        listen="127.0.0.1:0",
        auth_token_file=auth_file,
    )
    status, body = get_direct(server, auth_file.read_text())
    assert status == 503 and "no valid web identity token" in body["detail"]
    server.stop()
    with pytest.raises(StsError):
        server.refresh()


def test_auth_token_generated_once(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "credentials-auth-token"
    first = ensure_auth_token(path, mode=0o640)
    assert len(first) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert ensure_auth_token(path) == first
    other = tmp_path / "other"
    assert ensure_auth_token(other) != first


def test_concurrent_generation_agrees(tmp_path: Path) -> None:
    path = tmp_path / "credentials-auth-token"
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_auth_token(path)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # whoever lost the race reads the winner's value back
    assert results == [path.read_text()] * 4


def test_env_for_injectors() -> None:
    assert workload_env() == {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:8082/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": (
            "/var/run/secrets/webid/credentials-auth-token"
        ),
    }
    env = sidecar_env(role_arn=ROLE_ARN, region="eu-west-1", duration=900)
    assert env == {
        "WEBID_SERVE_CREDENTIALS": "true",
        "WEBID_ROLE_ARN": ROLE_ARN,
        "WEBID_CREDENTIALS_LISTEN": "127.0.0.1:8082",
        "WEBID_CREDENTIALS_AUTH_TOKEN_FILE": (
            "/var/run/secrets/webid/credentials-auth-token"
        ),
        "WEBID_REGION": "eu-west-1",
        "WEBID_DURATION": "900",
    }
    with pytest.raises(ConfigError):
        sidecar_env(role_arn=ROLE_ARN, listen="0.0.0.0:8082")
