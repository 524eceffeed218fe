"""``webid-agent aws trust-policy``: the IAM side of a role, printed as JSON.

IAM trusts an external IdP through two objects: an *OIDC provider* (the
issuer URL and the audiences it accepts, called the client id list) and a
*role trust policy* naming that provider as a ``Federated`` principal, with
conditions on the token's ``aud`` and ``sub``. The ``sub`` condition is what
keeps one client of a shared IdP from assuming another team's role.

IAM compares the token's ``iss`` with the provider URL exactly, trailing
slash included, and names its condition keys after the URL without its
scheme: ``sts.windows.net/TENANT/:aud``. This module builds both objects from
the issuer as the token carries it; Entra's v1 and v2 issuer forms are
derived from the tenant.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import click

from agent.errors import UsageError

__all__ = [
    "ENTRA_ISSUERS",
    "PolicyRequest",
    "build",
    "condition_prefix",
    "entra_issuers",
    "provider_arn",
    "trust_policy",
]

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")

# Entra issues v1 tokens (sts.windows.net) unless the app manifest sets
# accessTokenAcceptedVersion to 2; both forms name the tenant by its GUID.
ENTRA_ISSUERS = {
    "v1": "https://sts.windows.net/{tenant}/",
    "v2": "https://login.microsoftonline.com/{tenant}/v2.0",
}

_ACCOUNT = re.compile(r"^\d{12}$")
_TENANT = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class PolicyRequest:
    """What the trust policy is for; checked by :func:`build`."""

    issuers: tuple[str, ...]
    audiences: tuple[str, ...]
    subjects: tuple[str, ...]
    account_id: str
    partition: str = "aws"
    sid: str = "WebIdAgent"


def condition_prefix(issuer: str) -> str:
    """The IAM name of an issuer: its URL without ``https://``, kept exactly."""
    return issuer.removeprefix("https://")


def provider_arn(issuer: str, *, account_id: str, partition: str = "aws") -> str:
    """ARN of the IAM OIDC provider for ``issuer`` in ``account_id``."""
    return f"arn:{partition}:iam::{account_id}:oidc-provider/{condition_prefix(issuer)}"


def entra_issuers(tenant: str, version: str) -> tuple[str, ...]:
    """The Entra issuer URL(s) for a tenant GUID: ``v1``, ``v2`` or ``both``."""
    if not _TENANT.match(tenant):
        raise UsageError(
            f"expected the tenant id as a GUID, got {tenant!r} (tokens carry the"
            " GUID in iss even when the tenant is named by a domain)",
            where="--entra-tenant",
        )
    versions = ("v1", "v2") if version == "both" else (version,)
    return tuple(ENTRA_ISSUERS[v].format(tenant=tenant.lower()) for v in versions)


def _check_issuer(issuer: str) -> None:
    parts = urlsplit(issuer)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(
            f"issuer must be an https:// URL, got {issuer!r}", where="--issuer"
        )
    if parts.query or parts.fragment:
        raise UsageError(
            f"issuer must not have a query or fragment, got {issuer!r}",
            where="--issuer",
        )


def _one_or_list(values: tuple[str, ...]) -> str | list[str]:
    return values[0] if len(values) == 1 else list(values)


def build(request: PolicyRequest) -> dict[str, Any]:
    """The trust policy document and the OIDC provider settings, as one dict."""

    # check the inputs
    if not _ACCOUNT.match(request.account_id):
        raise UsageError(
            f"expected a 12-digit AWS account id, got {request.account_id!r}",
            where="--account-id",
        )
    if request.partition not in PARTITIONS:
        raise UsageError(
            f"unknown partition {request.partition!r}", where="--partition"
        )
    if not request.issuers:
        raise UsageError("give --issuer or --entra-tenant", where="--issuer")
    for issuer in request.issuers:
        _check_issuer(issuer)
    if not request.audiences or not all(a.strip() for a in request.audiences):
        raise UsageError(
            "at least one non-empty audience is needed", where="--audience"
        )
    if not all(s.strip() for s in request.subjects):
        raise UsageError("a subject must not be empty", where="--subject")

    # one statement per issuer: condition keys are named after the provider
    statements: list[dict[str, Any]] = []
    providers: list[dict[str, Any]] = []
    for index, issuer in enumerate(request.issuers):
        prefix = condition_prefix(issuer)
        arn = provider_arn(
            issuer, account_id=request.account_id, partition=request.partition
        )
        equals: dict[str, Any] = {f"{prefix}:aud": _one_or_list(request.audiences)}
        if request.subjects:
            equals[f"{prefix}:sub"] = _one_or_list(request.subjects)
        sid = request.sid if len(request.issuers) == 1 else f"{request.sid}{index + 1}"
        statements.append(
            {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"Federated": arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": equals},
            }
        )
        providers.append(
            {
                "Arn": arn,
                "Url": prefix,
                "IssuerUrl": issuer,
                "ClientIDList": list(request.audiences),
            }
        )
    return {
        "TrustPolicy": {"Version": "2012-10-17", "Statement": statements},
        "OpenIDConnectProviders": providers,
    }


