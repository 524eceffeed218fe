"""The patch builder over a table of pod shapes: applied, validated, exact."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from agent import TOKEN_DIR, TOKEN_PATH, InputError
from injectors.kubernetes.options import MARKER_ANNOTATION, InjectorConfig
from injectors.kubernetes.patch import plan_pod

Apply = Callable[[dict[str, Any], list[Any]], dict[str, Any]]
Load = Callable[[str], dict[str, Any]]
Validate = Callable[..., None]

CASES = [
    "k01-init-container-needs-token.yaml",
    "k02-one-container-has-role.yaml",
    "k03-unknown-fields-survive.yaml",
    "k05-reinvoked-after-mesh.yaml",
    "k06-non-root-app.yaml",
    "k07-bare-minimum.yaml",
    "k08-deep-shapes.yaml",
    "k09-fsgroup-and-native.yaml",
    "k10-nulls-and-skip.yaml",
]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def by_name(items: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items or []}


def assert_no_duplicates(pod: dict[str, Any]) -> None:
    spec = pod["spec"]
    all_containers = (spec.get("initContainers") or []) + spec["containers"]
    names = [c["name"] for c in all_containers]
    assert len(names) == len(set(names)), names
    volumes = [v["name"] for v in spec.get("volumes") or []]
    assert len(volumes) == len(set(volumes)), volumes
    for container in all_containers:
        env = [e["name"] for e in container.get("env") or []]
        assert len(env) == len(set(env)), (container["name"], env)
        paths = [m["mountPath"] for m in container.get("volumeMounts") or []]
        assert len(paths) == len(set(paths)), (container["name"], paths)


@pytest.mark.parametrize("native", [False, True], ids=["plain", "native"])
@pytest.mark.parametrize("case", CASES)
def test_every_case_patches_validates_and_is_idempotent(
    case: str,
    native: bool,
    config: InjectorConfig,
    native_config: InjectorConfig,
    load_case: Load,
    apply_ops: Apply,
    validate_pod: Validate,
) -> None:
    settings = native_config if native else config
    pod = load_case(case)
    plan = plan_pod(pod, config=settings)
    assert plan.decision == "injected"
    assert all(op["op"] == "add" for op in plan.ops)
    # the memoized encoding is byte-for-byte what json.dumps writes
    assert plan.patch_json() == json.dumps(plan.ops, separators=(",", ":"))

    # applied by a real JSON Patch library, valid for the official schema
    patched = apply_ops(pod, plan.ops)
    validate_pod(patched, native=native or "k09" in case, original=pod)
    assert_no_duplicates(patched)
    assert patched["metadata"]["annotations"][MARKER_ANNOTATION] == "true"

    # the token init container comes first, the sidecar exists exactly once
    inits = patched["spec"]["initContainers"]
    assert inits[0]["name"] == "webid-init"
    sidecars = [
        c for c in inits + patched["spec"]["containers"] if c["name"] == "webid-agent"
    ]
    assert len(sidecars) == 1

    # every workload container has the token path and a read-only mount
    skip = set(
        (pod["metadata"]["annotations"].get("webid-agent.io/skip-containers") or "")
        .replace(" ", "")
        .split(",")
    )
    for container in inits + patched["spec"]["containers"]:
        if container["name"] in {"webid-init", "webid-agent"} | skip:
            continue
        assert "AWS_ROLE_ARN" in env_of(container), container["name"]
        assert "AWS_WEB_IDENTITY_TOKEN_FILE" in env_of(container), container["name"]
        mounts = [
            m
            for m in container.get("volumeMounts") or []
            if m["mountPath"] == TOKEN_DIR
        ]
        assert len(mounts) == 1 and mounts[0]["name"] == "webid-token"

    # a second admission of the patched pod changes nothing
    again = plan_pod(patched, config=settings)
    assert again.ops == []
    assert again.decision == "unchanged"


def test_k01_token_exists_before_the_user_init_container(
    config: InjectorConfig, load_case: Load, apply_ops: Apply
) -> None:
    pod = load_case("k01-init-container-needs-token.yaml")
    patched = apply_ops(pod, plan_pod(pod, config=config).ops)
    inits = patched["spec"]["initContainers"]
    assert [c["name"] for c in inits] == ["webid-init", "fetch"]
    fetch = inits[1]
    assert env_of(fetch) == {
        "AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/analytics-reader",
        "AWS_WEB_IDENTITY_TOKEN_FILE": TOKEN_PATH,
    }
    assert fetch["volumeMounts"] == [
        {"name": "data", "mountPath": "/data"},
        {"name": "webid-token", "mountPath": TOKEN_DIR, "readOnly": True},
    ]
    assert [c["name"] for c in patched["spec"]["containers"]] == [
        "api",
        "worker",
        "webid-agent",
    ]
    volumes = by_name(patched["spec"]["volumes"])
    assert list(volumes) == ["data", "webid-token", "webid-client"]
    assert volumes["webid-token"]["emptyDir"]["medium"] == "Memory"
    assert volumes["webid-client"]["secret"]["secretName"] == "analytics-idp-client"


def test_k01_native_sidecar_runs_before_user_init_containers(
    native_config: InjectorConfig, load_case: Load, apply_ops: Apply
) -> None:
    pod = load_case("k01-init-container-needs-token.yaml")
    patched = apply_ops(pod, plan_pod(pod, config=native_config).ops)
    inits = patched["spec"]["initContainers"]
    assert [c["name"] for c in inits] == ["webid-init", "webid-agent", "fetch"]
    assert inits[1]["restartPolicy"] == "Always"
    assert "restartPolicy" not in inits[0]
    assert [c["name"] for c in patched["spec"]["containers"]] == ["api", "worker"]


def test_k02_own_role_is_kept_but_token_is_wired(
    config: InjectorConfig, load_case: Load, apply_ops: Apply
) -> None:
    pod = load_case("k02-one-container-has-role.yaml")
    plan = plan_pod(pod, config=config)
    patched = apply_ops(pod, plan.ops)
    legacy, web = patched["spec"]["containers"][:2]
    assert legacy["env"] == [
        {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/shop-legacy"},
        {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": TOKEN_PATH},
    ]
    assert legacy["volumeMounts"][0]["mountPath"] == TOKEN_DIR
    assert env_of(web)["AWS_ROLE_ARN"] == "arn:aws:iam::111122223333:role/shop-web"
    assert plan.warnings == [
        "container legacy: keeps its own AWS_ROLE_ARN (webid-agent would have set it)"
    ]


def test_k03_unknown_fields_survive_untouched(
    config: InjectorConfig, load_case: Load, apply_ops: Apply
) -> None:
    pod = load_case("k03-unknown-fields-survive.yaml")
    original = copy.deepcopy(pod["spec"]["containers"][0])
    plan = plan_pod(pod, config=config)
    # no op replaces a container or a list of the pod: only new paths
    touched = {op["path"] for op in plan.ops}
    assert touched.isdisjoint({"/spec/containers/0", "/spec/containers", "/spec"})
    patched = apply_ops(pod, plan.ops)
    server = patched["spec"]["containers"][0]
    for key, value in original.items():
        assert server[key] == value
    assert set(server) - set(original) == {"env", "volumeMounts"}


def test_k03_future_field_survives(
    config: InjectorConfig, load_case: Load, apply_ops: Apply
) -> None:
    pod = load_case("k03-unknown-fields-survive.yaml")
    pod["spec"]["containers"][0]["someFutureField"] = {"nested": [1, 2]}
    pod["spec"]["futurePodField"] = True
    patched = apply_ops(pod, plan_pod(pod, config=config).ops)
    assert patched["spec"]["containers"][0]["someFutureField"] == {"nested": [1, 2]}
    assert patched["spec"]["futurePodField"] is True


@pytest.mark.parametrize("skip", [None, "mesh-proxy"])
def test_k05_reinvocation_only_wires_the_new_container(
    skip: str | None, config: InjectorConfig, load_case: Load, apply_ops: Apply
) -> None:
    pod = load_case("k05-reinvoked-after-mesh.yaml")
    if skip:
        pod["metadata"]["annotations"]["webid-agent.io/skip-containers"] = skip
    plan = plan_pod(pod, config=config)
    paths = [op["path"] for op in plan.ops]
    marker = "/metadata/annotations/webid-agent.io~1injected"
    if skip:
        assert paths == [marker]
    else:
        assert paths == [
            "/spec/containers/2/env",
            "/spec/containers/2/volumeMounts",
            marker,
        ]
    patched = apply_ops(pod, plan.ops)
    assert [c["name"] for c in patched["spec"]["containers"]] == [
        "orders",
        "webid-agent",
        "mesh-proxy",
    ]
    assert patched["spec"]["volumes"] == pod["spec"]["volumes"]


def test_k05_marker_is_not_needed_for_idempotence(
    config: InjectorConfig, load_case: Load, apply_ops: Apply
) -> None:
    pod = load_case("k05-reinvoked-after-mesh.yaml")
    pod["spec"]["containers"].pop()  # no mesh container, no marker
    plan = plan_pod(pod, config=config)
    assert [op["path"] for op in plan.ops] == [
        "/metadata/annotations/webid-agent.io~1injected"
    ]


@pytest.mark.parametrize(
    ("fs_group", "mode"),
    [(None, "0644"), (2000, "0640")],
    ids=["no-fsgroup", "fsgroup"],
)
def test_k06_non_root_app_can_read_the_token(
    fs_group: int | None,
    mode: str,
    config: InjectorConfig,
    load_case: Load,
    apply_ops: Apply,
) -> None:
    pod = load_case("k06-non-root-app.yaml")
    if fs_group is not None:
        pod["spec"]["securityContext"]["fsGroup"] = fs_group
    patched = apply_ops(pod, plan_pod(pod, config=config).ops)
    agents = [patched["spec"]["initContainers"][0], patched["spec"]["containers"][1]]
    for agent in agents:
        assert env_of(agent)["WEBID_FILE_MODE"] == mode
        assert agent["securityContext"]["runAsNonRoot"] is True
        assert agent["securityContext"]["runAsUser"] == 10001
    app = patched["spec"]["containers"][0]
    assert app["volumeMounts"] == [
        {"name": "webid-token", "mountPath": TOKEN_DIR, "readOnly": True}
    ]


def test_k07_missing_arrays_are_created_first(
    config: InjectorConfig, load_case: Load
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    plan = plan_pod(pod, config=config)
    assert [(op["path"], type(op["value"]).__name__) for op in plan.ops] == [
        ("/spec/containers/0/env", "list"),
        ("/spec/containers/0/volumeMounts", "list"),
        ("/spec/volumes", "list"),
        ("/spec/initContainers", "list"),
        ("/spec/containers/-", "dict"),
        ("/metadata/annotations/webid-agent.io~1injected", "str"),
    ]


def test_secrets_reach_the_agent_as_files_only(
    config: InjectorConfig, load_case: Load, apply_ops: Apply
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    patched = apply_ops(pod, plan_pod(pod, config=config).ops)
    app, sidecar = patched["spec"]["containers"]
    env = env_of(sidecar)
    assert (
        env["WEBID_CLIENT_SECRET_FILE"] == "/var/run/secrets/webid-client/client-secret"
    )
    assert env["WEBID_CLIENT_ID_FILE"] == "/var/run/secrets/webid-client/client-id"
    assert not any("valueFrom" in e for e in sidecar["env"])
    assert {m["name"] for m in sidecar["volumeMounts"]} == {
        "webid-token",
        "webid-client",
    }
    # the workload never sees the client credential
    assert {m["name"] for m in app["volumeMounts"]} == {"webid-token"}
    assert not any(name.startswith("WEBID_") for name in env_of(app))


def test_certificate_auth_and_ca_bundle(
    load_case: Load, apply_ops: Apply, validate_pod: Validate
) -> None:
    config = InjectorConfig(
        authority="https://idp.example/t1",
        client_auth="certificate",
        ca_configmap="idp-ca",
    ).validate()
    pod = load_case("k07-bare-minimum.yaml")
    patched = apply_ops(pod, plan_pod(pod, config=config).ops)
    validate_pod(patched)
    sidecar = patched["spec"]["containers"][1]
    env = env_of(sidecar)
    assert env["WEBID_CLIENT_CERT_FILE"].endswith("/tls.crt")
    assert env["WEBID_CLIENT_KEY_FILE"].endswith("/tls.key")
    assert "WEBID_CLIENT_SECRET_FILE" not in env
    assert env["WEBID_CA_BUNDLE"] == "/etc/webid-agent/ca/ca.crt"
    volumes = by_name(patched["spec"]["volumes"])
    assert volumes["webid-ca"]["configMap"]["name"] == "idp-ca"


def test_optional_annotations_reach_the_workload(
    config: InjectorConfig, load_case: Load, apply_ops: Apply
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    pod["metadata"]["annotations"].update(
        {
            "webid-agent.io/session-name": "bare-app",
            "webid-agent.io/region": "eu-west-1",
            "webid-agent.io/audience": "api://aws",
            "webid-agent.io/scope": "api://aws/.default",
        }
    )
    patched = apply_ops(pod, plan_pod(pod, config=config).ops)
    app, sidecar = patched["spec"]["containers"]
    assert [e["name"] for e in app["env"]] == [
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_SESSION_NAME",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_STS_REGIONAL_ENDPOINTS",
    ]
    assert env_of(app)["AWS_REGION"] == "eu-west-1"
    assert env_of(sidecar)["WEBID_AUDIENCE"] == "api://aws"
    assert env_of(sidecar)["WEBID_SCOPE"] == "api://aws/.default"


def test_templates_folder_overrides_one_template(
    tmp_path: Any, load_case: Load, apply_ops: Apply
) -> None:
    folder = tmp_path / "kubernetes"
    folder.mkdir()
    (folder / "token-volume.yaml.j2").write_text(
        "name: {{ token_volume | tojson }}\nemptyDir:\n  medium: Memory\n"
        "  sizeLimit: 2Mi\n"
    )
    config = InjectorConfig(authority="https://idp.example/t1", templates_dir=tmp_path)
    pod = load_case("k07-bare-minimum.yaml")
    patched = apply_ops(pod, plan_pod(pod, config=config).ops)
    volumes = by_name(patched["spec"]["volumes"])
    assert volumes["webid-token"]["emptyDir"]["sizeLimit"] == "2Mi"
    assert volumes["webid-client"]["secret"]["defaultMode"] == 0o444


@pytest.mark.parametrize(
    "annotations",
    [
        {},
        {"webid-agent.io/inject": "false", "webid-agent.io/role-arn": "garbage"},
        {"webid-agent.io/role-arn": "arn:aws:iam::111122223333:role/x"},
        {"other.io/inject": "true"},
    ],
)
def test_pod_not_opted_in_is_left_alone(
    annotations: dict[str, str], config: InjectorConfig, load_case: Load
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    pod["metadata"]["annotations"] = annotations
    plan = plan_pod(pod, config=config)
    assert plan.decision == "not-opted-in"
    assert plan.ops == []


def _ann(key: str) -> str:
    return f"/metadata/annotations/webid-agent.io~1{key}"


@pytest.mark.parametrize(
    ("key", "value", "where", "needle"),
    [
        ("inject", "yes", _ann("inject"), '"true" or "false"'),
        ("role-arn", "arn:aws:iam::1234:role/x", _ann("role-arn"), "not an IAM role"),
        ("role-arn", "arn:aws:s3:::bucket", _ann("role-arn"), "not an IAM role"),
        ("role-arn", None, _ann("role-arn"), "names no role"),
        ("skip-containers", "ok,Bad_Name", _ann("skip-containers"), "'Bad_Name'"),
        ("region", "mars", _ann("region"), "AWS region"),
        ("session-name", "x", _ann("session-name"), "session name"),
        ("client-secret", "Not_A_Name", _ann("client-secret"), "Secret name"),
        ("audience", "a\nb", _ann("audience"), "printable text"),
        ("native-sidecar", "maybe", _ann("native-sidecar"), '"true" or "false"'),
        ("mode", "Credentials-Endpoint", _ann("mode"), "expected one of"),
    ],
)
def test_bad_annotations_name_the_annotation(
    key: str,
    value: str | None,
    where: str,
    needle: str,
    config: InjectorConfig,
    load_case: Load,
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    annotations = pod["metadata"]["annotations"]
    if value is None:
        del annotations[f"webid-agent.io/{key}"]
    else:
        annotations[f"webid-agent.io/{key}"] = value
    with pytest.raises(InputError) as caught:
        plan_pod(pod, config=config)
    assert caught.value.where == where
    assert needle in caught.value.message


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda p: p.update(spec=[]), "/spec"),
        (lambda p: p["spec"].update(containers={}), "/spec/containers"),
        (lambda p: p["spec"].update(containers=[]), "/spec/containers"),
        (lambda p: p["spec"]["containers"].append("x"), "/spec/containers/1"),
        (lambda p: p["spec"]["containers"][0].pop("name"), "/spec/containers/0"),
        (
            lambda p: p["spec"]["containers"][0].update(env=[{"x": 1}]),
            "/spec/containers/0/env/0",
        ),
        (
            lambda p: p["spec"]["containers"][0].update(volumeMounts="x"),
            "/spec/containers/0/volumeMounts",
        ),
        (lambda p: p["metadata"].update(annotations=["x"]), "/metadata/annotations"),
    ],
)
def test_malformed_pods_name_the_pointer(
    mutate: Callable[[dict[str, Any]], None],
    where: str,
    config: InjectorConfig,
    load_case: Load,
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    mutate(pod)
    with pytest.raises(InputError) as caught:
        plan_pod(pod, config=config)
    assert caught.value.where == where


def test_native_sidecar_choice(config: InjectorConfig, load_case: Load) -> None:
    def sidecar_is_native(settings: InjectorConfig, pod: dict[str, Any]) -> bool:
        ops = plan_pod(pod, config=settings).ops
        return any(
            isinstance(op["value"], list)
            and any(c.get("restartPolicy") == "Always" for c in op["value"])
            for op in ops
            if op["path"] == "/spec/initContainers"
        )

    pod = load_case("k07-bare-minimum.yaml")
    assert not sidecar_is_native(config, pod)
    always = InjectorConfig(authority=config.authority, native_sidecar="always")
    assert sidecar_is_native(always, pod)
    asked = copy.deepcopy(pod)
    asked["metadata"]["annotations"]["webid-agent.io/native-sidecar"] = "true"
    assert sidecar_is_native(config, asked)
    never = InjectorConfig(authority=config.authority, native_sidecar="never")
    assert not sidecar_is_native(never, asked)
    new_cluster = InjectorConfig(authority=config.authority, kubernetes_version=(1, 30))
    assert sidecar_is_native(new_cluster, pod)
    old_cluster = InjectorConfig(authority=config.authority, kubernetes_version=(1, 21))
    assert not sidecar_is_native(old_cluster, pod)


def test_mount_path_clash_is_reported_not_duplicated(
    config: InjectorConfig, load_case: Load, apply_ops: Apply, validate_pod: Validate
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    pod["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "mine", "mountPath": TOKEN_DIR}
    ]
    pod["spec"]["volumes"] = [{"name": "mine", "emptyDir": {}}]
    plan = plan_pod(pod, config=config)
    patched = apply_ops(pod, plan.ops)
    validate_pod(patched)
    assert patched["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "mine", "mountPath": TOKEN_DIR}
    ]
    assert any("'mine' is mounted at" in w for w in plan.warnings)


def test_unknown_skip_container_is_a_warning(
    config: InjectorConfig, load_case: Load
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    pod["metadata"]["annotations"]["webid-agent.io/skip-containers"] = "nope"
    plan = plan_pod(pod, config=config)
    assert plan.decision == "injected"
    assert plan.warnings == ["skip-containers names no container 'nope'"]
