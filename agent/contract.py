"""Names fixed by the design contract: paths, environment variables, annotations.

Injectors and workloads rely on these; change one only with a changelog entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "ANNOTATION_PREFIX",
    "ENV_CONTAINER_AUTH_TOKEN_FILE",
    "ENV_CONTAINER_CREDENTIALS_FULL_URI",
    "ENV_DEFAULT_REGION",
    "ENV_REGION",
    "ENV_ROLE_ARN",
    "ENV_SESSION_NAME",
    "ENV_STS_REGIONAL_ENDPOINTS",
    "ENV_TOKEN_FILE",
    "NOMAD_TOKEN_DIR",
    "NOMAD_TOKEN_PATH",
    "ROLE_ARN_PATTERN",
    "TOKEN_DIR",
    "TOKEN_FILENAME",
    "TOKEN_PATH",
    "EnvMerge",
    "WorkloadEnv",
    "merge_env",
]

TOKEN_DIR = "/var/run/secrets/webid"
TOKEN_FILENAME = "token"
TOKEN_PATH = f"{TOKEN_DIR}/{TOKEN_FILENAME}"
NOMAD_TOKEN_DIR = "${NOMAD_ALLOC_DIR}/webid"
NOMAD_TOKEN_PATH = f"{NOMAD_TOKEN_DIR}/{TOKEN_FILENAME}"

ENV_ROLE_ARN = "AWS_ROLE_ARN"
ENV_TOKEN_FILE = "AWS_WEB_IDENTITY_TOKEN_FILE"
ENV_SESSION_NAME = "AWS_ROLE_SESSION_NAME"
ENV_REGION = "AWS_REGION"
ENV_DEFAULT_REGION = "AWS_DEFAULT_REGION"
ENV_STS_REGIONAL_ENDPOINTS = "AWS_STS_REGIONAL_ENDPOINTS"
ENV_CONTAINER_CREDENTIALS_FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
ENV_CONTAINER_AUTH_TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"

ANNOTATION_PREFIX = "webid-agent.io/"

# arn:PARTITION:iam::ACCOUNT:role/PATH/NAME (partitions aws, aws-cn, aws-us-gov...)
ROLE_ARN_PATTERN = (
    r"^arn:aws(-[a-z]+)*:iam::\d{12}:role/"
    r"([\x21-\x7e]+/)*[\w+=,.@-]{1,64}$"
)


@dataclass(frozen=True)
class WorkloadEnv:
    """What a workload sees: the standard AWS SDK web identity contract."""

    role_arn: str
    token_file: str = TOKEN_PATH
    session_name: str | None = None
    region: str | None = None
    sts_regional_endpoints: str | None = None

    def as_env(self) -> dict[str, str]:
        """The variables to set, in a stable order, optional ones only when set."""
        env = {ENV_ROLE_ARN: self.role_arn, ENV_TOKEN_FILE: self.token_file}
        if self.session_name:
            env[ENV_SESSION_NAME] = self.session_name
        if self.region:
            env[ENV_REGION] = self.region
            env[ENV_DEFAULT_REGION] = self.region
        if self.sts_regional_endpoints:
            env[ENV_STS_REGIONAL_ENDPOINTS] = self.sts_regional_endpoints
        return env


@dataclass(frozen=True)
class EnvMerge:
    """The outcome of merging wanted variables into a workload's own."""

    added: dict[str, str]
    kept: dict[str, str]
    differing: dict[str, str] = field(default_factory=dict)

    def warnings(self, where: str) -> list[str]:
        """One line per variable the workload sets to a value of its own.

        A variable already holding the value webid-agent would set (a second
        injection) is kept silently.
        """
        return [
            f"{where}: keeps its own {name} (webid-agent would have set it)"
            for name in self.differing
        ]


def merge_env(existing: Mapping[str, object], wanted: Mapping[str, str]) -> EnvMerge:
    """Split ``wanted`` into what to add and what the workload already sets.

    A variable the workload already sets always wins: it is never overwritten.
    """
    added = {k: v for k, v in wanted.items() if k not in existing}
    kept = {k: str(existing[k]) for k in wanted if k in existing}
    differing = {k: v for k, v in kept.items() if v != wanted[k]}
    return EnvMerge(added=added, kept=kept, differing=differing)
