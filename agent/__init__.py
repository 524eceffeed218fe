"""webid-agent: short-lived AWS credentials from an external OIDC identity provider.

The engine (this package) fetches a web identity token with client credentials,
keeps it fresh in a file and reports its health. It knows nothing about
orchestrators: the injector plugins in ``injectors`` wire it into Kubernetes,
Nomad and Docker using only the names exported here (the public API).

Names are imported on first use, so ``import agent`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # errors
    "WebIdError": "agent.errors",
    "UsageError": "agent.errors",
    "ConfigError": "agent.errors",
    "InputError": "agent.errors",
    "RuntimeFailure": "agent.errors",
    "IdpError": "agent.errors",
    "IdpUnavailable": "agent.errors",
    "TokenRejected": "agent.errors",
    "StsError": "agent.errors",
    "DockerFailure": "agent.errors",
    "TokenFileError": "agent.errors",
    # contract names
    "ANNOTATION_PREFIX": "agent.contract",
    "NOMAD_TOKEN_DIR": "agent.contract",
    "NOMAD_TOKEN_PATH": "agent.contract",
    "ROLE_ARN_PATTERN": "agent.contract",
    "TOKEN_DIR": "agent.contract",
    "TOKEN_FILENAME": "agent.contract",
    "TOKEN_PATH": "agent.contract",
    "ENV_ROLE_ARN": "agent.contract",
    "ENV_TOKEN_FILE": "agent.contract",
    "ENV_SESSION_NAME": "agent.contract",
    "ENV_REGION": "agent.contract",
    "ENV_CONTAINER_CREDENTIALS_FULL_URI": "agent.contract",
    "ENV_CONTAINER_AUTH_TOKEN_FILE": "agent.contract",
    "EnvMerge": "agent.contract",
    "WorkloadEnv": "agent.contract",
    "merge_env": "agent.contract",
    # container-credentials endpoint mode
    "AUTH_TOKEN_PATH": "agent.credentials_endpoint",
    "NOMAD_AUTH_TOKEN_PATH": "agent.credentials_endpoint",
    "DEFAULT_CREDENTIALS_LISTEN": "agent.credentials_endpoint",
    "credentials_uri": "agent.credentials_endpoint",
    "ensure_auth_token": "agent.credentials_endpoint",
    "sidecar_env": "agent.credentials_endpoint",
    "workload_env": "agent.credentials_endpoint",
    # plugins, templates, sidecar description
    "InjectorPlugin": "agent.plugins",
    "render": "agent.templating",
    "render_json": "agent.templating",
    "render_yaml": "agent.templating",
    "SidecarSpec": "agent.sidecar",
    # engine
    "Settings": "agent.config",
    "Secret": "agent.config",
    "config_default": "agent.config",
    "finite": "agent.config",
    "engine_options": "agent.config",
    "idp_options": "agent.config",
    "table_options": "agent.config",
    "settings_from_options": "agent.config",
    "Token": "agent.claims",
    "TokenEngine": "agent.engine",
    "write_atomic": "agent.tokenfile",
    "output_options": "agent.output",
    "output_target": "agent.output",
    "write_output": "agent.output",
    "read_input": "agent.output",
}

__all__ = [
    "__version__",
    "WebIdError",
    "UsageError",
    "ConfigError",
    "InputError",
    "RuntimeFailure",
    "IdpError",
    "IdpUnavailable",
    "TokenRejected",
    "StsError",
    "DockerFailure",
    "TokenFileError",
    "ANNOTATION_PREFIX",
    "NOMAD_TOKEN_DIR",
    "NOMAD_TOKEN_PATH",
    "ROLE_ARN_PATTERN",
    "TOKEN_DIR",
    "TOKEN_FILENAME",
    "TOKEN_PATH",
    "ENV_ROLE_ARN",
    "ENV_TOKEN_FILE",
    "ENV_SESSION_NAME",
    "ENV_REGION",
    "ENV_CONTAINER_CREDENTIALS_FULL_URI",
    "ENV_CONTAINER_AUTH_TOKEN_FILE",
    "EnvMerge",
    "WorkloadEnv",
    "merge_env",
    "AUTH_TOKEN_PATH",
    "NOMAD_AUTH_TOKEN_PATH",
    "DEFAULT_CREDENTIALS_LISTEN",
    "credentials_uri",
    "ensure_auth_token",
    "sidecar_env",
    "workload_env",
    "InjectorPlugin",
    "render",
    "render_json",
    "render_yaml",
    "SidecarSpec",
    "Settings",
    "Secret",
    "config_default",
    "finite",
    "engine_options",
    "idp_options",
    "table_options",
    "settings_from_options",
    "Token",
    "TokenEngine",
    "write_atomic",
    "output_options",
    "output_target",
    "write_output",
    "read_input",
]

if TYPE_CHECKING:
    from agent.claims import Token
    from agent.config import (
        Secret,
        Settings,
        config_default,
        engine_options,
        finite,
        idp_options,
        settings_from_options,
        table_options,
    )
    from agent.contract import (
        ANNOTATION_PREFIX,
        ENV_CONTAINER_AUTH_TOKEN_FILE,
        ENV_CONTAINER_CREDENTIALS_FULL_URI,
        ENV_REGION,
        ENV_ROLE_ARN,
        ENV_SESSION_NAME,
        ENV_TOKEN_FILE,
        NOMAD_TOKEN_DIR,
        NOMAD_TOKEN_PATH,
        ROLE_ARN_PATTERN,
        TOKEN_DIR,
        TOKEN_FILENAME,
        TOKEN_PATH,
        EnvMerge,
        WorkloadEnv,
        merge_env,
    )
    from agent.credentials_endpoint import (
        AUTH_TOKEN_PATH,
        DEFAULT_CREDENTIALS_LISTEN,
        NOMAD_AUTH_TOKEN_PATH,
        credentials_uri,
        ensure_auth_token,
        sidecar_env,
        workload_env,
    )
    from agent.engine import TokenEngine
    from agent.errors import (
        ConfigError,
        DockerFailure,
        IdpError,
        IdpUnavailable,
        InputError,
        RuntimeFailure,
        StsError,
        TokenFileError,
        TokenRejected,
        UsageError,
        WebIdError,
    )
    from agent.output import output_options, output_target, read_input, write_output
    from agent.plugins import InjectorPlugin
    from agent.sidecar import SidecarSpec
    from agent.templating import render, render_json, render_yaml
    from agent.tokenfile import write_atomic


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
