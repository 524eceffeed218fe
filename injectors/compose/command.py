"""``webid-agent inject compose FILE``: the click command of the Compose plugin.

This module imports only click and ``agent``; the YAML work (ruamel.yaml) is
imported when the command runs, so listing commands stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from agent import (
    ConfigError,
    __version__,
    config_default,
    engine_options,
    output_options,
    output_target,
    read_input,
    settings_from_options,
    write_output,
)

__all__ = ["inject_compose"]

log = logging.getLogger(__name__)


@click.command("compose")
@click.argument(
    "compose_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
)
@engine_options
@click.option(
    "--role-arn",
    envvar="WEBID_ROLE_ARN",
    show_envvar=True,
    default=config_default("role_arn"),
    help="Role for services with 'x-webid: true' (else the top-level x-webid).",
)
@click.option("--session-name", help="AWS_ROLE_SESSION_NAME for every service.")
@click.option("--region", help="AWS_REGION and AWS_DEFAULT_REGION for every service.")
@click.option(
    "--image",
    envvar="WEBID_IMAGE",
    show_envvar=True,
    default=config_default("image", f"webid-agent:{__version__}"),
    show_default=True,
    help="The webid-agent image.",
)
@click.option(
    "--deadline",
    type=int,
    default=120,
    show_default=True,
    help="Seconds the first-token service may take before the stack fails.",
)
@click.option(
    "--agent-user",
    metavar="UID:GID",
    help="User the agent services run as [the owner of the credential files]."
    " Compose mounts file secrets with their host owner and mode, so the agent"
    " must be that owner to read a private (0600) secret.",
)
@click.option(
    "--templates",
    "templates_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder searched first for compose/*.j2 templates.",
)
@output_options
def inject_compose(
    *,
    compose_file: Path,
    role_arn: str | None,
    session_name: str | None,
    region: str | None,
    image: str,
    deadline: int,
    agent_user: str | None,
    templates_dir: Path | None,
    output: Path | None,
    in_place: bool,
    **options: Any,
) -> None:
    """Print COMPOSE_FILE with the webid-agent sidecar wired in.

    Services opt in with an `x-webid` field: `x-webid: {role-arn: ARN}` or
    `x-webid: true` with a top-level `x-webid: {role-arn: ARN}` (or
    --role-arn). They get AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, the
    token volume read-only, and start after the first token is written.
    Keys, order and comments are kept; running it twice changes nothing.

    \b
    Examples:
      webid-agent --config idp.yaml inject compose docker-compose.yml \\
          -o docker-compose.webid.yml
      webid-agent inject compose compose.yaml --in-place \\
          --authority https://idp.example/tenant1 --client-id app \\
          --client-secret-file ./secrets/client-secret --audience sts.amazonaws.com
    """
    from injectors.compose.rewrite import Defaults, inject

    target = output_target(source=compose_file, output=output, in_place=in_place)
    if options.get("client_secret_env"):
        raise ConfigError(
            "a Compose file cannot carry a secret from the environment;"
            " use --client-secret-file (mounted as a Compose secret)",
            where="--client-secret-env",
        )
    settings = settings_from_options(options, default_token_file=None)
    text = read_input(compose_file)
    result = inject(
        text,
        source=str(compose_file),
        # Compose resolves relative paths from the folder of the file it reads
        base_dir=(output or compose_file).resolve().parent,
        settings=settings,
        defaults=Defaults(role_arn=role_arn, session_name=session_name, region=region),
        image=image,
        deadline=deadline,
        agent_user=agent_user,
        templates_dir=templates_dir,
    )
    for warning in result.warnings:
        click.echo(f"webid-agent: warning: {warning}", err=True)
    write_output(result.text, target)
    if target is not None:
        click.echo(
            f"{target}: {len(result.services)} service(s) wired: "
            + ", ".join(result.services),
            err=True,
        )