@click.command("trust-policy")
@click.option(
    "--issuer",
    "issuers",
    multiple=True,
    metavar="URL",
    help="The token's iss exactly as the IdP writes it (repeatable).",
)
@click.option(
    "--audience",
    "audiences",
    multiple=True,
    metavar="AUD",
    help="An accepted aud value; also the provider's client id list (repeatable).",
)
@click.option(
    "--account-id",
    required=True,
    envvar="WEBID_ACCOUNT_ID",
    show_envvar=True,
    help="The 12-digit AWS account that owns the role.",
)
@click.option(
    "--subject",
    "subjects",
    multiple=True,
    metavar="SUB",
    help="An accepted sub: the client id, or for Entra the service principal's"
    " object id (repeatable).",
)
@click.option(
    "--any-subject",
    is_flag=True,
    help="Leave sub unchecked: every client of the IdP with the audience may"
    " assume the role.",
)
@click.option(
    "--entra-tenant",
    metavar="GUID",
    help="Derive the issuer(s) from an Entra tenant id instead of --issuer.",
)
@click.option(
    "--entra-version",
    type=click.Choice(["v1", "v2", "both"]),
    default="v2",
    show_default=True,
    help="Which Entra token version(s) to trust (v1: sts.windows.net).",
)
@click.option(
    "--partition",
    type=click.Choice(PARTITIONS),
    default="aws",
    show_default=True,
)
@click.option(
    "--policy-only",
    is_flag=True,
    help="Print only the trust policy document (for create-role).",
)
def trust_policy(
    *,
    issuers: tuple[str, ...],
    audiences: tuple[str, ...],
    account_id: str,
    subjects: tuple[str, ...],
    any_subject: bool,
    entra_tenant: str | None,
    entra_version: str,
    partition: str,
    policy_only: bool,
) -> None:
    """Print the IAM role trust policy and OIDC provider settings as JSON.

    The policy lets the IdP's tokens assume the role only when their aud is
    one of --audience and their sub one of --subject.

    \b
    Examples:
      webid-agent aws trust-policy --issuer https://idp.example/tenant1 \\
          --audience sts.amazonaws.com --subject my-client --account-id 111122223333
      webid-agent aws trust-policy --entra-tenant TENANT-GUID --entra-version both \\
          --audience api://webid --subject SP-OBJECT-ID --account-id 111122223333
      webid-agent aws trust-policy ... --policy-only > trust.json
      aws iam create-role --role-name app --assume-role-policy-document file://trust.json
    """
    if entra_tenant and issuers:
        raise UsageError(
            "give either --issuer or --entra-tenant, not both", where="--entra-tenant"
        )
    if not subjects and not any_subject:
        raise UsageError(
            "no --subject: any client of this IdP holding the audience could assume"
            " the role; give --subject (or --any-subject to accept that)",
            where="--subject",
        )
    if subjects and any_subject:
        raise UsageError("--subject and --any-subject exclude each other")
    if entra_tenant:
        issuers = entra_issuers(entra_tenant, entra_version)
    for issuer in issuers:
        if urlsplit(issuer).port is not None:
            # local test IdPs have ports; real AWS IAM refuses them
            click.echo(
                f"webid-agent: warning: --issuer {issuer}: AWS IAM does not accept"
                " a port in an OIDC provider URL",
                err=True,
            )
    result = build(
        PolicyRequest(
            issuers=issuers,
            audiences=audiences,
            subjects=subjects,
            account_id=account_id,
            partition=partition,
        )
    )
    click.echo(json.dumps(result["TrustPolicy"] if policy_only else result, indent=2))
