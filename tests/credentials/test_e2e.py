"""End to end with the local IdP and STS: boto3 profiles, the credentials endpoint."""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from .conftest import CLI, Profile, Stack

ASSUMED = "arn:aws:sts::123456789012:assumed-role/webid-e2e/webid-agent"


def write_aws_config(path: Path, profile: Profile, *extra: str) -> None:
    """An ~/.aws/config whose profile ``webid`` runs credential-process."""
    command = " ".join(
        [
            CLI[0],
            CLI[1],
            f'"{CLI[2]}"',
            "--config",
            str(profile.config),
            "aws",
            "credential-process",
            *extra,
        ]
    )
    path.write_text(
        f"[profile webid]\ncredential_process = {command}\nregion = us-east-1\n"
    )


def caller_arn(stack: Stack) -> str:
    """GetCallerIdentity through a new boto3 session of profile ``webid``."""
    session = boto3.session.Session(profile_name="webid")
    client = session.client("sts", endpoint_url=stack.sts.endpoint_url)
    return str(client.get_caller_identity()["Arn"])


def cache_files(profile: Profile) -> list[Path]:
    folder = profile.cache_dir / "webid-agent" / "aws"
    return sorted(folder.glob("*.json")) if folder.exists() else []


# -- credential-process ------------------------------------------------------------


def test_boto3_profile_twice_one_sts_call(
    stack: Stack, profile: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_config = tmp_path / "aws-config"
    write_aws_config(aws_config, profile)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))

    assert caller_arn(stack) == ASSUMED
    assert caller_arn(stack) == ASSUMED
    assert stack.counting.calls("AssumeRoleWithWebIdentity") == 1

    # the cache: one file, private, in a private folder
    (cached,) = cache_files(profile)
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert stat.S_IMODE(cached.parent.stat().st_mode) == 0o700


def test_output_and_quiet_stderr(stack: Stack, profile: Profile) -> None:
    result = profile.run("aws", "credential-process")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert set(data) == {
        "Version",
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    }
    assert data["Version"] == 1
    expires = time.mktime(time.strptime(data["Expiration"], "%Y-%m-%dT%H:%M:%SZ"))
    assert expires - time.mktime(time.gmtime()) > 3000


def test_corrupt_cache_recovered(stack: Stack, profile: Profile) -> None:
    first = profile.run("aws", "credential-process")
    assert first.returncode == 0, first.stderr
    (cached,) = cache_files(profile)
    inode = cached.stat().st_ino
    cached.write_text('{"version": 1, "credentials": {"access_key_id": ')

    second = profile.run("aws", "credential-process")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["AccessKeyId"]
    assert stack.counting.calls() == 2
    (rewritten,) = cache_files(profile)
    assert rewritten.stat().st_ino != inode
    assert stat.S_IMODE(rewritten.stat().st_mode) == 0o600
    assert json.loads(rewritten.read_text())["version"] == 1


FAILURES = [
    pytest.param(
        ["--client-secret-file", "{wrong_secret}"],
        None,
        1,
        ["webid-agent: error: IdP token: ", "invalid_client"],
        id="idp-refuses-secret",
    ),
    pytest.param(
        ["--audience", "api://someone-else"],
        None,
        1,
        ["IdP token: ", "does not include 'api://someone-else'"],
        id="audience-mismatch",
    ),
    pytest.param(
        [],
        ("InvalidIdentityToken", "Incorrect token audience"),
        1,
        ["STS AssumeRoleWithWebIdentity: ", "client id list of the IAM OIDC provider"],
        id="sts-refuses-audience",
    ),
    pytest.param(
        ["--authority", "https://127.0.0.1:{closed_port}/tenant1", "--deadline", "3"],
        None,
        1,
        ["IdP token: https://127.0.0.1:", "cannot connect"],
        id="idp-unreachable-retried-quietly",
    ),
    pytest.param(
        ["--role-arn", "arn:aws:iam::12:role/x"],
        None,
        2,
        ["--role-arn: not an IAM role ARN"],
        id="bad-role-arn",
    ),
]


@pytest.mark.parametrize(("args", "refusal", "code", "expected"), FAILURES)
def test_failures_are_one_line_on_stderr(
    stack: Stack,
    profile: Profile,
    tmp_path: Path,
    args: list[str],
    refusal: tuple[str, str] | None,
    code: int,
    expected: list[str],
) -> None:
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("not-the-secret")
    stack.counting.refuse_with = refusal
    args = [arg.format(wrong_secret=wrong, closed_port=free_port()) for arg in args]
    result = profile.run("aws", "credential-process", "--deadline", "5", *args)
    assert result.returncode == code
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for part in expected:
        assert part in lines[0]
    assert "not-the-secret" not in result.stderr
    assert not cache_files(profile)


