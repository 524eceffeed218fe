"""Reserved names: a user's container or volume named like ours is refused.

A container is ours when it has our image repository name, our subcommand as
first argument and the token volume mounted at the token folder (k05 is the
shape an earlier injection leaves); a volume is ours when it has our kind of
source. Anything else with one of our names would be skipped while the pod is
marked injected, so it is refused with a pointer to its name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import InputError
from injectors.kubernetes.options import InjectorConfig
from injectors.kubernetes.patch import plan_pod
from injectors.kubernetes.review import Reviewer

Load = Callable[[str], dict[str, Any]]
Apply = Callable[[dict[str, Any], list[Any]], dict[str, Any]]
Edit = Callable[[dict[str, Any]], None]
FLAGS = ["--authority", "https://idp.example/t1", "--audience", "sts.amazonaws.com"]


def _user_sidecar(spec: dict[str, Any]) -> None:
    spec["containers"].append({"name": "webid-agent", "image": "nginx:1.27"})


def _user_init(spec: dict[str, Any]) -> None:
    spec["initContainers"] = [{"name": "webid-init", "image": "busybox"}]


def _user_volume(spec: dict[str, Any]) -> None:
    spec["volumes"] = [{"name": "webid-token", "configMap": {"name": "x"}}]


# k05 (our containers from an earlier injection) edited one fact at a time
def _k05_image(spec: dict[str, Any]) -> None:
    spec["containers"][1]["image"] = "registry.example/my-agent:0.1.0"


def _k05_args(spec: dict[str, Any]) -> None:
    spec["initContainers"][0]["args"] = ["serve"]


def _k05_no_args(spec: dict[str, Any]) -> None:
    del spec["containers"][1]["args"]


def _k05_mount(spec: dict[str, Any]) -> None:
    spec["containers"][1]["volumeMounts"][0]["mountPath"] = "/tmp"


def _k05_init_among_containers(spec: dict[str, Any]) -> None:
    spec["containers"].append(spec["initContainers"].pop())


def _k05_client_volume(spec: dict[str, Any]) -> None:
    spec["volumes"].append({"name": "webid-client", "emptyDir": {}})


@pytest.mark.parametrize(
    ("case", "edit", "pointer", "name"),
    [
        ("k07-bare-minimum.yaml", _user_sidecar, "/spec/containers/1/name", "agent"),
        ("k07-bare-minimum.yaml", _user_init, "/spec/initContainers/0/name", "init"),
        ("k07-bare-minimum.yaml", _user_volume, "/spec/volumes/0/name", "token"),
        ("k05-reinvoked-after-mesh.yaml", _k05_image, "/spec/containers/1/name", ""),
        ("k05-reinvoked-after-mesh.yaml", _k05_args, "/spec/initContainers/0/name", ""),
        ("k05-reinvoked-after-mesh.yaml", _k05_no_args, "/spec/containers/1/name", ""),
        ("k05-reinvoked-after-mesh.yaml", _k05_mount, "/spec/containers/1/name", ""),
        (
            "k05-reinvoked-after-mesh.yaml",
            _k05_init_among_containers,
            "/spec/containers/3/name",
            "",
        ),
        (
            "k05-reinvoked-after-mesh.yaml",
            _k05_client_volume,
            "/spec/volumes/1/name",
            "",
        ),
    ],
)
def test_a_reserved_name_not_ours_is_refused(
    case: str,
    edit: Edit,
    pointer: str,
    name: str,
    config: InjectorConfig,
    load_case: Load,
) -> None:
    pod = load_case(case)
    edit(pod["spec"])
    with pytest.raises(InputError) as refused:
        plan_pod(pod, config=config)
    assert refused.value.where == pointer
    assert "webid-" + name in refused.value.message
    assert "rename the" in refused.value.message


@pytest.mark.parametrize(
    "image",
    [
        "registry.example/webid-agent:0.1.0",
        "webid-agent:test",
        "registry.example:5000/team/webid-agent@sha256:" + "0" * 64,
    ],
)
def test_our_containers_from_any_registry_or_version_are_recognised(
    image: str, config: InjectorConfig, load_case: Load, apply_ops: Apply
) -> None:
    pod = load_case("k05-reinvoked-after-mesh.yaml")
    pod["spec"]["initContainers"][0]["image"] = image
    pod["spec"]["containers"][1]["image"] = image
    plan = plan_pod(pod, config=config)
    assert plan.decision == "injected"
    patched = apply_ops(pod, plan.ops)
    assert plan_pod(patched, config=config).ops == []


def test_the_webhook_denies_with_the_container_and_pointer(
    config: InjectorConfig, load_case: Load, review_for: Callable[..., Any]
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    _user_sidecar(pod["spec"])
    status, answer, outcome = Reviewer(config).handle(
        json.dumps(review_for(pod)).encode()
    )
    response = json.loads(answer)["response"]
    assert status == 200
    assert response["allowed"] is False
    assert "patch" not in response
    assert response["status"]["code"] == 400
    assert response["status"]["reason"] == "BadRequest"
    message = response["status"]["message"]
    assert "/spec/containers/1/name" in message
    assert "container 'webid-agent'" in message
    assert outcome.decision == "denied"


def test_offline_inject_exits_2_naming_file_document_and_pointer(
    load_case: Load, tmp_path: Path
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    _user_sidecar(pod["spec"])
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop"},
        "spec": {"selector": {}, "template": {k: pod[k] for k in ("metadata", "spec")}},
    }
    path = tmp_path / "app.yaml"
    text = "kind: ConfigMap\n---\n" + yaml.safe_dump(deployment)
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "inject", "k8s", str(path), *FLAGS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{path}:3 /spec/template/spec/containers/1/name" in proc.stderr
    assert "Deployment/shop" in proc.stderr
    assert "container 'webid-agent'" in proc.stderr
    assert path.read_text() == text
