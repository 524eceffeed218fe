"""Secrets and tokens never reach logs, errors or metrics, even at debug level."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.logsetup import RedactingFilter, redact, register_secret
from tests.engine.conftest import CLIENT_ID, CLIENT_SECRET, IdpDouble
from tests.engine.conftest import status as answer
from tests.engine.test_cli import webid


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_debug_run_through_success_and_failures_leaks_nothing(
    idp_double: IdpDouble, secret_file: Path, tmp_path: Path, log_format: str
) -> None:
    idp_double.then(
        answer(500, "upstream failed"),
        answer(429, "", **{"Retry-After": "0"}),
        lambda request: idp_double.token_response(aud="wrong-audience"),
    )
    args = [
        "--log-level",
        "debug",
        "--log-format",
        log_format,
        "token",
        "--authority",
        idp_double.issuer,
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        str(secret_file),
        "--ca-bundle",
        str(idp_double.ca_file),
        "--audience",
        "sts.amazonaws.com",
        "--token-file",
        str(tmp_path / "token"),
    ]

    rejected = webid(*args)  # 500 and 429 are retried, the bad audience ends it
    accepted = webid(*args)  # a good token this time

    assert rejected.returncode == 1
    assert "does not include 'sts.amazonaws.com'" in rejected.stderr
    assert accepted.returncode == 0, accepted.stderr
    output = "".join(r.stdout + r.stderr for r in (rejected, accepted))
    assert "retrying" in output  # the failure paths really were taken at debug
    assert CLIENT_SECRET not in output
    for token in idp_double.issued:
        assert token not in output
        assert token.split(".")[1] not in output  # not even the claims part
    assert (tmp_path / "token").read_text() == idp_double.issued[-1]


def test_filter_masks_jwts_registered_secrets_and_tracebacks() -> None:
    register_secret("another-secret-value-42")
    record = logging.LogRecord(
        "t",
        logging.ERROR,
        __file__,
        1,
        "sent %s with %s",
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "another-secret-value-42"),
        None,
    )
    try:
        raise ValueError("boom another-secret-value-42")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()

    RedactingFilter().filter(record)

    assert record.getMessage() == "sent [redacted] with [redacted]"
    assert record.exc_text is not None
    assert "another-secret-value-42" not in record.exc_text
    assert "boom [redacted]" in record.exc_text


def test_short_values_are_not_registered() -> None:
    register_secret("abc")

    assert redact("abc def") == "abc def"


@pytest.mark.parametrize("secret", ['p@ss w+rd/"x&y=z-long', "plain-secret-value"])
def test_encoded_forms_of_a_secret_are_masked(secret: str) -> None:
    from urllib.parse import quote, quote_plus

    register_secret(secret)

    for form in (secret, quote(secret, safe=""), quote_plus(secret)):
        assert redact(f"echo: client_secret={form}&x=1") == (
            "echo: client_secret=[redacted]&x=1"
        )
