"""The one exception tree of webid-agent, with the exit code each error maps to.

    WebIdError (exit 1)              anything webid-agent raises on purpose
    ├── UsageError (exit 2)          bad input from the user
    │   ├── ConfigError              a setting is missing, malformed or unreadable
    │   └── InputError               a file given to an injector is malformed
    └── RuntimeFailure (exit 1)      the world did not cooperate
        ├── IdpError                 the identity provider failed or refused
        │   ├── IdpUnavailable       transient: timeout, 5xx, 429 (may retry)
        │   └── TokenRejected        a token came back but fails our checks
        ├── StsError                 AWS STS refused or failed
        ├── DockerFailure            the Docker engine failed
        └── TokenFileError           the token file could not be written

Every message names what is wrong and where (a file and line, a JSON pointer, a
setting name, a URL). Messages never contain secrets or tokens: the logging
redaction filter is a second line of defence, not the first.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DockerFailure",
    "IdpError",
    "IdpUnavailable",
    "InputError",
    "RuntimeFailure",
    "StsError",
    "TokenFileError",
    "TokenRejected",
    "UsageError",
    "WebIdError",
]


class WebIdError(Exception):
    """Base of every error webid-agent raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(self.format())

    def format(self) -> str:
        """The one line shown to the user."""
        return f"{self.where}: {self.message}" if self.where else self.message


class UsageError(WebIdError):
    """Bad input from the user: a flag, a setting or a file."""

    exit_code = 2


class ConfigError(UsageError):
    """A setting is missing, malformed or points at something unreadable."""


class InputError(UsageError):
    """A file handed to an injector is malformed; ``where`` names file:line."""


class RuntimeFailure(WebIdError):
    """Something outside webid-agent failed: the IdP, STS, Docker, the disk."""


class IdpError(RuntimeFailure):
    """The identity provider failed or refused the request."""


class IdpUnavailable(IdpError):
    """A transient IdP failure worth retrying (timeout, 5xx, 429)."""

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, where=where)


class TokenRejected(IdpError):
    """A token came back but is unusable: no ``exp``, wrong issuer or audience."""


class StsError(RuntimeFailure):
    """AWS STS refused the token or could not be reached."""


class DockerFailure(RuntimeFailure):
    """The Docker engine failed or a container did not behave."""


class TokenFileError(RuntimeFailure):
    """The token file could not be written."""
