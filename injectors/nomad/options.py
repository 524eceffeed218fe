"""What to inject: the validated settings of one run and the template contexts.

:class:`InjectConfig` holds everything the command line decided (image,
driver, resources, IdP settings, where the client secret lives). For each
injected group :meth:`InjectConfig.group_context` builds the one dictionary
every template of ``templates/nomad/`` receives, so the HCL and JSON forms
can never disagree about names, paths or settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent import (
    DEFAULT_CREDENTIALS_LISTEN,
    ENV_ROLE_ARN,
    ENV_SESSION_NAME,
    ENV_TOKEN_FILE,
    NOMAD_AUTH_TOKEN_PATH,
    NOMAD_TOKEN_PATH,
    ROLE_ARN_PATTERN,
    ConfigError,
    InputError,
    SidecarSpec,
    WorkloadEnv,
    sidecar_env,
    workload_env,
)

__all__ = [
    "AGENT_TASK",
    "DRIVERS",
    "META_MODE_KEY",
    "META_ROLE_KEY",
    "MODES",
    "OWN_TASKS",
    "SECRET_FILE",
    "TOKEN_TASK",
    "GroupRole",
    "IdpConfig",
    "InjectConfig",
    "Mode",
    "SecretSource",
    "check_mode",
    "check_role_arn",
    "not_our_task",
    "own_task_clash",
]

# names and paths, not credentials (S105 would flag the words token/secret)
# ruff: noqa: S105
META_ROLE_KEY = "webid_role_arn"
META_MODE_KEY = "webid_mode"
# how workload tasks get credentials: the token file, or the container
# credentials endpoint the sidecar serves on the group's loopback
Mode = Literal["web-identity", "credentials-endpoint"]
MODES: tuple[Mode, ...] = ("web-identity", "credentials-endpoint")
# the agent variable that names the role (an HCL expression is written as is)
ENV_AGENT_ROLE_ARN = "WEBID_ROLE_ARN"
TOKEN_TASK = "webid-token"
AGENT_TASK = "webid-agent"
OWN_TASKS = (TOKEN_TASK, AGENT_TASK)
# how a task named like ours is recognised as one a previous run added: a
# prestart hook (sidecar only for the agent) and the agent's token file
# variable in its env; anything else named so is the user's and is refused
OWN_TASK_SIDECAR = {TOKEN_TASK: False, AGENT_TASK: True}
OWN_TASK_MARK = "WEBID_TOKEN_FILE"
DRIVERS = ("docker", "exec", "raw_exec")

# where the template blocks render the client credential, inside each task
SECRET_FILE = "secrets/client-secret"
CLIENT_ID_FILE = "secrets/client-id"
# the same files as the agent sees them (Nomad interpolates the variable)
SECRET_PATH_IN_TASK = "${NOMAD_SECRETS_DIR}/client-secret"
CLIENT_ID_PATH_IN_TASK = "${NOMAD_SECRETS_DIR}/client-id"

# Nomad Variable items and Vault fields holding the client credential
SECRET_ITEM = "webid_client_secret"
CLIENT_ID_ITEM = "webid_client_id"

# a secret path goes inside a quoted consul-template argument: no quotes,
# braces, spaces or interpolation characters
_SECRET_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/_.@-]*$")
_ROLE_ARN = re.compile(ROLE_ARN_PATTERN)
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_mode(value: str, *, where: str) -> Mode:
    """Return ``value`` if it names a mode, else raise naming ``where``."""
    for mode in MODES:
        if value == mode:
            return mode
    raise InputError(
        f"unknown mode {value!r} (expected one of: {', '.join(MODES)})", where=where
    )


def not_our_task(
    name: str, *, hook: str | None, sidecar: bool, env: set[str]
) -> str | None:
    """Why the task called ``name`` (one of ours) is not one we added, or None."""
    wanted = OWN_TASK_SIDECAR[name]
    if hook != "prestart" or sidecar != wanted:
        kind = "a prestart sidecar" if wanted else "a prestart task (not a sidecar)"
        return f"it is not {kind}"
    if OWN_TASK_MARK not in env:
        return f"its env has no {OWN_TASK_MARK}"
    return None


def own_task_clash(name: str, reason: str) -> str:
    """The error message for a user task that has one of our names."""
    return (
        f"a task is named {name!r}, which webid-agent adds, but {reason}, so it "
        "is not one webid-agent added; rename it"
    )


def check_role_arn(value: str, *, where: str) -> str:
    """Return ``value`` if it is an IAM role ARN, else raise naming ``where``."""
    if not _ROLE_ARN.match(value):
        raise InputError(f"not an IAM role ARN: {value!r}", where=where)
    return value


@dataclass(frozen=True)
class SecretSource:
    """Where the client credential is read from at run time.

    ``kind`` ``nomad`` reads a Nomad Variable (default path
    ``nomad/jobs/<job>/<group>``, readable by the group's tasks without any
    extra ACL policy); ``vault`` reads a Vault secret (KV v2 by default).
    """

    kind: Literal["nomad", "vault"] = "nomad"
    path: str | None = None
    vault_kv_version: int = 2
    vault_role: str | None = None
    vault_policies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "vault" and not self.path:
            raise ConfigError("a Vault secret needs a path", where="--vault-path")
        if self.path is not None and not _SECRET_PATH.match(self.path):
            option = "--vault-path" if self.kind == "vault" else "--variable-path"
            raise ConfigError(
                f"secret path {self.path!r} may only hold letters, digits and /_.@-",
                where=option,
            )

    def path_for(self, *, job_id: str, group: str) -> str:
        """The path for one group: the given one, or the group's own variable."""
        if self.path:
            return self.path
        for name, value in (("job", job_id), ("group", group)):
            if not _PLAIN_NAME.match(value):
                raise InputError(
                    f"{name} name {value!r} cannot form a Nomad Variable path; "
                    "give --variable-path",
                    where=f"{name} {value}",
                )
        return f"nomad/jobs/{job_id}/{group}"


