"""AdmissionReview handling without the server: envelopes, decisions, bad input."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from injectors.kubernetes.options import InjectorConfig, MappingStore, load_mapping
from injectors.kubernetes.review import Reviewer

Load = Callable[[str], dict[str, Any]]
Apply = Callable[[dict[str, Any], list[Any]], dict[str, Any]]


def decode_patch(response: dict[str, Any]) -> list[Any]:
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    assert isinstance(ops, list)
    return ops


def test_k04_v1beta1_answer_keeps_version_kind_and_uid(
    config: InjectorConfig,
    load_case: Load,
    apply_ops: Apply,
    validate_pod: Callable[..., None],
) -> None:
    review = load_case("k04-review-v1beta1.json")
    status, body, outcome = Reviewer(config).handle(json.dumps(review).encode())
    assert status == 200
    answer = json.loads(body)
    assert answer["apiVersion"] == "admission.k8s.io/v1beta1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "6d1f4c1e-9a7b-4b8e-8f3e-2a1c0e5b7d90"
    assert response["allowed"] is True
    patched = apply_ops(review["request"]["object"], decode_patch(response))
    validate_pod(patched)
    assert (outcome.decision, outcome.namespace, outcome.pod) == (
        "injected",
        "legacy",
        "report-",
    )


def test_v1_review_round_trip(
    config: InjectorConfig, load_case: Load, review_for: Callable[..., Any]
) -> None:
    review = review_for(load_case("k07-bare-minimum.yaml"))
    _, body, _ = Reviewer(config).handle(json.dumps(review).encode())
    answer = json.loads(body)
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["response"]["uid"] == review["request"]["uid"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"apiVersion": "v1", "kind": "Pod"}', "AdmissionReview"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
            "without a request",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",'
            b' "request": {"uid": 5}}',
            "without a uid",
        ),
    ],
)
def test_bad_envelopes_get_400_with_a_message(
    body: bytes, needle: str, config: InjectorConfig
) -> None:
    status, answer, outcome = Reviewer(config).handle(body)
    assert status == 400
    assert needle in json.loads(answer)["error"]
    assert outcome.decision == "bad-request"


def _envelope(request: dict[str, Any]) -> bytes:
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
    review["request"] = {"uid": "u1", **request}
    return json.dumps(review).encode()


def test_not_a_pod_is_allowed_with_a_warning(config: InjectorConfig) -> None:
    body = _envelope(
        {"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "object": {}}
    )
    status, answer, outcome = Reviewer(config).handle(body)
    response = json.loads(answer)["response"]
    assert status == 200 and response["allowed"] is True
    assert "patch" not in response
    assert "only mutates Pods" in response["warnings"][0]
    assert outcome.decision == "skipped"


@pytest.mark.parametrize(
    "request_",
    [
        {"operation": "UPDATE"},
        {"operation": "CREATE", "subResource": "binding"},
    ],
)
def test_other_operations_pass_unchanged(
    request_: dict[str, Any], config: InjectorConfig, load_case: Load
) -> None:
    body = _envelope(
        {
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "object": load_case("k07-bare-minimum.yaml"),
            **request_,
        }
    )
    _, answer, outcome = Reviewer(config).handle(body)
    response = json.loads(answer)["response"]
    assert response == {"allowed": True, "uid": "u1"}
    assert outcome.decision == "skipped"


def test_pod_not_opted_in_is_allowed_unchanged(
    config: InjectorConfig, load_case: Load, review_for: Callable[..., Any]
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    pod["metadata"]["annotations"] = {"unrelated": "x"}
    _, answer, outcome = Reviewer(config).handle(json.dumps(review_for(pod)).encode())
    assert json.loads(answer)["response"] == {
        "allowed": True,
        "uid": review_for(pod)["request"]["uid"],
    }
    assert outcome.decision == "not-opted-in"


@pytest.mark.parametrize(
    ("annotation", "value", "needle"),
    [
        ("role-arn", "arn:aws:iam::role/nope", "not an IAM role ARN"),
        ("inject", "sure", '"true" or "false"'),
        ("skip-containers", "UPPER", "not container names"),
        ("mode", "imds", "expected one of web-identity, credentials-endpoint"),
    ],
)
def test_bad_annotations_are_denied_with_the_annotation_named(
    annotation: str,
    value: str,
    needle: str,
    config: InjectorConfig,
    load_case: Load,
    review_for: Callable[..., Any],
) -> None:
    pod = load_case("k07-bare-minimum.yaml")
    pod["metadata"]["annotations"][f"webid-agent.io/{annotation}"] = value
    status, answer, outcome = Reviewer(config).handle(
        json.dumps(review_for(pod)).encode()
    )
    response = json.loads(answer)["response"]
    assert status == 200
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    message = response["status"]["message"]
    assert needle in message
    assert f"webid-agent.io~1{annotation}" in message
    assert outcome.decision == "denied"


def test_an_unexpected_bug_is_a_refusal_not_a_crash(
    config: InjectorConfig,
    load_case: Load,
    review_for: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("injectors.kubernetes.review.plan_pod", broken)
    review = review_for(load_case("k07-bare-minimum.yaml"))
    status, answer, outcome = Reviewer(config).handle(json.dumps(review).encode())
    response = json.loads(answer)["response"]
    assert status == 200
    assert response["allowed"] is False
    assert response["status"]["code"] == 500
    assert "boom" not in response["status"]["message"]
    assert outcome.decision == "error"


def test_warnings_reach_the_response(
    config: InjectorConfig, load_case: Load, review_for: Callable[..., Any]
) -> None:
    review = review_for(load_case("k02-one-container-has-role.yaml"))
    _, answer, _ = Reviewer(config).handle(json.dumps(review).encode())
    warnings = json.loads(answer)["response"]["warnings"]
    assert warnings == [
        "webid-agent: container legacy: keeps its own AWS_ROLE_ARN"
        " (webid-agent would have set it)"
    ]


MAPPING = """\
defaults:
  audience: sts.amazonaws.com
