"""The pieces a patch adds, rendered from ``templates/kubernetes/``.

Rendering goes through the engine's :func:`agent.render_yaml`, so a user's
``--templates DIR`` overrides any piece. The result depends only on the
process settings, the pod's options and two facts about the pod (native
sidecar or not, fsGroup or not), so it is cached per distinct combination: a
cluster has few of them, and a cache hit costs a dictionary lookup instead of
a Jinja render and a YAML parse. Fragments are shared between requests and
must never be mutated (the patch builder only serializes them).
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from agent import (
    AUTH_TOKEN_PATH,
    DEFAULT_CREDENTIALS_LISTEN,
    ENV_ROLE_ARN,
    ENV_SESSION_NAME,
    ENV_TOKEN_FILE,
    TOKEN_DIR,
    TOKEN_PATH,
    ConfigError,
    SidecarSpec,
    WorkloadEnv,
    render_yaml,
    sidecar_env,
    workload_env,
)
from injectors.kubernetes.options import InjectorConfig, PodOptions

__all__ = [
    "CA_DIR",
    "CLIENT_DIR",
    "INIT_NAME",
    "SIDECAR_NAME",
    "TOKEN_VOLUME",
    "Fragments",
    "fragments",
]

log = logging.getLogger(__name__)

PLATFORM = "kubernetes"
INIT_NAME = "webid-init"
SIDECAR_NAME = "webid-agent"
TOKEN_VOLUME = "webid-token"  # noqa: S105 - a volume name
CLIENT_VOLUME = "webid-client"
CA_VOLUME = "webid-ca"
CLIENT_DIR = "/var/run/secrets/webid-client"
CA_DIR = "/etc/webid-agent/ca"

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Fragments:
    """Rendered pieces for one configuration; read-only by convention.

    ``encoded`` maps ``id(piece)`` to the piece's compact JSON, so a patch
    made of these pieces is serialized without encoding them again. Every
    piece is held by this object, so an id found here names that piece.
    """

    workload_env: tuple[JsonObject, ...]
    workload_mount: JsonObject
    init_container: JsonObject
    sidecar: JsonObject
    token_volume: JsonObject
    agent_volumes: tuple[JsonObject, ...]
    role_arn: str = ""
    encoded: dict[int, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        pieces = [
            *self.workload_env,
            self.workload_mount,
            self.init_container,
            self.sidecar,
            self.token_volume,
            *self.agent_volumes,
        ]
        for piece in pieces:
            self.encoded[id(piece)] = json.dumps(piece, separators=(",", ":"))


def _workload_env(pod: PodOptions) -> dict[str, str]:
    """The workload's variables: web identity, or the credentials endpoint.

    In credentials-endpoint mode the role, token file and session name are the
    agent's business; the workload keeps only the region variables.
    """
    web_identity = WorkloadEnv(
        role_arn=pod.role_arn,
        token_file=TOKEN_PATH,
        session_name=pod.session_name,
        region=pod.region,
        sts_regional_endpoints="regional" if pod.region else None,
    ).as_env()
    if pod.mode == "web-identity":
        return web_identity
    agent_only = (ENV_ROLE_ARN, ENV_TOKEN_FILE, ENV_SESSION_NAME)
    env = workload_env(
        listen=DEFAULT_CREDENTIALS_LISTEN, auth_token_file=AUTH_TOKEN_PATH
    )
    env.update({k: v for k, v in web_identity.items() if k not in agent_only})
    return env


def _agent_spec(
    config: InjectorConfig, pod: PodOptions, *, file_mode: str
) -> SidecarSpec:
    certificate = config.client_auth == "certificate"
    return SidecarSpec(
        provider=config.provider,
        authority=config.authority,
        tenant_id=config.tenant_id,
        client_id_file=f"{CLIENT_DIR}/client-id",
        client_secret_file=None if certificate else f"{CLIENT_DIR}/client-secret",
        client_cert_file=f"{CLIENT_DIR}/tls.crt" if certificate else None,
        client_key_file=f"{CLIENT_DIR}/tls.key" if certificate else None,
        scope=pod.scope,
        audience=pod.audience,
        issuer=config.issuer,
        ca_bundle=f"{CA_DIR}/ca.crt" if config.ca_configmap else None,
        token_file=TOKEN_PATH,
        file_mode=file_mode,
    )


def _named(value: Any, template: str) -> JsonObject:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ConfigError("must render one object with a name", where=template)
    return value


@functools.lru_cache(maxsize=512)
def fragments(
    config: InjectorConfig, pod: PodOptions, *, native: bool, fs_group: bool
) -> Fragments:
    """Render every piece for this configuration (cached)."""
    # the token file: group-readable when the pod has an fsGroup (the volume is
    # then group-owned by it and every container has it as a supplementary
    # group), world-readable otherwise so a workload of any uid can read it
    file_mode = "0640" if fs_group else "0644"
    spec = _agent_spec(config, pod, file_mode=file_mode)
    common: dict[str, Any] = {
        "image": config.image,
        "image_pull_policy": config.image_pull_policy,
        "token_volume": TOKEN_VOLUME,
        "token_dir": TOKEN_DIR,
        "token_path": TOKEN_PATH,
        "client_volume": CLIENT_VOLUME,
        "client_dir": CLIENT_DIR,
        "client_secret": pod.client_secret,
        "ca_volume": CA_VOLUME if config.ca_configmap else None,
        "ca_dir": CA_DIR,
        "ca_configmap": config.ca_configmap,
        "agent_port": config.agent_port,
        "deadline": config.token_deadline,
        "native": native,
    }
    tdir = config.templates_dir

    def one(template: str, /, **extra: Any) -> Any:
        context = {**common, **extra}
        return render_yaml(PLATFORM, template, context, templates_dir=tdir)

    # workload side: env entries and the read-only mount
    env = one("workload-env.yaml.j2", env=_workload_env(pod))
    if not isinstance(env, list):
        raise ConfigError("must render a list", where="workload-env.yaml.j2")
    env_entries = tuple(_named(entry, "workload-env.yaml.j2") for entry in env)

    # agent side: init container, sidecar, volumes; in credentials-endpoint
    # mode the init container also creates the endpoint's authorization token
    # file, so it exists before any workload container starts
    init_env = spec.env()
    agent_env = spec.with_paths(listen=f"0.0.0.0:{config.agent_port}").env()
    endpoint = pod.mode == "credentials-endpoint"
    if endpoint:
        serve = sidecar_env(
            role_arn=pod.role_arn,
            listen=DEFAULT_CREDENTIALS_LISTEN,
            auth_token_file=AUTH_TOKEN_PATH,
            session_name=pod.session_name,
            region=pod.region,
        )
        agent_env.update(serve)
        init_env["WEBID_CREDENTIALS_AUTH_TOKEN_FILE"] = AUTH_TOKEN_PATH
    agent_volumes = [one("client-volume.yaml.j2")]
    if config.ca_configmap:
        agent_volumes.append(one("ca-volume.yaml.j2"))
    result = Fragments(
        workload_env=env_entries,
        workload_mount=_named(one("workload-mount.yaml.j2"), "workload-mount.yaml.j2"),
        init_container=_named(
            one("init-container.yaml.j2", name=INIT_NAME, agent_env=init_env),
            "init-container.yaml.j2",
        ),
        sidecar=_named(
            one(
                "sidecar-container.yaml.j2",
                name=SIDECAR_NAME,
                agent_env=agent_env,
                credentials_endpoint=endpoint,
            ),
            "sidecar-container.yaml.j2",
        ),
        token_volume=_named(one("token-volume.yaml.j2"), "token-volume.yaml.j2"),
        agent_volumes=tuple(
            _named(volume, "client-volume.yaml.j2 / ca-volume.yaml.j2")
            for volume in agent_volumes
        ),
        role_arn=pod.role_arn,
    )
    log.debug(
        "rendered fragments for role %s (native=%s, mode=%s)",
        pod.role_arn,
        native,
        pod.mode,
    )
    return result
