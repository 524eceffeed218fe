"""Tests proving the local IdP and the STS stand-in behave like the real thing.

Every HTTPS call trusts only the fixture CA, passed explicitly; the machine's
REQUESTS_CA_BUNDLE / SSL_CERT_FILE point at the system bundle (which does not
contain that CA) and must not matter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.session
import jwt
import msal
import pytest
import requests

from devenv.idp import (
    AUTH_BASIC,
    AUTH_POST,
    AUTH_PRIVATE_KEY_JWT,
    DEFAULT_SCOPE,
    OTHER_AUDIENCE,
    OTHER_RESOURCE,
    SHORT_TTL,
    Idp,
    IdpClient,
    IdpError,
    ensure_node_modules,
    start_idp,
    verify_token,
)
from devenv.sts import Sts, assume_role_with_web_identity

REPO_ROOT = Path(__file__).resolve().parents[2]


def _token(idp: Idp, client_id: str, **kwargs: Any) -> str:
    response = idp.request_token(client_id, **kwargs)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    return str(body["access_token"])


def _msal_app(idp: Idp, client_id: str) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=idp.client(client_id).msal_credential(),
        oidc_authority=idp.issuer,
        http_client=idp.http_session(),
    )


# --- discovery -------------------------------------------------------------


def test_discovery_document(idp: Idp) -> None:
    doc = idp.http_session().get(idp.discovery_url, timeout=10).json()
    assert idp.issuer.startswith("https://localhost:")
    assert idp.issuer.endswith("/tenant1")
    assert doc["issuer"] == idp.issuer
    assert doc["token_endpoint"] == idp.token_endpoint
    assert doc["jwks_uri"] == idp.jwks_uri
    assert "client_credentials" in doc["grant_types_supported"]
    assert {"client_secret_basic", "client_secret_post", "private_key_jwt"} <= set(
        doc["token_endpoint_auth_methods_supported"]
    )
    assert DEFAULT_SCOPE in doc["scopes_supported"]
    keys = idp.http_session().get(idp.jwks_uri, timeout=10).json()["keys"]
    assert keys and all(k["kty"] == "RSA" and "d" not in k for k in keys)


def test_reachable_via_127_0_0_1_with_issuer_urls(idp: Idp) -> None:
    url = f"https://127.0.0.1:{idp.port}/tenant1/.well-known/openid-configuration"
    doc = idp.http_session().get(url, timeout=10).json()
    assert doc["issuer"] == idp.issuer
    assert doc["token_endpoint"] == idp.token_endpoint


# --- client_credentials ----------------------------------------------------


@pytest.mark.parametrize("client_id", ["webid-secret", "webid-post", "webid-cert"])
def test_client_credentials_returns_verifiable_jwt(idp: Idp, client_id: str) -> None:
    token = _token(idp, client_id)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    claims = verify_token(idp, token, "sts.amazonaws.com")
    assert claims["iss"] == idp.issuer
    assert claims["aud"] == "sts.amazonaws.com"
    assert claims["sub"] == client_id
    assert claims["client_id"] == client_id
    assert claims["scope"] == DEFAULT_SCOPE
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - time.time()) < 10


def test_private_key_jwt_assertion_built_with_pyjwt(idp: Idp) -> None:
    client = idp.client("webid-cert")
    assert client.key_file is not None
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": client.client_id,
            "sub": client.client_id,
            "aud": idp.token_endpoint,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 60,
        },
        client.key_file.read_bytes(),
        algorithm="RS256",
    )
    data = {
        "grant_type": "client_credentials",
        "scope": DEFAULT_SCOPE,
        "client_id": client.client_id,
        "client_assertion_type": (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ),
        "client_assertion": assertion,
    }
    session = idp.http_session()
    first = session.post(idp.token_endpoint, data=data, timeout=10)
    assert first.status_code == 200, first.text
    verify_token(idp, first.json()["access_token"])
    replay = session.post(idp.token_endpoint, data=data, timeout=10)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"


def test_private_key_jwt_with_foreign_key_is_rejected(idp: Idp, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": "webid-cert",
            "sub": "webid-cert",
            "aud": idp.token_endpoint,
            "jti": str(uuid.uuid4()),
            "exp": now + 60,
        },
        pem,
        algorithm="RS256",
    )
    response = idp.http_session().post(
        idp.token_endpoint,
        data={
            "grant_type": "client_credentials",
            "client_id": "webid-cert",
            "client_assertion_type": (
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            ),
            "client_assertion": assertion,
        },
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("client_id", ["webid-secret", "webid-post"])
def test_wrong_secret_is_401_invalid_client(idp: Idp, client_id: str) -> None:
    response = idp.request_token(client_id, secret="not-the-secret")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_unknown_client_is_401(idp: Idp) -> None:
    response = idp.http_session().post(
        idp.token_endpoint,
        data={"grant_type": "client_credentials"},
        auth=("nobody", "x"),
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_secret_must_travel_the_registered_way(idp: Idp) -> None:
    session = idp.http_session()
    basic = idp.client("webid-secret")
    post = idp.client("webid-post")
    assert basic.secret and post.secret
    in_body = session.post(
        idp.token_endpoint,
        data={
            "grant_type": "client_credentials",
            "client_id": basic.client_id,
            "client_secret": basic.secret,
        },
        timeout=10,
    )
    in_header = session.post(
        idp.token_endpoint,
        data={"grant_type": "client_credentials"},
        auth=(post.client_id, post.secret),
        timeout=10,
    )
    for response in (in_body, in_header):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


def test_short_ttl_client(idp: Idp) -> None:
    response = idp.request_token("webid-short")
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == SHORT_TTL
    claims = verify_token(idp, response.json()["access_token"])
    assert claims["exp"] - claims["iat"] == SHORT_TTL


# --- scope / resource ------------------------------------------------------


def test_without_scope_token_has_no_scope_claim(idp: Idp) -> None:
    claims = verify_token(idp, _token(idp, "webid-secret", scope=None))
    assert "scope" not in claims
    assert claims["aud"] == idp.audience


def test_reserved_oidc_scopes_are_tolerated_and_dropped(idp: Idp) -> None:
    scope = f"{DEFAULT_SCOPE} openid profile offline_access"
    claims = verify_token(idp, _token(idp, "webid-secret", scope=scope))
    assert claims["scope"] == DEFAULT_SCOPE


def test_scope_not_allowed_for_client_is_invalid_scope(idp: Idp) -> None:
    response = idp.request_token("webid-secret", scope="api://someone-else/.default")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_explicit_resource_selects_audience(idp: Idp) -> None:
    token = _token(idp, "webid-secret", resource=OTHER_RESOURCE)
    claims = verify_token(idp, token, OTHER_AUDIENCE)
    assert claims["aud"] == OTHER_AUDIENCE
    with pytest.raises(jwt.InvalidAudienceError):
        verify_token(idp, token, "sts.amazonaws.com")


def test_unknown_resource_is_invalid_target(idp: Idp) -> None:
    response = idp.request_token("webid-secret", resource="urn:nope")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


# --- msal ------------------------------------------------------------------


def test_msal_with_client_secret(idp: Idp) -> None:
    app = _msal_app(idp, "webid-post")
    result = app.acquire_token_for_client(scopes=[DEFAULT_SCOPE])
    assert "access_token" in result, result
    claims = verify_token(idp, result["access_token"])
    assert claims["sub"] == "webid-post"
    assert claims["scope"] == DEFAULT_SCOPE
    # msal 1.39 treats a cached token with under 5 minutes left as expired,
    # so with the default 300 s TTL every call goes back to the IdP.
    again = app.acquire_token_for_client(scopes=[DEFAULT_SCOPE])
    assert again["token_source"] == "identity_provider"
    assert again["access_token"] != result["access_token"]


def test_msal_with_certificate(idp: Idp) -> None:
    result = _msal_app(idp, "webid-cert").acquire_token_for_client(
        scopes=[DEFAULT_SCOPE]
    )
    assert "access_token" in result, result
    claims = verify_token(idp, result["access_token"])
    assert claims["sub"] == "webid-cert"


def test_msal_certificate_without_thumbprint_uses_ps256(idp: Idp) -> None:
    client = idp.client("webid-cert")
    assert client.key_file and client.cert_file
    app = msal.ConfidentialClientApplication(
        client.client_id,
        client_credential={
            "private_key": client.key_file.read_text(),
            "public_certificate": client.cert_file.read_text(),
        },
        oidc_authority=idp.issuer,
        http_client=idp.http_session(),
    )
    result = app.acquire_token_for_client(scopes=[DEFAULT_SCOPE])
    assert "access_token" in result, result


class _RecordingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []

    def post(self, url: str | bytes, data: Any = None, **kw: Any) -> Any:  # type: ignore[override]
        self.bodies.append(dict(data or {}))
        return super().post(url, data=data, **kw)


def test_what_msal_sends_for_client_credentials(idp: Idp) -> None:
    """msal 1.39: scope exactly as given, secret in the body (client_secret_post).

    So with the strict IdP msal only works with a client_secret_post client.
    """
    session = _RecordingSession()
    session.trust_env = False
    session.verify = str(idp.ca_file)
    client = idp.client("webid-secret")
    app = msal.ConfidentialClientApplication(
        client.client_id,
        client_credential=client.secret,
        oidc_authority=idp.issuer,
        http_client=session,
    )
    result = app.acquire_token_for_client(scopes=[DEFAULT_SCOPE])
    (body,) = session.bodies
    assert body["scope"] == DEFAULT_SCOPE
    assert body["client_secret"] == client.secret
    assert result.get("error") == "invalid_client"


# --- CA handling -----------------------------------------------------------


@pytest.mark.parametrize("bundle", ["/etc/ssl/certs/ca-certificates.crt", "/nope"])
def test_env_ca_variables_do_not_matter(
    idp: Idp, monkeypatch: pytest.MonkeyPatch, bundle: str
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, bundle)
    token = _token(idp, "webid-secret")
    fresh = jwt.PyJWKClient(idp.jwks_uri, ssl_context=idp.ssl_context())
    key = fresh.get_signing_key_from_jwt(token)
    jwt.decode(token, key.key, algorithms=["RS256"], audience=idp.audience)


def test_default_trust_does_not_know_the_fixture_ca(idp: Idp) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(idp.discovery_url, timeout=10)


# --- start-up helpers ------------------------------------------------------


def test_ensure_node_modules_is_fast_noop() -> None:
    started = time.monotonic()
    ensure_node_modules()
    assert time.monotonic() - started < 0.5


def test_busy_port_is_reported(idp: Idp, tmp_path: Path) -> None:
    with pytest.raises(IdpError, match="not free"):
        start_idp(tmp_path, port=idp.port, timeout=15)


def test_start_failure_reports_node_stderr(tmp_path: Path) -> None:
    bad_cert = tmp_path / "bad.pem"
    bad_cert.write_text("not a certificate")
    client = IdpClient(
        "broken", AUTH_PRIVATE_KEY_JWT, cert_file=bad_cert, key_file=bad_cert
    )
    with pytest.raises(IdpError, match="exited with status .* node stderr"):
        start_idp(tmp_path, clients=[client], timeout=15)


def test_custom_clients_and_files(tmp_path: Path) -> None:
    clients = [
        IdpClient("c-basic", AUTH_BASIC, secret="fixed-secret", scopes=["s1"]),
        IdpClient("c-post", AUTH_POST, ttl=7, strict_auth_method=False),
        IdpClient("c-cert", AUTH_PRIVATE_KEY_JWT),
    ]
    with start_idp(tmp_path, clients=clients, audience="my-aud", ttl=60) as idp:
        assert (tmp_path / "ca.pem").is_file()
        cert = idp.client("c-cert")
        assert cert.cert_file and cert.key_file and cert.key_file.is_file()
        assert oct(cert.key_file.stat().st_mode & 0o777) == "0o600"
        claims = verify_token(idp, _token(idp, "c-basic", scope="s1"))
        assert claims["aud"] == "my-aud"
        assert claims["exp"] - claims["iat"] == 60
        claims = verify_token(idp, _token(idp, "c-post", scope=None))
        assert claims["exp"] - claims["iat"] == 7
        verify_token(idp, _token(idp, "c-cert", scope=None))
        process = idp.process
    assert process is not None and process.returncode == 0


# --- STS stand-in ----------------------------------------------------------


def test_assume_role_with_idp_token(idp: Idp, sts: Sts, role_arn: str) -> None:
    token = _token(idp, "webid-secret")
    response = assume_role_with_web_identity(sts, role_arn, token, "devenv-test")
    creds = response["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assumed = "arn:aws:sts::123456789012:assumed-role/webid-test/devenv-test"
    assert response["AssumedRoleUser"]["Arn"] == assumed
    identity = sts.client(
        "sts",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ).get_caller_identity()
    assert identity["Arn"] == assumed


def test_plain_moto_does_not_validate_tokens(sts: Sts) -> None:
    response = assume_role_with_web_identity(
        sts, "arn:aws:iam::123456789012:role/does-not-exist", "not-a-jwt"
    )
    assert "Credentials" in response


def test_checked_sts_rejects_bad_tokens(
    idp: Idp, checked_sts: Sts, role_arn: str
) -> None:
    good = _token(idp, "webid-secret")
    assert assume_role_with_web_identity(checked_sts, role_arn, good)["Credentials"]
    other_aud = _token(idp, "webid-secret", resource=OTHER_RESOURCE)
    for bad in ("not-a-jwt", other_aud):
        with pytest.raises(botocore.exceptions.ClientError) as info:
            assume_role_with_web_identity(checked_sts, role_arn, bad)
        assert info.value.response["Error"]["Code"] == "InvalidIdentityToken"


def test_checked_sts_rejects_expired_token(
    idp: Idp, checked_sts: Sts, role_arn: str
) -> None:
    token = _token(idp, "webid-short")
    assert assume_role_with_web_identity(checked_sts, role_arn, token)["Credentials"]
    exp = verify_token(idp, token)["exp"]
    time.sleep(max(0.0, exp - time.time()) + 1.1)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        assume_role_with_web_identity(checked_sts, role_arn, token)
    assert info.value.response["Error"]["Code"] == "ExpiredTokenException"


def test_aws_sdk_reads_token_file(
    idp: Idp,
    checked_sts: Sts,
    role_arn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The contract webid-agent serves: a token file plus the standard env vars."""
    token_file = tmp_path / "token"
    token_file.write_text(_token(idp, "webid-secret"))
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ROLE_ARN", role_arn)
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "sdk")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", checked_sts.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-creds"))
    session = botocore.session.Session()
    identity = session.create_client("sts").get_caller_identity()
    assert identity["Arn"].endswith(":assumed-role/webid-test/sdk")
    credentials = session.get_credentials()
    assert credentials is not None
    assert credentials.method == "assume-role-with-web-identity"


# --- python -m devenv up ---------------------------------------------------


def test_devenv_up_writes_env_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env_file = state / "env.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devenv", "up", "--dir", str(state)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "devenv up did not get ready"
            time.sleep(0.1)
        env = json.loads(env_file.read_text())
        secret_file = Path(env["clients"]["webid-post"]["secret_file"])
        assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
        session = requests.Session()
        session.trust_env = False
        session.verify = env["ca_file"]
        response = session.post(
            env["token_endpoint"],
            data={
                "grant_type": "client_credentials",
                "client_id": "webid-post",
                "client_secret": secret_file.read_text(),
                "scope": env["scope"],
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert env["role_arn"].startswith("arn:aws:iam::")
        assert env["sts_endpoint"].startswith("http://127.0.0.1:")
        for text in json.dumps(env), env_file.read_text():
            assert secret_file.read_text() not in text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert "ready" in out
    assert not env_file.exists()
