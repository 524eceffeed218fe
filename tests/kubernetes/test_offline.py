"""``webid-agent inject k8s`` over multi-document YAML, through the real CLI."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from agent.cli import cli

DATA = Path(__file__).parent / "data"
FLAGS = ["--authority", "https://idp.example/t1", "--audience", "sts.amazonaws.com"]


@pytest.fixture
def run() -> Callable[..., Any]:
    """Invoke ``webid-agent ARGS`` in-process; returns click's Result."""
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(cli, list(args), input=stdin, catch_exceptions=False)

    return invoke


def _docs(text: str) -> list[Any]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def test_every_document_and_field_survives(
    run: Callable[..., Any], validate_pod: Callable[..., None]
) -> None:
    source = DATA / "multi.yaml"
    result = run("inject", "k8s", str(source), *FLAGS)
    assert result.exit_code == 0, result.output
    before = _docs(source.read_text())
    after = _docs(result.stdout)
    assert [d["kind"] for d in after] == [
        "Service",
        "Deployment",
        "CronJob",
        "StatefulSet",
        "ConfigMap",
    ]
    # untouched documents are equal; injected ones differ only in the template
    for old, new in zip(before, after, strict=True):
        if old["kind"] in ("Service", "StatefulSet", "ConfigMap"):
            assert new == old
    deployment = after[1]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    template = deployment["spec"]["template"]
    assert template["spec"]["containers"][0]["startupProbe"] == {
        "exec": {"command": ["true"]}
    }
    assert [c["name"] for c in template["spec"]["containers"]] == ["api", "webid-agent"]
    validate_pod({"apiVersion": "v1", "kind": "Pod", **template})
    job = after[2]["spec"]["jobTemplate"]["spec"]["template"]
    assert [c["name"] for c in job["spec"]["initContainers"]] == [
        "webid-init",
        "webid-agent",
    ]
    assert job["spec"]["initContainers"][1]["restartPolicy"] == "Always"
    assert after[2]["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 2
    # source file never modified without --in-place
    assert _docs(source.read_text()) == before


def test_injecting_twice_equals_once(run: Callable[..., Any], tmp_path: Path) -> None:
    once = run("inject", "k8s", str(DATA / "multi.yaml"), *FLAGS).stdout
    first = tmp_path / "once.yaml"
    first.write_text(once)
    twice = run("inject", "k8s", str(first), *FLAGS).stdout
    assert twice == once


def test_stdin_output_file_and_in_place(
    run: Callable[..., Any], tmp_path: Path
) -> None:
    text = (DATA / "k07-bare-minimum.yaml").read_text()
    out = tmp_path / "out.yaml"
    result = run("inject", "k8s", "-", "-o", str(out), *FLAGS, stdin=text)
    assert result.exit_code == 0
    assert result.stdout == ""
    injected = _docs(out.read_text())[0]
    assert injected["metadata"]["annotations"]["webid-agent.io/injected"] == "true"

    target = tmp_path / "pod.yaml"
    target.write_text(text)
    assert run("inject", "k8s", str(target), "--in-place", *FLAGS).exit_code == 0
    assert _docs(target.read_text()) == [injected]


def test_mapping_file_applies_offline(run: Callable[..., Any], tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "namespaces:\n  shop:\n    region: eu-west-1\n    client-secret: shop-idp\n"
    )
    result = run(
        "inject", "k8s", str(DATA / "multi.yaml"), "--mapping", str(mapping), *FLAGS
    )
    deployment = _docs(result.stdout)[1]
    spec = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env["AWS_REGION"] == "eu-west-1"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["webid-client"]["secret"]["secretName"] == "shop-idp"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("kind: Pod\nspec: [\n", "pod.yaml:3"),
        (
            "apiVersion: v1\nkind: ConfigMap\n---\nkind: Pod\nmetadata:\n"
            "  annotations:\n    webid-agent.io/inject: 'true'\n"
            "    webid-agent.io/role-arn: nope\nspec:\n  containers: [{name: a}]\n",
            "pod.yaml:4 /metadata/annotations/webid-agent.io~1role-arn",
        ),
        (
            "kind: Deployment\nspec: {}\n",
            "pod.yaml:1 /spec/template: a Deployment without a pod template",
        ),
        (
            "kind: ConfigMap\n---\nkind: CronJob\nspec: {jobTemplate: {spec: {}}}\n",
            "pod.yaml:3 /spec/jobTemplate/spec/template: a CronJob without",
        ),
        ("kind: List\nitems: 5\n", "pod.yaml:1 /items: a List's items must be"),
        (
            "kind: List\nitems:\n- kind: List\n  items: {a: 1}\n",
            "pod.yaml:1 /items/0/items: a List's items must be a list, got dict",
        ),
        (
            "kind: List\nitems:\n- kind: Job\n  spec: {template: []}\n",
            "pod.yaml:1 /items/0/spec/template: a Job without a pod template",
        ),
    ],
)
def test_bad_input_is_one_line_with_file_and_line(
    text: str, needle: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    path = tmp_path / "pod.yaml"
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "inject", "k8s", str(path), *FLAGS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert path.read_text() == text


def test_missing_authority_is_a_usage_error(run: Callable[..., Any]) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["inject", "k8s", str(DATA / "k07-bare-minimum.yaml")])
    assert result.exit_code != 0
    assert "--authority" in str(result.exception)


def test_inject_keeps_pods_not_opted_in_byte_equal_data(
    run: Callable[..., Any],
) -> None:
    pod = yaml.safe_load((DATA / "k07-bare-minimum.yaml").read_text())
    plain = copy.deepcopy(pod)
    plain["metadata"]["annotations"] = {"other": "x"}
    result = run("inject", "k8s", "-", *FLAGS, stdin=yaml.safe_dump(plain))
    assert _docs(result.stdout) == [plain]
