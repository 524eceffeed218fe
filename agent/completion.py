"""``webid-agent completion SHELL``: print the shell completion script.

The script asks ``webid-agent`` itself for completions (click's protocol,
``_WEBID_AGENT_COMPLETE=<shell>_complete``), so commands added by plugins
complete too.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

__all__ = ["completion"]

PROG = "webid-agent"
COMPLETE_VAR = "_WEBID_AGENT_COMPLETE"


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL; source it from your shell's rc file.

    \b
    Examples:
      webid-agent completion bash > /etc/bash_completion.d/webid-agent
      echo 'eval "$(webid-agent completion zsh)"' >> ~/.zshrc
      webid-agent completion fish > ~/.config/fish/completions/webid-agent.fish
    """
    from agent.cli import cli

    cls = get_completion_class(shell)
    assert cls is not None  # noqa: S101 - the Choice allows only known shells
    click.echo(cls(cli, {}, PROG, COMPLETE_VAR).source())
