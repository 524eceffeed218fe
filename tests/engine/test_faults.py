"""The engine against a misbehaving IdP: the last valid token always survives."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from agent.config import Settings
from agent.engine import TokenEngine
from agent.errors import IdpError, IdpUnavailable, TokenRejected
from tests.engine.conftest import AUDIENCE, CLIENT_ID, CLIENT_SECRET, IdpDouble, slow
from tests.engine.conftest import status as answer


def metric(engine: TokenEngine, name: str, **labels: str) -> float:
    value = engine.metrics.registry.get_sample_value(name, labels or None)
    return value if value is not None else float("nan")


@pytest.fixture
def engine(make_settings: Callable[..., Settings]) -> TokenEngine:
    """An engine with a valid first token already written."""
    engine = TokenEngine(make_settings())
    engine.refresh()
    return engine


FAULTS = [
    pytest.param(
        answer(429, "slow down", **{"Retry-After": "7"}),
        IdpUnavailable,
        "HTTP 429",
        "unavailable",
        id="429-retry-after",
    ),
    pytest.param(
        answer(500, "boom"), IdpUnavailable, "HTTP 500", "unavailable", id="500"
    ),
    pytest.param(answer(503, ""), IdpUnavailable, "HTTP 503", "unavailable", id="503"),
    pytest.param(
        answer(200, "{not json", **{"Content-Type": "application/json"}),
        IdpUnavailable,
        "not valid JSON",
        "unavailable",
        id="invalid-json",
    ),
    pytest.param(
        answer(200, '{"token_type": "Bearer"}'),
        IdpError,
        "no access_token",
        "idp_error",
        id="no-access-token",
    ),
    pytest.param(
        answer(401, '{"error": "invalid_client"}'),
        IdpError,
        "invalid_client",
        "idp_error",
        id="401-invalid-client",
    ),
    pytest.param(slow(3), IdpUnavailable, "timed out", "unavailable", id="timeout"),
]


@pytest.mark.parametrize(("step", "error", "text", "result"), FAULTS)
def test_fault_keeps_last_token(
    engine: TokenEngine,
    idp_double: IdpDouble,
    step: Callable[..., object],
    error: type[Exception],
    text: str,
    result: str,
) -> None:
    assert engine.settings.token_file is not None
    before = engine.settings.token_file.read_text()
    idp_double.then(step)  # type: ignore[arg-type]

    with pytest.raises(error, match=text):
        engine.refresh()

    assert engine.settings.token_file.read_text() == before
    assert engine.is_ready()
    assert metric(engine, "webid_token_refreshes_total", result=result) == 1
    assert metric(engine, "webid_token_refreshes_total", result="success") == 1
    assert engine.status().consecutive_failures == 1


CLAIM_FAULTS = [
    pytest.param({"exp": None}, "no numeric 'exp'", id="no-exp"),
    pytest.param({"aud": "someone-else"}, "does not include", id="wrong-aud"),
    pytest.param(
        {"iss": "https://evil.example/t"}, "is not the expected", id="wrong-iss"
    ),
    pytest.param(
        {"iss": "https://sts.windows.net/abc/"}, "Entra v1 token", id="entra-v1-issuer"
    ),
    pytest.param(
        {"exp": int(time.time()) + 2}, "less than the minimum", id="too-short"
    ),
]


@pytest.mark.parametrize(("claims", "text"), CLAIM_FAULTS)
def test_bad_claims_are_rejected(
    engine: TokenEngine, idp_double: IdpDouble, claims: dict[str, object], text: str
) -> None:
    assert engine.settings.token_file is not None
    before = engine.settings.token_file.read_text()
    idp_double.then(lambda request: idp_double.token_response(**claims))

    with pytest.raises(TokenRejected, match=text):
        engine.refresh()

    assert engine.settings.token_file.read_text() == before
    assert metric(engine, "webid_token_refreshes_total", result="rejected") == 1


def test_not_a_jwt_is_rejected(
    make_settings: Callable[..., Settings], idp_double: IdpDouble
) -> None:
    idp_double.then(answer(200, '{"access_token": "opaque-value-123"}'))
    engine = TokenEngine(make_settings())

    with pytest.raises(TokenRejected, match="not a valid JWT"):
        engine.refresh()
    assert engine.settings.token_file is not None
    assert not engine.settings.token_file.exists()
    assert not engine.is_ready()


def test_retry_after_is_honoured(
    make_settings: Callable[..., Settings], idp_double: IdpDouble
) -> None:
    idp_double.then(answer(429, "", **{"Retry-After": "1"}))
    engine = TokenEngine(make_settings())

    engine.refresh_with_retry(stop=threading.Event(), deadline=time.time() + 10)

    (first, *_), (second, *_) = idp_double.requests
    assert second - first >= 0.95  # backoff alone would wait at most 0.2 s


def test_transient_failures_retried_until_success(
    make_settings: Callable[..., Settings], idp_double: IdpDouble
) -> None:
    idp_double.then(answer(500), answer(502), answer(503))
    engine = TokenEngine(make_settings())

    token = engine.refresh_with_retry(stop=threading.Event(), deadline=time.time() + 10)

    assert len(idp_double.requests) == 4
    assert token.value == idp_double.issued[-1]
    assert metric(engine, "webid_token_refreshes_total", result="unavailable") == 3


def test_deadline_gives_up_with_last_error(
    make_settings: Callable[..., Settings], idp_double: IdpDouble
) -> None:
    idp_double.then(*[answer(500)] * 1000)
    engine = TokenEngine(make_settings())

    with pytest.raises(IdpUnavailable, match="HTTP 500"):
        engine.refresh_with_retry(stop=threading.Event(), deadline=time.time() + 0.6)
    assert 2 <= len(idp_double.requests) < 100


def test_non_transient_error_is_not_retried_before_first_token(
    make_settings: Callable[..., Settings], idp_double: IdpDouble
) -> None:
    idp_double.then(answer(401, '{"error": "invalid_client"}'))
    engine = TokenEngine(make_settings())

    with pytest.raises(IdpError, match="check the client id"):
        engine.run(threading.Event())
    assert len(idp_double.requests) == 1


def test_loop_keeps_token_through_outage_and_recovers(
    make_settings: Callable[..., Settings], idp_double: IdpDouble
) -> None:
    idp_double.lifetime = 8
    engine = TokenEngine(make_settings(min_remaining=2.0, refresh_at=0.1))
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,))
    thread.start()
    try:
        deadline = time.time() + 10
        while engine.token is None and time.time() < deadline:
            time.sleep(0.05)
        first = idp_double.issued[0]
        idp_double.then(*[answer(503)] * 5)

        # wait until the outage has been served and a new token came after it
        while len(idp_double.requests) < 7 and time.time() < deadline:
            assert engine.is_ready()
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)

    assert not thread.is_alive()
    assert engine.settings.token_file is not None
    assert engine.settings.token_file.read_text() == idp_double.issued[-1] != first
    assert metric(engine, "webid_token_refreshes_total", result="unavailable") == 5


def test_metrics_show_expiry_and_never_the_token(engine: TokenEngine) -> None:
    token = engine.token
    assert token is not None

    text = generate_latest(engine.metrics.registry).decode()

    assert f"webid_token_expiry_timestamp_seconds {token.expires_at:.1f}" in text or (
        metric(engine, "webid_token_expiry_timestamp_seconds") == token.expires_at
    )
    assert "webid_token_ready 1.0" in text
    assert token.value not in text
    assert CLIENT_SECRET not in text


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_auth_methods(
    make_settings: Callable[..., Settings], idp_double: IdpDouble, method: str
) -> None:
    TokenEngine(make_settings(auth_method=method)).refresh()

    _, form, headers = idp_double.requests[0]
    assert form["grant_type"] == "client_credentials"
    if method == "client_secret_basic":
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        assert headers["Authorization"] == f"Basic {expected}"
        assert "client_secret" not in form
    else:
        assert form["client_id"] == CLIENT_ID
        assert form["client_secret"] == CLIENT_SECRET
        assert "Authorization" not in headers


def test_scope_and_extra_params_are_sent(
    make_settings: Callable[..., Settings], idp_double: IdpDouble
) -> None:
    settings = make_settings(
        scope="api://webid/.default", extra_params=(("resource", AUDIENCE),)
    )
    TokenEngine(settings).refresh()

    _, form, _ = idp_double.requests[0]
    assert form["scope"] == "api://webid/.default"
    assert form["resource"] == AUDIENCE


def test_token_file_mode(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    engine = TokenEngine(make_settings(file_mode=0o640))
    engine.refresh()

    assert engine.settings.token_file is not None
    assert engine.settings.token_file.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda token: token + "\nINJECT", id="newline-in-signature"),
        pytest.param(lambda token: token.replace(".", " .", 1), id="space"),
        pytest.param(lambda token: token + ".extra", id="four-parts"),
    ],
)
def test_malformed_token_is_never_written(
    engine: TokenEngine, idp_double: IdpDouble, tamper: Callable[[str], str]
) -> None:
    assert engine.settings.token_file is not None
    before = engine.settings.token_file.read_text()
    bad = tamper(idp_double.make_token())
    idp_double.then(
        lambda request: answer(200, json.dumps({"access_token": bad}))(request)
    )

    with pytest.raises(TokenRejected, match="not a valid JWT"):
        engine.refresh()
    assert engine.settings.token_file.read_text() == before


def test_basic_auth_echoed_by_the_idp_is_redacted(
    make_settings: Callable[..., Settings], idp_double: IdpDouble
) -> None:
    echoed = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    body = json.dumps(
        {"error": "invalid_client", "error_description": f"bad header Basic {echoed}"}
    )
    idp_double.then(answer(401, body))
    engine = TokenEngine(make_settings())

    with pytest.raises(IdpError) as info:
        engine.refresh()
    from agent.logsetup import redact

    assert echoed not in redact(info.value.format())


def test_a_redirected_token_request_is_not_followed(
    make_settings: Callable[..., Settings], idp_double: IdpDouble
) -> None:
    elsewhere = idp_double.server.url_for("/elsewhere")
    idp_double.then(answer(307, "", Location=elsewhere))
    engine = TokenEngine(make_settings(auth_method="client_secret_post"))

    with pytest.raises(IdpError, match="HTTP 307"):
        engine.refresh()
    assert [form for _, form, _ in idp_double.requests] == [
        idp_double.requests[0][1]
    ]  # one request only: the secret went nowhere else


def test_readiness_never_shows_a_token_from_an_error(
    engine: TokenEngine, idp_double: IdpDouble
) -> None:
    token = idp_double.make_token()
    idp_double.then(answer(400, json.dumps({"error": f"bad token {token}"})))

    with pytest.raises(IdpError):
        engine.refresh()
    assert engine.status().last_error is not None
    assert token not in engine.status().last_error
