"""Types and constants the operator tests share (conftest is not importable)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer


@dataclass(frozen=True)
class CliResult:
    """What one run of ``webid-agent`` left behind."""

    exit_code: int
    stdout: str
    stderr: str


RunCli = Callable[..., CliResult]


CLIENT_ID = "team-a-client"
CLIENT_SECRET = "s3cret-Value-that-must-never-show"


@dataclass
class IdpDouble:
    """A discovery document and a token endpoint issuing JWTs over HTTPS.

    Tests change ``claims`` (merged into each token), ``token_status`` and
    ``discovery_issuer`` to provoke the failures doctor explains.
    """

    server: HTTPServer
    ca_file: Path
    secret_file: Path
    claims: dict[str, Any]
    token_status: int = 200
    token_error: str = "invalid_client"
    discovery_issuer: str | None = None
    issued: list[str] | None = None

    @property
    def issuer(self) -> str:
        return f"https://localhost:{self.server.port}/tenant1"

    def options(self, *extra: str) -> list[str]:
        """Engine options pointing at this IdP."""
        return [
            "--provider", "oidc",
            "--authority", self.issuer,
            "--client-id", CLIENT_ID,
            "--client-secret-file", str(self.secret_file),
            "--ca-bundle", str(self.ca_file),
            "--audience", "sts.amazonaws.com",
            *extra,
        ]  # fmt: skip
