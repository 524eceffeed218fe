"""Fixtures for the Docker injector: the real engine, locally built images.

Tests here are marked ``docker``; they run against the Docker engine and skip
only when no engine answers (the CI script starts one, so they run there).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.idp import Idp

pytestmark = pytest.mark.docker


@pytest.fixture
def secret_file(idp: Idp, tmp_path: Path) -> Path:
    """The basic-auth client's secret in a private file."""
    path = tmp_path / "client-secret"
    secret = idp.client("webid-secret").secret
    assert secret
    path.write_text(secret)
    path.chmod(0o600)
    return path


@pytest.fixture
def wrapper(
    idp: Idp, secret_file: Path, role_arn: str, agent_image: str
) -> Callable[..., list[str]]:
    """The `webid-agent docker ... run` argv up to and including `run`."""

    def argv(*extra: str, client_id: str = "webid-secret") -> list[str]:
        return [
            sys.executable,
            "-m",
            "agent",
            "docker",
            "--role-arn",
            role_arn,
            "--authority",
            idp.issuer,
            "--client-id",
            client_id,
            "--client-secret-file",
            str(secret_file),
            "--ca-bundle",
            str(idp.ca_file),
            "--audience",
            idp.audience,
            "--image",
            agent_image,
            "--first-token-timeout",
            "30",
            *extra,
            "run",
        ]

    return argv


@pytest.fixture
def app_env(checked_sts: Any) -> list[str]:
    """docker run options pointing the app's SDK at the STS stand-in."""
    return [
        "--network",
        "host",
        "-e",
        f"AWS_ENDPOINT_URL_STS={checked_sts.endpoint_url}",
        "-e",
        "AWS_DEFAULT_REGION=us-east-1",
    ]


def run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output, never raise on exit codes."""
    return subprocess.run(  # noqa: S603
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=os.environ.copy(),
    )


@pytest.fixture
def leftovers(docker_client: Any) -> Iterator[Callable[[], list[str]]]:
    """Names of webid-managed containers and volumes created during the test."""
    label = {"label": "io.webid-agent.managed=true"}
    before = {c.name for c in docker_client.containers.list(all=True, filters=label)}
    before |= {v.name for v in docker_client.volumes.list(filters=label)}

    def current() -> list[str]:
        names = {c.name for c in docker_client.containers.list(all=True, filters=label)}
        names |= {v.name for v in docker_client.volumes.list(filters=label)}
        return sorted(names - before)

    yield current
    # leave the engine as we found it, whatever the test did
    from injectors.docker.session import LABEL_SESSION, remove_session

    for container in docker_client.containers.list(all=True, filters=label):
        session = container.labels.get(LABEL_SESSION)
        if container.name not in before and session:
            remove_session(docker_client, session)
