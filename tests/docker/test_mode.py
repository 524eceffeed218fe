"""`webid-agent docker --mode credentials-endpoint`: the app gets role credentials
from the sidecar's loopback endpoint, never the token file's variables.

The sidecar runs on the host network here (``--network host`` before ``run``)
so that it reaches the local IdP and STS stand-in on 127.0.0.1; the app joins
its network namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.docker.conftest import run

pytestmark = pytest.mark.docker

URI = "http://127.0.0.1:{port}/v1/credentials"
AUTH_FILE = "/var/run/secrets/webid/credentials-auth-token"


@pytest.fixture
def endpoint_wrapper(
    wrapper: Callable[..., list[str]], checked_sts: Any, unused_port: int
) -> Callable[..., list[str]]:
    """The wrapper argv in credentials-endpoint mode, sidecar on the host network."""

    def argv(*extra: str) -> list[str]:
        return wrapper(
            "--mode",
            "credentials-endpoint",
            "--network",
            "host",
            "--sts-endpoint-url",
            checked_sts.endpoint_url,
            "--credentials-listen",
            f"127.0.0.1:{unused_port}",
            *extra,
        )

    return argv


@pytest.fixture
def unused_port() -> int:
    """A loopback port free right now (the sidecar shares the host network)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_app_assumes_the_role_through_the_endpoint(
    endpoint_wrapper: Callable[..., list[str]],
    checked_sts: Any,
    app_image: str,
    leftovers: Callable[[], list[str]],
) -> None:
    # the app's SDK finds only the endpoint; GetCallerIdentity goes to moto
    result = run(
        [
            *endpoint_wrapper(),
            "--rm",
            "-e",
            f"AWS_ENDPOINT_URL_STS={checked_sts.endpoint_url}",
            "-e",
            "AWS_DEFAULT_REGION=us-east-1",
            app_image,
        ]
    )

    assert result.returncode == 0, result.stderr
    assert "ASSUMED arn:aws:sts::123456789012:assumed-role/webid-test/" in result.stdout
    assert "waiting for the first credentials" in result.stderr
    assert leftovers() == []


def test_app_sees_exactly_the_endpoint_variables(
    endpoint_wrapper: Callable[..., list[str]],
    app_image: str,
    unused_port: int,
) -> None:
    script = (
        "env | grep ^AWS_ | sort; "
        'test -s "$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" && echo AUTH-FILE-OK'
    )
    result = run(
        [
            *endpoint_wrapper("--region", "eu-west-1", "--session-name", "legacy"),
            "--rm",
            "--user",
            "65534",
            app_image,
            "sh",
            "-c",
            script,
        ]
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        f"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={AUTH_FILE}",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI=" + URI.format(port=unused_port),
        "AWS_DEFAULT_REGION=eu-west-1",
        "AWS_REGION=eu-west-1",
        "AUTH-FILE-OK",
    ]


@pytest.mark.parametrize(
    ("option", "name"),
    [
        (["--network", "bridge"], "--network"),
        (["--net=host"], "--net"),
        (["-p", "8080:80"], "-p"),
        (["-p8080:80"], "-p"),
        (["-itP"], "-P"),
        (["--hostname", "app"], "--hostname"),
        (["--dns", "127.0.0.53"], "--dns"),
    ],
)
def test_network_options_are_refused_before_anything_starts(
    option: list[str],
    name: str,
    endpoint_wrapper: Callable[..., list[str]],
    app_image: str,
    leftovers: Callable[[], list[str]],
) -> None:
    result = run([*endpoint_wrapper(), "--rm", *option, app_image, "true"])

    assert result.returncode == 2
    assert f"{name} cannot be used with --mode credentials-endpoint" in result.stderr
    assert f"docker run {name}" in result.stderr
    assert "webid-agent docker --network NET" in result.stderr
    assert "Traceback" not in result.stderr
    assert leftovers() == []


def test_own_endpoint_variable_wins_with_a_warning(
    endpoint_wrapper: Callable[..., list[str]], app_image: str
) -> None:
    mine = "http://127.0.0.1:1/mine"
    result = run(
        [
            *endpoint_wrapper(),
            "--rm",
            "-e",
            f"AWS_CONTAINER_CREDENTIALS_FULL_URI={mine}",
            app_image,
            "sh",
            "-c",
            'echo "$AWS_CONTAINER_CREDENTIALS_FULL_URI"',
        ]
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [mine]
    assert "keeps its own AWS_CONTAINER_CREDENTIALS_FULL_URI" in result.stderr


def test_sts_refusal_times_out_with_the_sidecar_log(
    wrapper: Callable[..., list[str]],
    app_image: str,
    leftovers: Callable[[], list[str]],
) -> None:
    # nothing listens on port 9 of loopback: STS is unreachable
    argv = wrapper(
        "--mode",
        "credentials-endpoint",
        "--network",
        "host",
        "--sts-endpoint-url",
        "http://127.0.0.1:9",
    )
    argv[argv.index("--first-token-timeout") + 1] = "4"

    result = run([*argv, "--rm", app_image, "true"])

    assert result.returncode == 1
    assert "no credentials within 4s" in result.stderr
    assert "STS refresh failed" in result.stderr
    assert leftovers() == []