@dataclass(frozen=True)
class IdpConfig:
    """Non-secret IdP settings handed to the agent tasks as ``WEBID_*``."""

    provider: str = "oidc"
    authority: str = ""
    tenant_id: str | None = None
    client_id: str | None = None
    scope: str | None = None
    audience: str | None = None
    issuer: str | None = None
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        if not self.authority:
            raise ConfigError(
                "the IdP authority (issuer URL) is required", where="--authority"
            )
        if not self.authority.startswith("https://"):
            raise ConfigError(
                f"authority must be an https URL, got {self.authority!r}",
                where="--authority",
            )
        for name in ("authority", "scope", "audience", "issuer", "ca_bundle"):
            value = getattr(self, name) or ""
            # Nomad would interpolate these inside the job; refuse, don't guess
            if "${" in value or "%{" in value:
                option = "--" + name.replace("_", "-")
                raise ConfigError("must not contain ${ or %{", where=option)


@dataclass(frozen=True)
class GroupRole:
    """The role of one group: a literal ARN, or an HCL expression as written."""

    value: str | None
    hcl: str | None = None


@dataclass(frozen=True)
class InjectConfig:
    """Everything one ``inject nomad`` run decided, validated."""

    idp: IdpConfig
    secret: SecretSource = field(default_factory=SecretSource)
    role_arn: str | None = None
    groups: tuple[str, ...] = ()
    image: str = "webid-agent"
    driver: str = "docker"
    agent_command: str = "webid-agent"
    cpu: int = 50
    memory: int = 128
    deadline: int = 60
    listen: str | None = None
    session_name: str | None = None
    region: str | None = None
    templates_dir: Path | None = None
    mode: Mode = "web-identity"

    def __post_init__(self) -> None:
        check_mode(self.mode, where="--mode")
        if self.driver not in DRIVERS:
            raise ConfigError(f"unknown driver {self.driver!r}", where="--driver")
        if self.role_arn is not None:
            check_role_arn(self.role_arn, where="--role-arn")
        for name, value in (("cpu", self.cpu), ("memory", self.memory)):
            if value <= 0:
                raise ConfigError("must be a positive number", where=f"--{name}")

    # -- what the agent tasks and the workload tasks get ------------------

    def agent_env(
        self, *, sidecar: bool, mode: Mode = "web-identity", role_arn: str = ""
    ) -> dict[str, str]:
        """``WEBID_*`` variables of the token task or of the sidecar task.

        In credentials-endpoint mode both create the endpoint's authorization
        token file (whichever starts first) and the sidecar also serves
        ``role_arn``'s credentials on the group's loopback.
        """
        idp = self.idp
        listen = self.listen
        if listen is None and self.driver != "docker":
            # exec/raw_exec share the host network: a fixed port would clash
            # between allocations on one client, so health serving is opt-in
            listen = "off"
        extra = {"WEBID_LISTEN": listen} if sidecar and listen is not None else {}
        if mode == "credentials-endpoint" and sidecar:
            extra.update(
                sidecar_env(
                    role_arn=role_arn,
                    listen=DEFAULT_CREDENTIALS_LISTEN,
                    auth_token_file=NOMAD_AUTH_TOKEN_PATH,
                    session_name=self.session_name,
                    region=self.region,
                )
            )
        elif mode == "credentials-endpoint":
            extra["WEBID_CREDENTIALS_AUTH_TOKEN_FILE"] = NOMAD_AUTH_TOKEN_PATH
        spec = SidecarSpec(
            provider=idp.provider,
            authority=idp.authority,
            tenant_id=idp.tenant_id,
            client_id=idp.client_id,
            client_id_file=None if idp.client_id else CLIENT_ID_PATH_IN_TASK,
            client_secret_file=SECRET_PATH_IN_TASK,
            scope=idp.scope,
            audience=idp.audience,
            issuer=idp.issuer,
            ca_bundle=idp.ca_bundle,
            token_file=NOMAD_TOKEN_PATH,
            extra_env=extra,
        )
        return spec.env()

    def workload_env(
        self, role_arn: str, *, mode: Mode = "web-identity"
    ) -> dict[str, str]:
        """The AWS variables every workload task gets.

        In credentials-endpoint mode: the container-credentials pair instead of
        the role, token file and session name (those go to the agent), plus
        the region variables.
        """
        env = WorkloadEnv(
            role_arn=role_arn,
            token_file=NOMAD_TOKEN_PATH,
            session_name=self.session_name,
            region=self.region,
        ).as_env()
        if mode == "web-identity":
            return env
        endpoint = workload_env(
            listen=DEFAULT_CREDENTIALS_LISTEN, auth_token_file=NOMAD_AUTH_TOKEN_PATH
        )
        agent_only = (ENV_ROLE_ARN, ENV_TOKEN_FILE, ENV_SESSION_NAME)
        endpoint.update({k: v for k, v in env.items() if k not in agent_only})
        return endpoint

    def group_context(
        self,
        *,
        job_id: str,
        group: str,
        role: GroupRole,
        mode: Mode = "web-identity",
    ) -> dict[str, Any]:
        """The context every ``templates/nomad`` template is rendered with.

        ``agent_env_hcl`` maps an agent variable to HCL source written as is
        (a role given as an expression in the group meta); every other value
        is a string literal.
        """
        secret = self.secret
        role_value = role.value or ""
        agent_env = self.agent_env(sidecar=True, mode=mode, role_arn=role_value)
        agent_env_hcl = {}
        if ENV_AGENT_ROLE_ARN in agent_env and role.value is None and role.hcl:
            agent_env_hcl[ENV_AGENT_ROLE_ARN] = role.hcl
        return {
            "job_id": job_id,
            "group": group,
            "token_task": TOKEN_TASK,
            "agent_task": AGENT_TASK,
            "driver": self.driver,
            "image": self.image,
            "agent_command": self.agent_command,
            "cpu": self.cpu,
            "memory": self.memory,
            "deadline": self.deadline,
            "token_env": self.agent_env(sidecar=False, mode=mode),
            "agent_env": agent_env,
            "agent_env_hcl": agent_env_hcl,
            "mode": mode,
            "secret": {
                "kind": secret.kind,
                "path": secret.path_for(job_id=job_id, group=group),
                "kv_version": secret.vault_kv_version,
                "vault_role": secret.vault_role,
                "vault_policies": list(secret.vault_policies),
                "secret_item": SECRET_ITEM,
                "client_id_item": None if self.idp.client_id else CLIENT_ID_ITEM,
                "secret_file": SECRET_FILE,
                "client_id_file": CLIENT_ID_FILE,
            },
            "role_arn": role.value,
            "role_arn_hcl": role.hcl,
        }
