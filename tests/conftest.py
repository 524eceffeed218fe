"""Fixtures shared by every test folder.

The real parts every feature needs are started here, once per session and
only when a test asks for them: the local OpenID provider (node
``oidc-provider`` over TLS) and the STS stand-in (moto in server mode). The
autouse fixture keeps the process environment from leaking settings into tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from devenv.idp import Idp, ensure_node_modules, start_idp
from devenv.sts import Sts, create_role, idp_token_validator, start_sts


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


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    """The local IdP with the default clients (basic, post, cert, short TTL)."""
    ensure_node_modules()
    with start_idp(tmp_path_factory.mktemp("idp")) as running:
        yield running


@pytest.fixture(scope="session")
def sts() -> Iterator[Sts]:
    """Plain moto STS/IAM: accepts any web identity token (moto's behaviour)."""
    with start_sts() as running:
        yield running


@pytest.fixture(scope="session")
def checked_sts(idp: Idp) -> Iterator[Sts]:
    """moto STS/IAM that first verifies web identity tokens against ``idp``."""
    with start_sts(token_validator=idp_token_validator(idp)) as running:
        yield running


@pytest.fixture(scope="session")
def role_arn(sts: Sts, idp: Idp) -> str:
    """A role trusting the IdP, created in moto (shared by both STS servers)."""
    return create_role(sts, "webid-test", issuer=idp.issuer, audience=idp.audience)


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """A docker SDK client, or a skip when no Docker engine answers."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine: {exc}")
    return client


@pytest.fixture(scope="session")
def agent_image(docker_client: Any) -> str:
    """The agent image built from this checkout's Dockerfile."""
    from devenv.images import ensure_agent_image

    return ensure_agent_image()


@pytest.fixture(scope="session")
def app_image(docker_client: Any) -> str:
    """An app image whose default command prints the assumed role via boto3."""
    from devenv.images import ensure_app_image

    return ensure_app_image()
