"""Registration of the Nomad injector: ``webid-agent inject nomad``.

This module only declares the command line; the parsing, rewriting and API
code is imported when the command runs, so listing commands stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from agent import InjectorPlugin, __version__, config_default, output_options

__all__ = ["PLUGIN", "inject_nomad"]

_IDP_OPTIONS = (
    ("--provider", "IdP kind the agent talks to (oidc or entra).", "oidc"),
    ("--authority", "IdP issuer / Entra authority URL (https).", None),
    ("--tenant-id", "Entra tenant.", None),
    ("--client-id", "OAuth client id (else read from the secret store).", None),
    ("--scope", "Scope(s) to request, space separated.", None),
    ("--audience", "Token audience (e.g. sts.amazonaws.com).", None),
    ("--issuer", "Expected iss claim, if not the discovered one.", None),
    ("--ca-bundle", "CA bundle path as seen by the agent task.", None),
)


def _idp_options(func: Any) -> Any:
    for flag, help_text, fallback in reversed(_IDP_OPTIONS):
        name = flag.lstrip("-").replace("-", "_")
        func = click.option(
            flag,
            envvar=f"WEBID_{name.upper()}",
            show_envvar=True,
            default=config_default(name, fallback),
            help=help_text,
        )(func)
    return func


_NOMAD_OPTIONS = (
    ("--nomad-addr", "NOMAD_ADDR", "Nomad HTTP API address."),
    ("--nomad-token", "NOMAD_TOKEN", "Nomad ACL token."),
    ("--nomad-namespace", "NOMAD_NAMESPACE", "Nomad namespace."),
    ("--nomad-region", "NOMAD_REGION", "Nomad region."),
    ("--nomad-ca-cert", "NOMAD_CACERT", "CA file verifying the Nomad server."),
    ("--nomad-client-cert", "NOMAD_CLIENT_CERT", "Client certificate for Nomad."),
    ("--nomad-client-key", "NOMAD_CLIENT_KEY", "Key of the client certificate."),
)


def _nomad_options(func: Any) -> Any:
    for flag, envvar, help_text in reversed(_NOMAD_OPTIONS):
        func = click.option(flag, envvar=envvar, show_envvar=True, help=help_text)(func)
    return click.option(
        "--nomad-skip-verify",
        is_flag=True,
        envvar="NOMAD_SKIP_VERIFY",
        show_envvar=True,
        help="Do not verify Nomad's TLS certificate.",
    )(func)


@click.command("nomad")
@click.argument(
    "jobfile", required=False, type=click.Path(dir_okay=False, path_type=Path)
)
@output_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["hcl", "json"]),
    help="Output form (default: the input's). HCL to JSON needs the Nomad API:"
    " the file is sent to Nomad's parse endpoint at --nomad-addr/NOMAD_ADDR"
    " (default http://127.0.0.1:4646).",
)
@click.option(
    "--role-arn",
    default=config_default("role_arn"),
    help="Role for every group (a group's meta webid_role_arn wins).",
)
@click.option("--group", "groups", multiple=True, help="Only these groups.")
@click.option(
    "--mode",
    type=click.Choice(["web-identity", "credentials-endpoint"]),
    default=config_default("mode", "web-identity"),
    show_default="web-identity",
    help="How tasks get credentials: the token file, or the container-credentials"
    " endpoint (needs network mode bridge); a group's meta webid_mode wins.",
)
@click.option(
    "--image",
    default=config_default("image", f"webid-agent:{__version__}"),
    show_default=f"webid-agent:{__version__}",
    help="Agent image (docker driver).",
)
@click.option(
    "--driver",
    type=click.Choice(["docker", "exec", "raw_exec"]),
    default=config_default("driver", "docker"),
    show_default="docker",
    help="Driver of the agent tasks.",
)
@click.option(
    "--agent-command",
    default=config_default("agent_command", "webid-agent"),
    show_default="webid-agent",
    help="Agent executable (exec/raw_exec).",
)
@click.option("--cpu", type=int, default=config_default("cpu", 50), show_default="50")
@click.option(
    "--memory", type=int, default=config_default("memory", 128), show_default="128"
)
@click.option(
    "--deadline",
    type=int,
    default=config_default("deadline", 60),
    show_default="60",
    help="Seconds the prestart task tries for the first token.",
)
@click.option(
    "--listen",
    default=config_default("listen"),
    help="Sidecar health address ('off' disables; off by default for exec drivers).",
)
@click.option(
    "--variable-path",
    default=config_default("variable_path"),
    help="Nomad Variable with the client secret [nomad/jobs/JOB/GROUP].",
)
@click.option(
    "--vault-path",
    default=config_default("vault_path"),
    help="Vault secret with the client secret, instead of a Nomad Variable.",
)
@click.option(
    "--vault-kv-version",
    type=click.Choice(["1", "2"]),
    default="2",
    show_default=True,
)
@click.option("--vault-role", default=config_default("vault_role"))
@click.option("--vault-policy", "vault_policies", multiple=True)
@_idp_options
@click.option("--session-name", default=config_default("session_name"))
@click.option(
    "--region",
    envvar="WEBID_REGION",
    show_envvar=True,
    default=config_default("region"),
    help="AWS_REGION and AWS_DEFAULT_REGION for the tasks (and the sidecar's STS"
    " region in credentials-endpoint mode).",
)
# the name before --region (as in the docker and compose injectors)
@click.option("--aws-region", hidden=True, default=config_default("aws_region"))
@click.option(
    "--templates",
    type=click.Path(file_okay=False, path_type=Path),
    default=config_default("templates"),
    help="Folder overriding templates/nomad.",
)
@click.option("--plan", "plan", is_flag=True, help="Show Nomad's plan of the result.")
@click.option("--submit", is_flag=True, help="Plan, then register the result.")
@click.option("--job-id", help="Inject a registered job instead of a file.")
@_nomad_options
def inject_nomad(**options: Any) -> None:
    """Rewrite a Nomad job so its tasks get AWS credentials from your IdP.

    A group is injected when its meta has webid_role_arn (or for every group
    with --role-arn): a prestart task writes the first token, a prestart
    sidecar keeps it fresh, and every other task gets AWS_ROLE_ARN and
    AWS_WEB_IDENTITY_TOKEN_FILE. The client secret is read from a Nomad
    Variable (or Vault) at run time, never written into the job.

    \b
    Examples:
      webid-agent inject nomad job.nomad.hcl --authority https://idp.example \\
          --audience sts.amazonaws.com -o job.injected.hcl
      NOMAD_ADDR=https://nomad:4646 webid-agent inject nomad job.nomad.hcl --plan
      webid-agent inject nomad --job-id storefront --submit
    """
    from .command import execute
    from .options import IdpConfig, InjectConfig, SecretSource

    o = options
    if o["region"] and o["aws_region"] and o["region"] != o["aws_region"]:
        raise click.UsageError(
            "--aws-region is the old name of --region; give one of them"
        )
    if o["variable_path"] and o["vault_path"]:
        raise click.UsageError("give --variable-path or --vault-path, not both")
    secret = SecretSource(
        kind="vault" if o["vault_path"] else "nomad",
        path=o["vault_path"] or o["variable_path"],
        vault_kv_version=int(o["vault_kv_version"]),
        vault_role=o["vault_role"],
        vault_policies=tuple(o["vault_policies"]),
    )
    idp = IdpConfig(
        provider=o["provider"],
        authority=o["authority"] or "",
        tenant_id=o["tenant_id"],
        client_id=o["client_id"],
        scope=o["scope"],
        audience=o["audience"],
        issuer=o["issuer"],
        ca_bundle=o["ca_bundle"],
    )
    config = InjectConfig(
        idp=idp,
        secret=secret,
        role_arn=o["role_arn"],
        groups=tuple(o["groups"]),
        image=o["image"],
        driver=o["driver"],
        agent_command=o["agent_command"],
        cpu=int(o["cpu"]),
        memory=int(o["memory"]),
        deadline=int(o["deadline"]),
        listen=o["listen"],
        session_name=o["session_name"],
        region=o["region"] or o["aws_region"],
        templates_dir=o["templates"],
        mode=o["mode"],
    )
    execute(_request(o), config)


def _request(o: dict[str, Any]) -> Any:
    from .api import NomadSettings
    from .command import Mode, Request

    mode: Mode = "local"
    if o["submit"]:
        mode = "submit"
    elif o["plan"] or o["job_id"]:
        mode = "plan"
    return Request(
        jobfile=o["jobfile"],
        output=o["output"],
        in_place=o["in_place"],
        fmt=o["fmt"],
        mode=mode,
        job_id=o["job_id"],
        nomad=NomadSettings(
            address=o["nomad_addr"],
            token=o["nomad_token"],
            namespace=o["nomad_namespace"],
            region=o["nomad_region"],
            ca_cert=o["nomad_ca_cert"],
            client_cert=o["nomad_client_cert"],
            client_key=o["nomad_client_key"],
            skip_verify=o["nomad_skip_verify"],
        ),
    )


PLUGIN = InjectorPlugin(
    name="nomad",
    summary="rewrite a Nomad job (HCL or JSON) so its tasks get AWS credentials",
    inject=inject_nomad,
)
