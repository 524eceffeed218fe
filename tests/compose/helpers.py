"""Types and constants the Compose tests share (conftest is not importable)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).parent / "data"
CLIENT_SECRET = "compose-s3cret-never-in-output"


@dataclass(frozen=True)
class CliResult:
    """What one run of ``webid-agent`` left behind."""

    exit_code: int
    stdout: str
    stderr: str


RunCli = Callable[..., CliResult]


IDP_OPTIONS = (
    "--authority", "https://idp.example/tenant1",
    "--client-id", "team-a-client",
    "--client-secret-file", "secrets/client-secret",
    "--audience", "sts.amazonaws.com",
)  # fmt: skip
