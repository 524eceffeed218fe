"""The locally built images: base, test app and agent.

The first run builds missing images (about a minute each); later runs reuse
them and only start a few short containers.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv import images

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
AGENT_UID = 10001
TOKEN_DIR = "/var/run/secrets/webid"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    if not images.docker_available():
        pytest.skip("Docker daemon is not reachable (docker SDK ping failed)")
    import docker

    docker_client = docker.from_env(timeout=60)
    yield docker_client
    docker_client.close()


@pytest.fixture(scope="module")
def base_image(client: Any) -> str:
    return images.ensure_base_image()


@pytest.fixture(scope="module")
def app_image(base_image: str) -> str:
    return images.ensure_app_image(base=base_image)


@pytest.fixture(scope="module")
def agent_image(base_image: str) -> str:
    return images.ensure_agent_image(REPO, base=base_image)


def run(client: Any, image: str, command: list[str], **kwargs: Any) -> str:
    """Run a throwaway container on the host network and return its stdout."""
    kwargs.setdefault("network_mode", "host")
    out = client.containers.run(image, command, remove=True, **kwargs)
    return bytes(out).decode().strip()


def test_base_image_has_python_311(client: Any, base_image: str) -> None:
    out = run(client, base_image, ["python3", "--version"])
    assert out.startswith("Python 3.11."), out


def test_base_image_can_make_a_venv(client: Any, base_image: str) -> None:
    out = run(
        client,
        base_image,
        ["sh", "-c", "python3 -m venv /tmp/v && /tmp/v/bin/python -c 'print(1)'"],
    )
    assert out == "1"


def test_app_image_imports_boto3(client: Any, app_image: str) -> None:
    out = run(client, app_image, ["python", "-c", "import boto3; print('ok')"])
    assert out == "ok"
    config = client.images.get(app_image).attrs["Config"]
    assert config["Cmd"] == ["python", "/opt/app/whoami.py"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_app_assumes_role_from_environment_only(
    client: Any, app_image: str, tmp_path: Path
) -> None:
    """whoami.py gets the role ARN from a local STS with only env vars set."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        token = tmp_path / "token"
        token.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ3aG9hbWkifQ.")
        token.chmod(0o644)
        out = run(
            client,
            app_image,
            [],
            environment={
                "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/webid-test",
                "AWS_WEB_IDENTITY_TOKEN_FILE": "/token/token",
                "AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{port}",
                "AWS_DEFAULT_REGION": "us-east-1",
            },
            volumes={str(tmp_path): {"bind": "/token", "mode": "ro"}},
        )
    finally:
        server.stop()
    assert out.startswith(
        "ASSUMED arn:aws:sts::123456789012:assumed-role/webid-test/"
    ), out


def test_agent_image_has_the_agent_package(client: Any, agent_image: str) -> None:
    import agent

    out = run(
        client,
        agent_image,
        ["-c", "import agent; print(agent.__version__)"],
        entrypoint=["python"],
    )
    assert out == agent.__version__


def test_agent_image_runs_as_non_root(client: Any, agent_image: str) -> None:
    config = client.images.get(agent_image).attrs["Config"]
    assert config["User"] == f"{AGENT_UID}:{AGENT_UID}"
    assert config["Entrypoint"] == ["webid-agent"]
    assert config["Cmd"] == ["run"]
    out = run(client, agent_image, ["-u"], entrypoint=["id"])
    assert out == str(AGENT_UID)


def test_new_volume_at_token_dir_is_writable_by_agent(
    client: Any, agent_image: str
) -> None:
    volume = client.volumes.create(name=f"webid-test-{uuid.uuid4().hex[:12]}")
    try:
        out = run(
            client,
            agent_image,
            [
                "-c",
                f"echo t > {TOKEN_DIR}/token && stat -c '%u %a' {TOKEN_DIR}/token",
            ],
            entrypoint=["sh"],
            volumes={volume.name: {"bind": TOKEN_DIR, "mode": "rw"}},
        )
        assert out.split()[0] == str(AGENT_UID)
    finally:
        volume.remove(force=True)
