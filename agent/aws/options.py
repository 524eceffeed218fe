"""STS settings shared by ``aws credential-process`` and ``run --serve-credentials``.

:func:`sts_options` adds ``--role-arn``, ``--session-name``, ``--region``,
``--sts-endpoint-url``, ``--duration`` and ``--refresh-margin`` to a click
command; each also reads ``WEBID_<NAME>`` and the ``--config`` file.
:func:`sts_settings_from_options` takes them out of the command's keyword
arguments (leaving the engine's own) and checks them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from agent.aws.sts import DEFAULT_DURATION, DEFAULT_SESSION_NAME
from agent.config import table_options
from agent.contract import ROLE_ARN_PATTERN
from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.aws.sts import Credentials

__all__ = [
    "DEFAULT_REFRESH_MARGIN",
    "STS_OPTION_NAMES",
    "StsSettings",
    "sts_options",
    "sts_settings_from_options",
]

F = TypeVar("F", bound=Callable[..., Any])

# botocore refreshes credentials with less than 15 minutes left (10 minutes
# mandatory), so anything we hand out must have more than that left, or every
# SDK call would ask again.
DEFAULT_REFRESH_MARGIN = 1200.0

SESSION_NAME_PATTERN = re.compile(r"^[\w+=,.@-]{2,64}$")

_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--role-arn", {"metavar": "ARN", "help": "IAM role to assume."}),
    (
        "--session-name",
        {"help": f"Role session name (CloudTrail) [{DEFAULT_SESSION_NAME}]."},
    ),
    ("--region", {"help": "STS region [environment/profile, else us-east-1]."}),
    (
        "--sts-endpoint-url",
        {
            "metavar": "URL",
            "help": "STS endpoint [AWS_ENDPOINT_URL_STS, else regional default].",
        },
    ),
    (
        "--duration",
        {
            "type": click.IntRange(900, 43200),
            "help": f"Credential lifetime in seconds [{DEFAULT_DURATION}].",
        },
    ),
    (
        "--refresh-margin",
        {
            "type": click.FloatRange(0, 43200),
            "help": "Renew credentials with less than this many seconds left"
            f" [{DEFAULT_REFRESH_MARGIN:.0f}; at most half their lifetime].",
        },
    ),
]

STS_OPTION_NAMES = tuple(decl.lstrip("-").replace("-", "_") for decl, _ in _OPTIONS)


@dataclass(frozen=True)
class StsSettings:
    """Which role to assume and how to reach STS."""

    role_arn: str
    session_name: str = DEFAULT_SESSION_NAME
    region: str | None = None
    endpoint_url: str | None = None
    duration: int = DEFAULT_DURATION
    refresh_margin: float = DEFAULT_REFRESH_MARGIN

    def assume(self, token: str, *, timeout: float) -> Credentials:
        """Call AssumeRoleWithWebIdentity for this role with ``token``."""
        from agent.aws.sts import assume_role_with_web_identity

        return assume_role_with_web_identity(
            token,
            self.role_arn,
            session_name=self.session_name,
            region=self.region,
            endpoint_url=self.endpoint_url,
            duration=self.duration,
            timeout=timeout,
        )

    def margin_for(self, lifetime: float) -> float:
        """The refresh margin for credentials of ``lifetime`` seconds."""
        return min(self.refresh_margin, max(0.0, lifetime) / 2)

    def validate(self) -> StsSettings:
        """Raise ConfigError naming the option unless every value fits."""
        if not self.role_arn:
            raise ConfigError("missing role to assume", where="--role-arn")
        if not re.match(ROLE_ARN_PATTERN, self.role_arn):
            raise ConfigError(
                f"not an IAM role ARN: {self.role_arn!r}"
                " (expected arn:aws:iam::123456789012:role/NAME)",
                where="--role-arn",
            )
        if not SESSION_NAME_PATTERN.match(self.session_name):
            raise ConfigError(
                f"{self.session_name!r} is not a valid session name"
                " (2-64 of letters, digits and +=,.@_-)",
                where="--session-name",
            )
        if self.endpoint_url and not self.endpoint_url.startswith(
            ("https://", "http://")
        ):
            raise ConfigError(
                f"expected an http(s) URL, got {self.endpoint_url!r}",
                where="--sts-endpoint-url",
            )
        return self


def sts_options(func: F) -> F:
    """Decorate a click command with the STS options."""
    return table_options(_OPTIONS)(func)


def sts_settings_from_options(options: MutableMapping[str, Any]) -> StsSettings:
    """Pop the STS options out of ``options`` and build checked settings."""
    values = {name: options.pop(name, None) for name in STS_OPTION_NAMES}
    return StsSettings(
        role_arn=str(values["role_arn"] or ""),
        session_name=str(values["session_name"] or DEFAULT_SESSION_NAME),
        region=values["region"] or None,
        endpoint_url=values["sts_endpoint_url"] or None,
        duration=int(values["duration"] or DEFAULT_DURATION),
        refresh_margin=float(
            DEFAULT_REFRESH_MARGIN
            if values["refresh_margin"] is None
            else values["refresh_margin"]
        ),
    ).validate()
