"""Fixtures shared by every test folder.

Real parts (the local IdP, the STS stand-in, Docker images) are started by
fixtures in the folders that need them; this file only keeps the process
environment from leaking settings into tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _clean_webid_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Drop WEBID_* and AWS credential variables so only a test's own settings count.

    CA bundle variables (REQUESTS_CA_BUNDLE, SSL_CERT_FILE) are left as the
    machine sets them: code under test must win over them with its own CA.
    """
    for name in list(os.environ):
        if name.startswith("WEBID_") or name in {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        }:
            monkeypatch.delenv(name, raising=False)
    yield
