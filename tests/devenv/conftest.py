"""Fixtures for the local dev environment: a real IdP and an STS stand-in.

All fixtures are session scoped: one node ``oidc-provider`` process and one
moto server serve every test in this folder. Files (CA, certificates,
config, node log) go to a pytest temporary directory.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # devenv/ is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from devenv.idp import Idp, ensure_node_modules, start_idp  # noqa: E402
from devenv.sts import Sts, create_role, idp_token_validator, start_sts  # noqa: E402


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
