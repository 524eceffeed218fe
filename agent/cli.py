"""The ``webid-agent`` command line: global options, lazy commands, error exits.

Commands are imported only when invoked, and injector plugins only when one
of theirs is: ``webid-agent aws credential-process`` never imports Docker,
Kubernetes or HCL libraries. Errors are raised as :class:`WebIdError` and
turned into one redacted line on stderr and the error's exit code here.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import sys
from pathlib import Path
from typing import Any

import click

from agent import __version__
from agent.config import CONFIG_META_KEY, ENGINE_OPTION_NAMES, load_config_file
from agent.errors import ConfigError, WebIdError
from agent.logsetup import configure, redact
from agent.plugins import available, load

__all__ = ["cli", "main"]

log = logging.getLogger(__name__)

# name -> "module:attribute" of the engine's own commands
BUILTIN_COMMANDS = {
    "run": "agent.commands:run",
    "token": "agent.commands:token",
    "inject": "agent.cli:inject",
    "doctor": "agent.doctor:doctor",
    "aws": "agent.aws:aws",
    "completion": "agent.completion:completion",
}


def _import(target: str) -> click.Command:
    module, _, attr = target.partition(":")
    command = getattr(importlib.import_module(module), attr)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


def _plugin_commands() -> dict[str, click.Command]:
    commands: dict[str, click.Command] = {}
    for name in available():
        for command in load(name).commands:
            if command.name:
                commands[command.name] = command
    return commands


class RootGroup(click.Group):
    """The top level: built-in commands plus those plugins contribute."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(BUILTIN_COMMANDS) | set(_plugin_commands()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in BUILTIN_COMMANDS:
            return _import(BUILTIN_COMMANDS[cmd_name])
        return _plugin_commands().get(cmd_name)


class InjectGroup(click.Group):
    """``webid-agent inject PLATFORM``: one subcommand per injector plugin."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in available() if load(name).inject is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in available():
            return None
        return load(cmd_name).inject


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="WEBID_CONFIG",
    show_envvar=True,
    help="YAML or TOML file with the same keys as the options.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    envvar="WEBID_LOG_LEVEL",
    show_envvar=True,
    show_default=True,
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="WEBID_LOG_FORMAT",
    show_envvar=True,
    show_default=True,
)
@click.version_option(__version__, prog_name="webid-agent")
@click.pass_context
def cli(
    ctx: click.Context, config_file: Path | None, log_level: str, log_format: str
) -> None:
    """Short-lived AWS credentials for any workload, from an external OIDC IdP.

    \b
    Examples:
      webid-agent token --authority https://idp.example/tenant1 \\
          --client-id my-app --client-secret-file secret.txt
      webid-agent run --config /etc/webid-agent.yaml
      webid-agent docker --role-arn arn:aws:iam::111122223333:role/app \\
          run --rm my-image
    """
    configure(log_level, log_format)
    values = load_config_file(config_file) if config_file else {}
    if config_file:
        _check_config_keys(ctx, values, config_file)
    ctx.meta[CONFIG_META_KEY] = values


# Options of the engine's own commands (run, token, aws ...): a config file
# with only these is checked without importing every command and plugin.
ENGINE_COMMAND_KEYS = {
    "cache_dir",
    "credentials_auth_token_file",
    "credentials_listen",
    "deadline",
    "duration",
    "no_cache",
    "raw",
    "refresh_margin",
    "region",
    "role_arn",
    "serve_credentials",
    "session_name",
    "sts_endpoint_url",
}


def _param_names(ctx: click.Context, command: click.Command) -> set[str]:
    names = {param.name for param in command.params if param.name}
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                names |= _param_names(ctx, sub)
    return names


def _check_config_keys(ctx: click.Context, values: dict[str, Any], path: Path) -> None:
    """Refuse keys no command reads: a typo must not silently drop a check."""
    known = set(ENGINE_OPTION_NAMES) | ENGINE_COMMAND_KEYS
    if not set(values) <= known:
        # only now pay for importing every command and plugin
        known |= _param_names(ctx, ctx.command)
    unknown = sorted(set(values) - known)
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" (did you mean {close[0].replace('_', '-')!r}?)" if close else ""
        raise ConfigError(
            f"unknown key {key.replace('_', '-')!r}{hint}", where=str(path)
        )


@cli.group(cls=InjectGroup)
def inject() -> None:
    """Rewrite a workload definition so its containers get AWS credentials.

    \b
    Examples:
      webid-agent inject nomad job.nomad.hcl -o job.injected.hcl
      webid-agent inject k8s deployment.yaml | kubectl apply -f -
    """


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; a WebIdError becomes one line on stderr and its exit code."""
    try:
        # without standalone mode, click returns the code of a click Exit
        code = cli.main(args=argv, prog_name="webid-agent", standalone_mode=False)
    except WebIdError as exc:
        click.echo(f"webid-agent: error: {redact(exc.format())}", err=True)
        log.debug("error details", exc_info=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        message = " ".join(exc.format_message().split())
        click.echo(f"webid-agent: error: {redact(message)}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        message = " ".join(exc.format_message().split())
        click.echo(f"webid-agent: error: {redact(message)}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("webid-agent: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
