"""The injected Compose file really runs: docker-compose, the agent image, boto3.

The IdP and the STS stand-in listen on this machine's loopback, so the test
puts the agent services on the host network (with a remote IdP they need no
network setting); everything else is what ``inject compose`` wrote.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import DoubleQuotedScalarString as quoted

from devenv.idp import Idp

pytestmark = pytest.mark.docker


@pytest.fixture
def compose_binary() -> str:
    """Compose v1 from Debian (scripts/setup.sh installs it)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (scripts/setup.sh installs it)")
    return binary


def test_injected_stack_assumes_the_role(
    idp: Idp,
    checked_sts: Any,
    role_arn: str,
    agent_image: str,
    app_image: str,
    compose_binary: str,
    tmp_path: Path,
) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text(idp.client("webid-secret").secret or "")
    secret.chmod(0o600)  # private: only the agent's user may read it
    source = tmp_path / "compose.yml"
    source.write_text(
        "services:\n"
        "  app:\n"
        f"    image: {app_image}\n"
        "    network_mode: host\n"
        "    environment:\n"
        f"      AWS_ENDPOINT_URL_STS: {checked_sts.endpoint_url}\n"
        "      AWS_DEFAULT_REGION: us-east-1\n"
        "    x-webid:\n"
        f"      role-arn: {role_arn}\n"
    )
    injected = subprocess.run(  # noqa: S603
        [
            sys.executable, "-m", "agent", "inject", "compose", str(source),
            "--authority", idp.issuer, "--client-id", "webid-secret",
            "--client-secret-file", str(secret), "--ca-bundle", str(idp.ca_file),
            "--audience", idp.audience, "--image", agent_image,
        ],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert injected.returncode == 0, injected.stderr
    yaml = YAML()
    yaml.preserve_quotes = True
    stack = yaml.load(injected.stdout)
    for name in ("webid-token", "webid-agent"):
        stack["services"][name]["network_mode"] = "host"
        stack["services"][name]["environment"]["WEBID_LISTEN"] = quoted("off")
    with (tmp_path / "stack.yml").open("w") as handle:
        yaml.dump(stack, handle)
    compose = [compose_binary, "-f", str(tmp_path / "stack.yml"), "-p", tmp_path.name]

    try:
        result = subprocess.run(  # noqa: S603
            [*compose, "run", "--rm", "app"],
            capture_output=True, text=True, check=False, timeout=240,
        )  # fmt: skip
    finally:
        subprocess.run(  # noqa: S603
            [*compose, "down", "-v"], capture_output=True, check=False, timeout=120
        )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ASSUMED arn:aws:sts::123456789012:assumed-role/webid-test/" in (
        result.stdout
    )