namespaces:
  analytics:
    inject: true
    role-arn: arn:aws:iam::111122223333:role/analytics-default
    client-secret: analytics-idp
serviceAccounts:
  analytics/reader:
    role-arn: arn:aws:iam::111122223333:role/analytics-reader
"""


def _pod(namespace: str, account: str | None = None, **annotations: str) -> Any:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "x"}]}
    if account:
        spec["serviceAccountName"] = account
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "p-", "annotations": annotations or None},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("namespace", "account", "annotations", "role"),
    [
        ("analytics", None, {}, "analytics-default"),
        ("analytics", "reader", {}, "analytics-reader"),
        (
            "analytics",
            "reader",
            {"webid-agent.io/role-arn": "arn:aws:iam::111122223333:role/own"},
            "own",
        ),
        ("analytics", "reader", {"webid-agent.io/inject": "false"}, None),
        ("other", None, {}, None),
    ],
)
def test_mapping_defaults_per_namespace_and_service_account(
    namespace: str,
    account: str | None,
    annotations: dict[str, str],
    role: str | None,
    config: InjectorConfig,
    review_for: Callable[..., Any],
    apply_ops: Apply,
    tmp_path: Path,
) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING)
    mapping = load_mapping(path)
    reviewer = Reviewer(config, defaults=lambda: mapping)
    pod = _pod(namespace, account, **annotations)
    review = review_for(pod)
    review["request"]["namespace"] = namespace
    _, answer, outcome = reviewer.handle(json.dumps(review).encode())
    response = json.loads(answer)["response"]
    if role is None:
        assert "patch" not in response
        assert outcome.decision == "not-opted-in"
        return
    patched = apply_ops(pod, decode_patch(response))
    env = {e["name"]: e["value"] for e in patched["spec"]["containers"][0]["env"]}
    assert env["AWS_ROLE_ARN"] == f"arn:aws:iam::111122223333:role/{role}"
    volumes = {v["name"]: v for v in patched["spec"]["volumes"]}
    assert volumes["webid-client"]["secret"]["secretName"] == "analytics-idp"
    sidecar = patched["spec"]["containers"][1]
    agent_env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert agent_env["WEBID_AUDIENCE"] == "sts.amazonaws.com"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("namespaces: [1]\n", "expected a mapping"),
        ("bogus: {}\n", "unknown keys"),
        ("defaults:\n  colour: red\n", "unknown key 'colour'"),
        ("namespaces:\n  a:\n    role-arn: nope\n", "not an IAM role ARN"),
        ("serviceAccounts:\n  noslash: {}\n", "NAMESPACE/SERVICEACCOUNT"),
        ("defaults: [\n", "not valid YAML"),
        ("defaults:\n  mode: endpoint\n", "expected one of web-identity"),
    ],
)
def test_bad_mapping_files_name_the_key(text: str, needle: str, tmp_path: Path) -> None:
    from agent import ConfigError

    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    assert needle in caught.value.message
    assert str(path) in caught.value.format()


def test_mapping_is_reloaded_and_a_bad_edit_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("defaults:\n  region: eu-west-1\n")
    errors: list[str] = []
    store = MappingStore(path, check_every=0, on_error=errors.append)
    assert store.get().defaults == {"region": "eu-west-1"}
    path.write_text("defaults:\n  region: us-east-1\n  audience: aws\n")
    assert store.get().defaults == {"region": "us-east-1", "audience": "aws"}
    path.write_text("defaults:\n  region: moon\n")
    assert store.get().defaults == {"region": "us-east-1", "audience": "aws"}
    assert len(errors) == 1 and "AWS region" in errors[0]
