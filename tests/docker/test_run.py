"""`webid-agent docker run` end to end: real IdP, real engine, real AWS SDK."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from devenv.idp import Idp, verify_token
from tests.docker.conftest import run

pytestmark = pytest.mark.docker


def test_app_assumes_the_role_with_only_the_injected_env(
    wrapper: Callable[..., list[str]],
    app_env: list[str],
    app_image: str,
    leftovers: Callable[[], list[str]],
) -> None:
    result = run([*wrapper(), "--rm", *app_env, app_image])

    assert result.returncode == 0, result.stderr
    assert "ASSUMED arn:aws:sts::123456789012:assumed-role/webid-test/" in result.stdout
    assert "waiting for the first token" in result.stderr
    assert leftovers() == []


@pytest.mark.parametrize("user", ["1000", "1000:1000", "65534"])
def test_non_root_app_reads_a_valid_token(
    wrapper: Callable[..., list[str]],
    app_image: str,
    idp: Idp,
    user: str,
    leftovers: Callable[[], list[str]],
) -> None:
    result = run(
        [
            *wrapper(),
            "--rm",
            "--network",
            "host",
            "--user",
            user,
            app_image,
            "sh",
            "-c",
            'id -u; cat "$AWS_WEB_IDENTITY_TOKEN_FILE"; echo; echo "$AWS_ROLE_ARN"',
        ]
    )

    assert result.returncode == 0, result.stderr
    uid, token, role = result.stdout.split()
    assert uid == user.split(":")[0]
    claims = verify_token(idp, token, idp.audience)
    assert claims["iss"] == idp.issuer
    assert claims["sub"] == "webid-secret"
    assert role.startswith("arn:aws:iam::")
    assert leftovers() == []


def test_token_mount_is_read_only_for_the_app(
    wrapper: Callable[..., list[str]], app_image: str
) -> None:
    script = 'echo x > "$AWS_WEB_IDENTITY_TOKEN_FILE" && echo wrote'
    argv = [*wrapper(), "--rm", "--network", "host", app_image, "sh", "-c", script]

    result = run(argv)

    assert result.returncode == 2  # the shell's own code for a failed redirect
    assert "wrote" not in result.stdout
    assert "Read-only file system" in result.stderr


def test_app_exit_code_is_returned_and_everything_removed(
    wrapper: Callable[..., list[str]],
    app_image: str,
    leftovers: Callable[[], list[str]],
) -> None:
    result = run(
        [*wrapper(), "--rm", "--network", "host", app_image, "sh", "-c", "exit 7"]
    )

    assert result.returncode == 7
    assert leftovers() == []


def test_user_variable_wins_with_a_warning(
    wrapper: Callable[..., list[str]], app_image: str
) -> None:
    mine = "arn:aws:iam::111122223333:role/mine"
    result = run(
        [
            *wrapper(),
            "--rm",
            "--network",
            "host",
            "-e",
            f"AWS_ROLE_ARN={mine}",
            app_image,
            "sh",
            "-c",
            'echo "$AWS_ROLE_ARN $AWS_WEB_IDENTITY_TOKEN_FILE"',
        ]
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [mine, "/var/run/secrets/webid/token"]
    assert "keeps its own AWS_ROLE_ARN" in result.stderr


def test_sidecar_failure_shows_its_log_and_cleans_up(
    wrapper: Callable[..., list[str]],
    app_image: str,
    leftovers: Callable[[], list[str]],
    secret_file: Any,
) -> None:
    secret_file.write_text("wrong-secret")

    result = run([*wrapper(), "--rm", "--network", "host", app_image, "true"])

    assert result.returncode == 1
    assert "the sidecar stopped before writing a token" in result.stderr
    assert "invalid_client" in result.stderr
    assert "wrong-secret" not in result.stderr
    assert leftovers() == []


def test_first_token_timeout(
    wrapper: Callable[..., list[str]],
    app_image: str,
    leftovers: Callable[[], list[str]],
    idp: Idp,
) -> None:
    argv = wrapper()
    argv[argv.index("--first-token-timeout") + 1] = "2"
    argv[argv.index("--authority") + 1] = "https://127.0.0.1:9/tenant1"

    result = run([*argv, "--rm", "--network", "host", app_image, "true"])

    assert result.returncode == 1
    assert "no token within 2s" in result.stderr
    assert "cannot connect" in result.stderr
    assert leftovers() == []


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(["--init"], id="app-handles-signal"),
        pytest.param([], id="app-ignores-signal-pid1"),
    ],
)
def test_sigterm_is_forwarded_and_cleans_up(
    wrapper: Callable[..., list[str]],
    app_image: str,
    docker_client: Any,
    leftovers: Callable[[], list[str]],
    app: list[str],
) -> None:
    argv = wrapper("--stop-grace", "2")
    proc = subprocess.Popen(  # noqa: S603
        [*argv, "--rm", "--network", "host", *app, app_image, "sleep", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    app_filter = {"label": "io.webid-agent.role=app", "status": "running"}
    deadline = time.time() + 60
    while not docker_client.containers.list(filters=app_filter):
        assert time.time() < deadline and proc.poll() is None, proc.stderr
        time.sleep(0.2)

    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)

    assert proc.returncode in (137, 143)  # killed by the signal, or stopped
    assert docker_client.containers.list(filters=app_filter) == []
    assert leftovers() == []


def test_detached_app_keeps_sidecar_until_it_ends(
    wrapper: Callable[..., list[str]],
    app_image: str,
    docker_client: Any,
    leftovers: Callable[[], list[str]],
) -> None:
    result = run(
        [*wrapper(), "-d", "--rm", "--network", "host", app_image, "sleep", "3"]
    )

    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) == 64  # the app's container id
    assert any(name.startswith("webid-sidecar-") for name in leftovers())
    deadline = time.time() + 30
    while leftovers() and time.time() < deadline:
        time.sleep(0.5)
    assert leftovers() == []


def test_cleanup_removes_leftovers_by_label(
    wrapper: Callable[..., list[str]],
    app_image: str,
    docker_client: Any,
    leftovers: Callable[[], list[str]],
) -> None:
    # an app container kept after exit (no --rm) keeps its token volume
    result = run([*wrapper(), "--network", "host", app_image, "true"])
    assert result.returncode == 0, result.stderr
    kept = leftovers()
    assert kept and all(name.startswith("webid-token-") for name in kept)
    for container in docker_client.containers.list(
        all=True, filters={"label": "io.webid-agent.role=app"}
    ):
        container.remove()

    dry = run(["webid-agent", "docker", "cleanup", "--dry-run"])
    cleaned = run(["webid-agent", "docker", "cleanup"])

    assert dry.returncode == 0 and "would remove session" in dry.stdout
    assert cleaned.returncode == 0, cleaned.stderr
    assert leftovers() == []


def test_cleanup_keeps_the_sidecar_of_a_running_app(
    wrapper: Callable[..., list[str]],
    app_image: str,
    docker_client: Any,
    leftovers: Callable[[], list[str]],
) -> None:
    result = run(
        [*wrapper(), "-d", "--rm", "--network", "host", app_image, "sleep", "8"]
    )
    assert result.returncode == 0, result.stderr
    before = leftovers()

    cleaned = run([sys.executable, "-m", "agent", "docker", "cleanup"])

    assert cleaned.returncode == 0, cleaned.stderr
    assert "removed" not in cleaned.stdout
    assert leftovers() == before
    assert any(name.startswith("webid-sidecar-") for name in before)


@pytest.mark.parametrize("content", ["", "   \n"])
def test_empty_secret_file_is_refused_before_any_container(
    wrapper: Callable[..., list[str]],
    app_image: str,
    secret_file: Any,
    leftovers: Callable[[], list[str]],
    content: str,
) -> None:
    secret_file.write_text(content)

    result = run([*wrapper(), "--rm", "--network", "host", app_image, "true"])

    assert result.returncode == 2
    assert "client secret file is empty" in result.stderr
    assert str(secret_file) in result.stderr
    assert leftovers() == []


def test_invalid_image_reference_is_bad_input(
    wrapper: Callable[..., list[str]],
    app_image: str,
    leftovers: Callable[[], list[str]],
) -> None:
    argv = wrapper()
    argv[argv.index("--image") + 1] = "UPPER:bad"

    result = run([*argv, "--rm", "--network", "host", app_image, "true"])

    assert result.returncode == 2
    assert "--image: not a valid image reference: 'UPPER:bad'" in result.stderr
    assert leftovers() == []
