"""Generated pods: the patch always applies, always validates, and is idempotent.

Containers and volumes with webid-agent's reserved names are generated both as
left by an earlier injection (image, subcommand and token mount of ours; a
volume of our kind) and as the user's own; a pod holding one of the user's own
is refused, naming it, and any other pod is patched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import TOKEN_DIR, InputError
from injectors.kubernetes.options import InjectorConfig
from injectors.kubernetes.patch import plan_pod

NAMES = ["app", "web", "sidecar", "migrate", "webid-agent", "webid-init", "x1"]
ENV_NAMES = [
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_REGION",
    "FOO",
]
MODES = [None, "web-identity", "credentials-endpoint"]
VOLUMES = ["data", "cache", "webid-token", "webid-client"]
RESERVED = {"webid-init": "token", "webid-agent": "run"}
# the kind of source each reserved volume has when it is ours
VOLUME_KINDS = {"webid-token": "emptyDir", "webid-client": "secret"}
PATHS = ["/data", "/cache", TOKEN_DIR, "/var/run/secrets", "/tmp/x"]
SETTINGS = [
    InjectorConfig(authority="https://idp.example/t1"),
    InjectorConfig(authority="https://idp.example/t1", native_sidecar="always"),
    InjectorConfig(
        authority="https://idp.example/t1", ca_configmap="ca", client_auth="certificate"
    ),
]


@st.composite
def containers(draw: st.DrawFn, names: list[str], volumes: list[str]) -> list[Any]:
    result = []
    for name in names:
        container: dict[str, Any] = {"name": name, "image": f"registry.example/{name}"}
        if name in RESERVED and draw(st.booleans()):
            # left by an earlier injection (registry and tag of another version)
            container["image"] = "registry.example/webid-agent:0.0.9"
            container["args"] = [RESERVED[name]]
            container["volumeMounts"] = [
                {"name": "webid-token", "mountPath": TOKEN_DIR}
            ]
            result.append(container)
            continue
        env_names = draw(st.lists(st.sampled_from(ENV_NAMES), unique=True))
        env_style = draw(st.sampled_from(["missing", "null", "list"]))
        if env_style == "null":
            container["env"] = None
        elif env_style == "list":
            container["env"] = [
                {"name": n, "value": draw(st.text(max_size=5))} for n in env_names
            ]
        if volumes and draw(st.booleans()):
            paths = draw(st.lists(st.sampled_from(PATHS), unique=True, max_size=3))
            container["volumeMounts"] = [
                {"name": draw(st.sampled_from(volumes)), "mountPath": path}
                for path in paths
            ]
        if draw(st.booleans()):
            container["ports"] = [{"containerPort": draw(st.integers(1, 65535))}]
        result.append(container)
    return result


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=1, max_size=5))
    split = draw(st.integers(0, len(names) - 1))
    volumes = draw(st.lists(st.sampled_from(VOLUMES), unique=True))
    spec: dict[str, Any] = {
        "containers": draw(containers(names[split:], volumes)),
    }
    if split:
        inits = draw(containers(names[:split], volumes))
        for init in inits:
            if draw(st.booleans()):
                init["restartPolicy"] = "Always"
        spec["initContainers"] = inits
    elif draw(st.booleans()):
        spec["initContainers"] = None
    if volumes:
        kinds = [
            VOLUME_KINDS[v] if v in VOLUME_KINDS and draw(st.booleans()) else "emptyDir"
            for v in volumes
        ]
        spec["volumes"] = [
            {"name": v, kind: {"secretName": "s"} if kind == "secret" else {}}
            for v, kind in zip(volumes, kinds, strict=True)
        ]
    if draw(st.booleans()):
        spec["securityContext"] = {"fsGroup": draw(st.integers(1, 65535))}
    annotations = {
        "webid-agent.io/inject": "true",
        "webid-agent.io/role-arn": "arn:aws:iam::111122223333:role/gen",
    }
    skipped = draw(st.lists(st.sampled_from(names), unique=True, max_size=2))
    if skipped:
        annotations["webid-agent.io/skip-containers"] = ",".join(skipped)
    if draw(st.booleans()):
        annotations["webid-agent.io/region"] = "eu-central-1"
    mode = draw(st.sampled_from(MODES))
    if mode:
        annotations["webid-agent.io/mode"] = mode
    metadata: dict[str, Any] = {"name": "gen", "annotations": annotations}
    if draw(st.booleans()):
        metadata["annotations"]["webid-agent.io/injected"] = "true"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _foreign(pod: dict[str, Any]) -> list[str]:
    """Pointers to the name of every reserved-name container or volume not ours."""
    spec = pod["spec"]
    found = []
    for key in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(key) or []):
            name = container["name"]
            if name not in RESERVED:
                continue
            ours = container.get("args") == [RESERVED[name]]
            placed = key == "initContainers" or name == "webid-agent"
            if not (ours and placed):
                found.append(f"/spec/{key}/{index}/name")
    for index, volume in enumerate(spec.get("volumes") or []):
        kind = VOLUME_KINDS.get(volume["name"])
        if kind is not None and kind not in volume:
            found.append(f"/spec/volumes/{index}/name")
    return found


def _named(pod: dict[str, Any], pointer: str) -> str:
    """The name at a ``/spec/LIST/N/name`` pointer."""
    _, _, key, index, _ = pointer.split("/")
    name = pod["spec"][key][int(index)]["name"]
    assert isinstance(name, str)
    return name


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(pod=pods(), which=st.integers(0, len(SETTINGS) - 1))
def test_patch_applies_validates_and_is_idempotent(
    pod: dict[str, Any],
    which: int,
    apply_ops: Callable[[dict[str, Any], list[Any]], dict[str, Any]],
    validate_pod: Callable[..., None],
) -> None:
    config = SETTINGS[which]
    foreign = _foreign(pod)
    if foreign:
        with pytest.raises(InputError) as refused:
            plan_pod(pod, config=config)
        assert refused.value.where in foreign
        assert repr(_named(pod, refused.value.where)) in refused.value.message
        return
    first = plan_pod(pod, config=config)
    assert first.patch_json() == json.dumps(first.ops, separators=(",", ":"))
    patched = apply_ops(pod, first.ops)
    native = any(
        c.get("restartPolicy") == "Always"
        for c in patched["spec"].get("initContainers") or []
    )
    validate_pod(patched, native=native, original=pod)

    # patching twice equals patching once
    second = plan_pod(patched, config=config)
    assert second.ops == []
    assert apply_ops(patched, second.ops) == patched

    # nothing duplicated, every container name unique
    spec = patched["spec"]
    everything = (spec.get("initContainers") or []) + spec["containers"]
    names = [c["name"] for c in everything]
    assert len(names) == len(set(names))
    for container in everything:
        env = [e["name"] for e in container.get("env") or []]
        assert len(env) == len(set(env))
        paths = [m["mountPath"] for m in container.get("volumeMounts") or []]
        assert len(paths) == len(set(paths))
    volumes = [v["name"] for v in spec.get("volumes") or []]
    assert len(volumes) == len(set(volumes))

    # the mode decides which pair a container gets (unless it set it itself)
    endpoint = pod["metadata"]["annotations"].get("webid-agent.io/mode") == MODES[2]
    wanted = (
        "AWS_CONTAINER_CREDENTIALS_FULL_URI"
        if endpoint
        else "AWS_WEB_IDENTITY_TOKEN_FILE"
    )
    unwanted = (
        "AWS_WEB_IDENTITY_TOKEN_FILE"
        if endpoint
        else "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
    )
    skipped = pod["metadata"]["annotations"].get("webid-agent.io/skip-containers", "")
    before = {
        c["name"]: {e["name"] for e in c.get("env") or []}
        for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]
    }
    for container in everything:
        name = container["name"]
        if name in ("webid-agent", "webid-init") or name in skipped.split(","):
            continue
        env = {e["name"] for e in container.get("env") or []}
        assert wanted in env
        assert (unwanted in env) == (unwanted in before[name])
