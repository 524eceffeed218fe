"""Credentials-endpoint mode: the workload gets the container-credentials pair.

The annotation ``webid-agent.io/mode: credentials-endpoint`` (or the same key
in the mapping file) swaps ``AWS_ROLE_ARN``/``AWS_WEB_IDENTITY_TOKEN_FILE`` for
``AWS_CONTAINER_CREDENTIALS_FULL_URI``/``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``
and turns the sidecar's ``run`` into ``run --serve-credentials``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent import TOKEN_DIR
from injectors.kubernetes.options import InjectorConfig, load_mapping
from injectors.kubernetes.patch import plan_pod
from tests.kubernetes.test_patch import CASES, assert_no_duplicates, by_name, env_of

Apply = Callable[[dict[str, Any], list[Any]], dict[str, Any]]
Load = Callable[[str], dict[str, Any]]
Validate = Callable[..., None]

MODE = "webid-agent.io/mode"
URI = "http://127.0.0.1:8082/v1/credentials"
AUTH_FILE = "/var/run/secrets/webid/credentials-auth-token"
ROLE = "arn:aws:iam::111122223333:role/bare"


def endpoint_pod(load_case: Load, name: str, **annotations: str) -> dict[str, Any]:
    pod = load_case(name)
    pod["metadata"]["annotations"].update({MODE: "credentials-endpoint"})
    pod["metadata"]["annotations"].update(
        {f"webid-agent.io/{k.replace('_', '-')}": v for k, v in annotations.items()}
    )
    return pod


def agent_containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = pod["spec"]
    return by_name((spec.get("initContainers") or []) + spec["containers"])


@pytest.mark.parametrize("native", [False, True], ids=["plain", "native"])
@pytest.mark.parametrize("case", CASES)
def test_every_case_in_endpoint_mode_validates_and_is_idempotent(
    case: str,
    native: bool,
    config: InjectorConfig,
    native_config: InjectorConfig,
    load_case: Load,
    apply_ops: Apply,
    validate_pod: Validate,
) -> None:
    settings = native_config if native else config
    pod = endpoint_pod(load_case, case)
    plan = plan_pod(pod, config=settings)
    assert plan.decision == "injected"
    assert plan.patch_json() == json.dumps(plan.ops, separators=(",", ":"))
    patched = apply_ops(pod, plan.ops)
    validate_pod(patched, native=native or "k09" in case, original=pod)
    assert_no_duplicates(patched)

    # workload containers: the endpoint pair, never the web identity pair
    # (unless the container set it itself), and the read-only token folder
    skip = {
        s.strip()
        for s in (
            pod["metadata"]["annotations"].get("webid-agent.io/skip-containers") or ""
        ).split(",")
    }
    originals = agent_containers(pod)
    for name, container in agent_containers(patched).items():
        if name in {"webid-init", "webid-agent"} | skip:
            continue
        env = env_of(container)
        own = env_of(originals[name])
        assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == own.get(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", URI
        )
        assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == AUTH_FILE
        for name_ in ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
            assert (name_ in env) == (name_ in own), (name, name_)
        mounts = [m for m in container["volumeMounts"] if m["mountPath"] == TOKEN_DIR]
        assert mounts == [
            {"name": "webid-token", "mountPath": TOKEN_DIR, "readOnly": True}
        ]

    # the agent serves the endpoint; the init container creates the auth file
    # (agent containers already there, as in k05, are left as they are)
    if "webid-agent" not in originals:
        sidecar = agent_containers(patched)["webid-agent"]
        assert env_of(sidecar)["WEBID_SERVE_CREDENTIALS"] == "true"
        init = agent_containers(patched)["webid-init"]
        assert env_of(init)["WEBID_CREDENTIALS_AUTH_TOKEN_FILE"] == AUTH_FILE

    # a second admission changes nothing
    again = plan_pod(patched, config=settings)
    assert again.ops == []


@pytest.mark.parametrize("native", [False, True], ids=["plain", "native"])
def test_exact_env_of_workload_sidecar_and_init(
    native: bool,
    config: InjectorConfig,
    native_config: InjectorConfig,
    load_case: Load,
    apply_ops: Apply,
) -> None:
    settings = native_config if native else config
    pod = endpoint_pod(
        load_case,
        "k07-bare-minimum.yaml",
        session_name="bare-app",
        region="eu-west-1",
    )
    patched = apply_ops(pod, plan_pod(pod, config=settings).ops)
    containers = agent_containers(patched)

    # the workload: the pair and the region variables, in this order
    assert containers["app"]["env"] == [
        {"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": URI},
        {"name": "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "value": AUTH_FILE},
        {"name": "AWS_REGION", "value": "eu-west-1"},
        {"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"},
        {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
    ]

    # the sidecar: the usual settings plus the endpoint's
    sidecar = env_of(containers["webid-agent"])
    assert sidecar == {
        "WEBID_PROVIDER": "oidc",
        "WEBID_AUTHORITY": "https://idp.example/tenant1",
        "WEBID_CLIENT_ID_FILE": "/var/run/secrets/webid-client/client-id",
        "WEBID_CLIENT_SECRET_FILE": "/var/run/secrets/webid-client/client-secret",
        "WEBID_AUDIENCE": "sts.amazonaws.com",
        "WEBID_TOKEN_FILE": "/var/run/secrets/webid/token",
        "WEBID_FILE_MODE": "0644",
        "WEBID_LISTEN": "0.0.0.0:18081",
        "WEBID_SERVE_CREDENTIALS": "true",
        "WEBID_ROLE_ARN": ROLE,
        "WEBID_CREDENTIALS_LISTEN": "127.0.0.1:8082",
        "WEBID_CREDENTIALS_AUTH_TOKEN_FILE": AUTH_FILE,
        "WEBID_SESSION_NAME": "bare-app",
        "WEBID_REGION": "eu-west-1",
    }
    assert containers["webid-agent"]["args"] == ["run"]

    # the init container: the auth token file too, none of the endpoint's
    init = env_of(containers["webid-init"])
    assert init["WEBID_CREDENTIALS_AUTH_TOKEN_FILE"] == AUTH_FILE
    assert "WEBID_SERVE_CREDENTIALS" not in init
    assert "WEBID_ROLE_ARN" not in init

    # a native sidecar holds the later containers back until credentials
    # are served; a plain one cannot, so it gets no startup probe
    probe = containers["webid-agent"].get("startupProbe")
    if native:
        assert probe["httpGet"] == {"path": "/readyz", "port": 18081}
    else:
        assert probe is None


def test_web_identity_mode_is_the_default_and_explicit(
    config: InjectorConfig, load_case: Load, apply_ops: Apply
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    default = apply_ops(pod, plan_pod(pod, config=config).ops)
    pod["metadata"]["annotations"][MODE] = "web-identity"
    explicit = apply_ops(pod, plan_pod(pod, config=config).ops)
    for patched in (default, explicit):
        env = env_of(agent_containers(patched)["app"])
        assert set(env) == {"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"}
        sidecar = env_of(agent_containers(patched)["webid-agent"])
        assert "WEBID_SERVE_CREDENTIALS" not in sidecar
        assert "startupProbe" not in agent_containers(patched)["webid-agent"]
    assert agent_containers(default) == agent_containers(explicit)


def test_own_endpoint_variable_wins_with_a_warning(
    config: InjectorConfig, load_case: Load, apply_ops: Apply
) -> None:
    pod = endpoint_pod(load_case, "k07-bare-minimum.yaml")
    own = "http://127.0.0.1:9999/creds"
    pod["spec"]["containers"][0]["env"] = [
        {"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": own}
    ]
    plan = plan_pod(pod, config=config)
    patched = apply_ops(pod, plan.ops)
    env = env_of(agent_containers(patched)["app"])
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == own
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == AUTH_FILE
    assert plan.warnings == [
        "container app: keeps its own AWS_CONTAINER_CREDENTIALS_FULL_URI"
        " (webid-agent would have set it)"
    ]


def test_mode_from_the_mapping_file_and_the_pod_wins(
    config: InjectorConfig, load_case: Load, apply_ops: Apply, tmp_path: Path
) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("namespaces:\n  default:\n    mode: credentials-endpoint\n")
    layers = load_mapping(path).layers("default", "default")
    pod = load_case("k07-bare-minimum.yaml")
    patched = apply_ops(pod, plan_pod(pod, config=config, layers=layers).ops)
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in env_of(
        patched["spec"]["containers"][0]
    )

    pod["metadata"]["annotations"][MODE] = "web-identity"
    patched = apply_ops(pod, plan_pod(pod, config=config, layers=layers).ops)
    assert "AWS_ROLE_ARN" in env_of(patched["spec"]["containers"][0])
