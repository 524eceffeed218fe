"""``webid-agent aws``: commands that talk to or about AWS itself.

Subcommands are imported only when invoked, so ``credential-process`` (called
by AWS SDKs many times a day) starts as fast as Python allows.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["aws"]

SUBCOMMANDS = {
    "credential-process": "agent.aws.credential_process:credential_process",
    "trust-policy": "agent.aws.trust_policy:trust_policy",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)  # noqa: S101
        return command


@click.group(cls=_LazyGroup)
def aws() -> None:
    """AWS helpers: credential_process for ~/.aws/config, IAM trust policies."""
