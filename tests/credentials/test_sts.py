"""``agent.aws.sts``: the AssumeRoleWithWebIdentity call and its explanations."""

from __future__ import annotations

import email.utils
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from agent.aws.sts import (
    Credentials,
    StsRefused,
    assume_role_with_web_identity,
    format_expiration,
    parse_expiration,
)
from agent.errors import ConfigError, StsError

from .conftest import ROLE_ARN, CountingSts, fake_jwt, sts_error_xml

pytestmark = pytest.mark.usefixtures("aws_env")


def test_success_returns_role_credentials(counting_sts: CountingSts) -> None:
    before = time.time()
    creds = assume_role_with_web_identity(
        fake_jwt(),
        ROLE_ARN,
        session_name="unit-session",
        endpoint_url=counting_sts.endpoint_url,
        duration=1800,
    )
    assert creds.access_key_id and creds.secret_access_key and creds.session_token
    assert creds.assumed_role_arn is not None
    assert creds.assumed_role_arn.endswith("assumed-role/webid-app/unit-session")
    assert 1700 < creds.expiration - before < 1900
    assert counting_sts.calls() == 1
    # the secret parts never show in repr
    assert creds.secret_access_key not in repr(creds)
    assert creds.session_token not in repr(creds)


def test_endpoint_from_environment(
    counting_sts: CountingSts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", counting_sts.endpoint_url)
    assume_role_with_web_identity(fake_jwt(), ROLE_ARN)
    assert counting_sts.calls() == 1


REFUSALS = [
    (
        "InvalidIdentityToken",
        "Incorrect token audience",
        ["InvalidIdentityToken", "audience (sts.amazonaws.com)", "client id list"],
        False,
    ),
    (
        "InvalidIdentityToken",
        "No OpenIDConnect provider found in your account for https://idp.test/t",
        ["no IAM OIDC provider for the issuer https://idp.test/tenant1"],
        False,
    ),
    (
        "InvalidIdentityToken",
        "Couldn't retrieve verification key from your identity provider",
        ["signing keys of https://idp.test/tenant1", "jwks_uri"],
        False,
    ),
    (
        "ExpiredTokenException",
        "Token expired: current date/time 1 must be before the expiration date/time 0",
        ["had expired", "clock is behind"],
        False,
    ),
    (
        "AccessDenied",
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        ["trust policy of " + ROLE_ARN, "subject client-1", ":aud/:sub"],
        False,
    ),
    (
        "IDPCommunicationError",
        "Couldn't reach the IdP",
        ["could not reach https://idp.test/tenant1"],
        True,
    ),
    (
        "ValidationError",
        "The requested DurationSeconds exceeds the MaxSessionDuration set for"
        " this role",
        ["--duration exceeds the role's maximum session"],
        False,
    ),
]


@pytest.mark.parametrize(("code", "message", "expected", "retryable"), REFUSALS)
def test_refusals_are_explained(
    httpserver: HTTPServer,
    code: str,
    message: str,
    expected: list[str],
    retryable: bool,
) -> None:
    httpserver.expect_request("/", method="POST").respond_with_data(
        sts_error_xml(code, message), status=400, content_type="text/xml"
    )
    token = fake_jwt()
    with pytest.raises(StsRefused) as info:
        assume_role_with_web_identity(
            token, ROLE_ARN, endpoint_url=httpserver.url_for("/")
        )
    error = info.value
    assert error.code == code
    assert error.retryable is retryable
    assert error.where == httpserver.url_for("/")
    text = error.format()
    assert text.startswith(httpserver.url_for("/"))
    assert message in text
    for part in expected:
        assert part in text
    assert token not in text
    assert "\n" not in text


@pytest.mark.parametrize(("offset", "word"), [(-3600, "ahead of"), (3600, "behind")])
def test_clock_skew_is_named(offset: int, word: str) -> None:
    class SkewedSts(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            self.rfile.read(int(self.headers["Content-Length"]))
            body = sts_error_xml("InvalidIdentityToken", "Token used before issued")
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def date_time_string(self, timestamp: float | None = None) -> str:
            return email.utils.formatdate(time.time() + offset, usegmt=True)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), SkewedSts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(StsRefused) as info:
            assume_role_with_web_identity(
                fake_jwt(),
                ROLE_ARN,
                endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            )
    finally:
        server.shutdown()
        server.server_close()
    text = info.value.format()
    assert "clock is ahead" in text
    assert re.search(rf"clock is 3[56]\d\ds {word} STS", text), text


def test_unreachable_endpoint_names_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(StsError) as info:
        assume_role_with_web_identity(fake_jwt(), ROLE_ARN, endpoint_url=url, timeout=2)
    assert not isinstance(info.value, StsRefused)
    assert info.value.where == url
    assert "cannot reach STS" in info.value.message


@given(st.floats(min_value=0, max_value=4e9).map(int))
def test_expiration_format_round_trips(timestamp: int) -> None:
    text = format_expiration(timestamp)
    assert text.endswith("Z") and "T" in text
    assert parse_expiration(text) == timestamp


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(),
        st.lists(st.text()),
        st.dictionaries(
            st.sampled_from(
                ["access_key_id", "secret_access_key", "session_token", "expiration"]
            ),
            st.one_of(st.none(), st.text(), st.integers(), st.booleans()),
        ),
    )
)
def test_malformed_credentials_are_refused(data: object) -> None:
    # the strategy can draw a complete, well-typed mapping: that one is valid
    valid = (
        isinstance(data, dict)
        and all(
            isinstance(data.get(k), str) and data[k]
            for k in ("access_key_id", "secret_access_key", "session_token")
        )
        and type(data.get("expiration")) in (int, float)
    )
    assume(not valid)

    with pytest.raises(ValueError):
        Credentials.from_dict(data)


def test_credentials_json_shapes() -> None:
    creds = Credentials("AKIA1", "secret", "session", 0.0, "arn:assumed")
    assert creds.credential_process() == {
        "Version": 1,
        "AccessKeyId": "AKIA1",
        "SecretAccessKey": "secret",
        "SessionToken": "session",
        "Expiration": "1970-01-01T00:00:00Z",
    }
    assert creds.container() == {
        "AccessKeyId": "AKIA1",
        "SecretAccessKey": "secret",
        "Token": "session",
        "Expiration": "1970-01-01T00:00:00Z",
        "RoleArn": "arn:assumed",
    }
    assert Credentials.from_dict(creds.to_dict()) == creds


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [("us east", None), (None, "http://127.0.0.1:99999")],
)
def test_malformed_region_or_endpoint_is_bad_input(
    region: str | None, endpoint: str | None
) -> None:
    with pytest.raises(ConfigError) as info:
        assume_role_with_web_identity(
            "header.payload.signature",
            "arn:aws:iam::111122223333:role/x",
            region=region or "us-east-1",
            endpoint_url=endpoint,
        )
    assert info.value.exit_code == 2