# -- the container-credentials endpoint ------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, authorization: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)  # noqa: S310 - loopback test URL
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Sidecar:
    """``webid-agent run --serve-credentials`` in a subprocess."""

    def __init__(self, profile: Profile, workdir: Path) -> None:
        self.port = free_port()
        self.health_port = free_port()
        self.token_file = workdir / "webid" / "token"
        self.auth_file = workdir / "webid" / "credentials-auth-token"
        self.uri = f"http://127.0.0.1:{self.port}/v1/credentials"
        self.process = subprocess.Popen(
            [
                *CLI,
                "--config",
                str(profile.config),
                "run",
                "--serve-credentials",
                "--credentials-listen",
                f"127.0.0.1:{self.port}",
                "--listen",
                f"127.0.0.1:{self.health_port}",
                "--token-file",
                str(self.token_file),
            ],
            env=profile.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(self.process.communicate()[1])
            try:
                status, _ = get(f"http://127.0.0.1:{self.health_port}/readyz")
            except OSError:
                status = 0
            if status == 200:
                return
            time.sleep(0.2)
        raise AssertionError("sidecar not ready in time")

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=20)
        return self.process.returncode, stderr


@pytest.fixture
def sidecar(profile: Profile, tmp_path: Path) -> Iterator[Sidecar]:
    """A running, ready sidecar serving credentials for the e2e role."""
    running = Sidecar(profile, tmp_path)
    try:
        running.wait_ready()
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


def test_boto3_with_only_the_container_variables(
    stack: Stack, sidecar: Sidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", sidecar.uri)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(sidecar.auth_file))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    session = boto3.session.Session()
    client = session.client("sts", endpoint_url=stack.sts.endpoint_url)
    assert client.get_caller_identity()["Arn"] == ASSUMED
    assert session.get_credentials().method == "container-role"

    # the sidecar logged neither the authorization token nor the credentials
    token = sidecar.auth_file.read_text()
    code, stderr = sidecar.stop()
    assert code == 0
    assert token not in stderr
    assert "container credentials on http://127.0.0.1:" in stderr
    assert stack.counting.calls() == 1


def test_sidecar_refuses_wrong_or_missing_authorization(sidecar: Sidecar) -> None:
    token = sidecar.auth_file.read_text()
    assert get(sidecar.uri)[0] == 401
    assert get(sidecar.uri, "wrong")[0] == 401
    assert get(sidecar.uri, token[:-1])[0] == 401
    assert get(sidecar.uri.replace("/v1/credentials", "/"), token)[0] == 404
    assert get(sidecar.uri, token)[0] == 200


def test_sidecar_listens_on_loopback_only(sidecar: Sidecar) -> None:
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, port = fields[1].partition(":")
            if fields[3] == "0A" and int(port, 16) == sidecar.port:
                addresses.append(address)
    assert addresses == ["0100007F"]


@pytest.mark.parametrize("listen", ["0.0.0.0:{port}", "[::]:{port}", "myhost:{port}"])
def test_sidecar_refuses_non_loopback_listen(
    profile: Profile, tmp_path: Path, listen: str
) -> None:
    result = profile.run(
        "run",
        "--serve-credentials",
        "--credentials-listen",
        listen.format(port=free_port()),
        "--listen",
        "",
        "--token-file",
        str(tmp_path / "token"),
        timeout=30,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "credentials-auth-token").exists()


def test_init_step_creates_the_auth_token_the_sidecar_keeps(
    profile: Profile, tmp_path: Path
) -> None:
    token_file = tmp_path / "webid" / "token"
    auth_file = tmp_path / "webid" / "credentials-auth-token"
    result = profile.run(
        "token",
        "--token-file",
        str(token_file),
        "--credentials-auth-token-file",
        str(auth_file),
        "--file-mode",
        "0640",
    )
    assert result.returncode == 0, result.stderr
    value = auth_file.read_text()
    assert len(value) >= 40
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o640
    assert value not in result.stderr

    sidecar = Sidecar(profile, tmp_path)
    try:
        sidecar.wait_ready()
        assert sidecar.auth_file == auth_file
        assert auth_file.read_text() == value
        assert get(sidecar.uri, value)[0] == 200
    finally:
        sidecar.stop()


WARM_PROBE = """
import sys
from agent.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    heavy = ("botocore", "boto3", "msal", "requests", "jinja2", "jwt", "tenacity")
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
    print("LOADED=" + ",".join(loaded), file=sys.stderr)
    raise
"""


def test_warm_call_imports_no_heavy_library(stack: Stack, profile: Profile) -> None:
    assert profile.run("aws", "credential-process").returncode == 0
    warm = subprocess.run(
        [CLI[0], "-c", WARM_PROBE, "--config", str(profile.config)]
        + ["aws", "credential-process"],
        env=profile.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert warm.returncode == 0, warm.stderr
    assert json.loads(warm.stdout)["Version"] == 1
    assert warm.stderr.strip() == "LOADED="
    assert stack.counting.calls() == 1
