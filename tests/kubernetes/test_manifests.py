"""``webid-agent k8s manifests``: valid install YAML with the promised settings."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import trustme
import yaml
from click.testing import CliRunner
from cryptography import x509

from agent.cli import cli

FLAGS = ["--authority", "https://idp.example/t1", "--audience", "sts.amazonaws.com"]


def manifests(*args: str) -> tuple[dict[str, Any], str]:
    result = CliRunner().invoke(
        cli, ["k8s", "manifests", *FLAGS, *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return {d["kind"]: d for d in docs}, result.stderr


@pytest.mark.parametrize("version", ["1.25.0", kubernetes_validate.latest_version()])
def test_every_document_is_valid(version: str) -> None:
    docs, _ = manifests("--failure-policy", "Fail")
    assert set(docs) == {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "MutatingWebhookConfiguration",
    }
    for doc in docs.values():
        kubernetes_validate.validate(doc, version, strict=True)


def test_webhook_configuration_settings() -> None:
    docs, _ = manifests("--failure-policy", "Ignore", "--timeout-seconds", "3")
    webhook = docs["MutatingWebhookConfiguration"]["webhooks"][0]
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    assert webhook["timeoutSeconds"] == 3
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1", "v1beta1"]
    assert webhook["rules"][0]["operations"] == ["CREATE"]
    assert webhook["rules"][0]["resources"] == ["pods"]
    own = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = webhook["objectSelector"]["matchExpressions"][0]
    assert selector["operator"] == "NotIn"
    assert own[selector["key"]] in selector["values"]


def test_deployment_is_hardened_and_forwards_injection_flags() -> None:
    docs, _ = manifests("--failure-policy", "Fail", "--kubernetes-version", "1.29")
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["memory"]
    args = container["args"]
    assert args[0] == "serve-k8s"
    for flag, value in (
        ("--authority", "https://idp.example/t1"),
        ("--audience", "sts.amazonaws.com"),
        ("--kubernetes-version", "1.29"),
    ):
        assert args[args.index(flag) + 1] == value
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


def test_generated_certificate_matches_the_service_and_warns() -> None:
    docs, stderr = manifests("--failure-policy", "Fail", "--namespace", "ids")
    secret = docs["Secret"]
    assert secret["type"] == "kubernetes.io/tls"
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "webid-agent-webhook.ids.svc" in names.value.get_values_for_type(
        x509.DNSName
    )
    ca = x509.load_pem_x509_certificate(
        base64.b64decode(
            docs["MutatingWebhookConfiguration"]["webhooks"][0]["clientConfig"][
                "caBundle"
            ]
        )
    )
    cert.verify_directly_issued_by(ca)
    assert "private key" in stderr and "re-run" in stderr
    # the key never reaches stderr
    assert secret["data"]["tls.key"] not in stderr


def test_given_ca_file_means_no_generated_secret(tmp_path: Path) -> None:
    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    docs, stderr = manifests("--failure-policy", "Fail", "--ca-file", str(path))
    assert "Secret" not in docs
    bundle = docs["MutatingWebhookConfiguration"]["webhooks"][0]["clientConfig"]
    assert base64.b64decode(bundle["caBundle"]) == ca.cert_pem.bytes()
    assert stderr == ""


def test_old_cluster_gets_policy_v1beta1() -> None:
    docs, _ = manifests("--failure-policy", "Fail", "--kubernetes-version", "1.19")
    assert docs["PodDisruptionBudget"]["apiVersion"] == "policy/v1beta1"


def test_mapping_file_becomes_the_configmap(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("defaults:\n  region: eu-west-1\n")
    docs, _ = manifests("--failure-policy", "Fail", "--mapping", str(path))
    assert docs["ConfigMap"]["data"]["mapping.yaml"] == path.read_text()
    args = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert str(path) not in args


def test_failure_policy_is_required() -> None:
    result = CliRunner().invoke(cli, ["k8s", "manifests", *FLAGS])
    assert result.exit_code == 2
    assert "--failure-policy" in result.output


def test_bad_ca_file_is_a_config_error(tmp_path: Path) -> None:
    from agent import ConfigError

    path = tmp_path / "ca.pem"
    path.write_text("nope")
    with pytest.raises(ConfigError) as caught:
        CliRunner().invoke(
            cli,
            [
                "k8s",
                "manifests",
                *FLAGS,
                "--failure-policy",
                "Fail",
                "--ca-file",
                str(path),
            ],
            catch_exceptions=False,
        )
    assert "not a PEM certificate" in caught.value.message


@pytest.mark.parametrize(
    ("args", "option", "needle"),
    [
        (["--name", ""], "--name", "must not be empty"),
        (["--name", "Webhook"], "--name", "not a valid name"),
        (["--name", "9-webhook"], "--name", "not a valid name"),  # Service name
        (["--name", "web.hook"], "--name", "not a valid name"),
        (["--name", "webhook-"], "--name", "not a valid name"),
        (["--name", "w" * 64], "--name", "longer than 63"),
        (["--namespace", "Bad_NS!"], "--namespace", "not a valid name"),
        (["--namespace", ""], "--namespace", "must not be empty"),
        (["--namespace", "n" * 64], "--namespace", "longer than 63"),
        (["--namespace", "-ns"], "--namespace", "not a valid name"),
        (["--tls-secret", "a..b"], "--tls-secret", "not a valid name"),
        (["--tls-secret", "TLS"], "--tls-secret", "not a valid name"),
    ],
)
def test_invalid_names_are_refused_naming_the_option(
    args: list[str], option: str, needle: str
) -> None:
    from agent import ConfigError

    with pytest.raises(ConfigError) as caught:
        CliRunner().invoke(
            cli,
            ["k8s", "manifests", *FLAGS, "--failure-policy", "Fail", *args],
            catch_exceptions=False,
        )
    assert caught.value.where == option
    assert needle in caught.value.message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "w" * 63, "--namespace", "9" * 63],
        ["--name", "a", "--namespace", "a", "--tls-secret", "certs.example-1"],
    ],
    ids=["longest", "shortest"],
)
def test_valid_names_pass(args: list[str]) -> None:
    docs, _ = manifests("--failure-policy", "Fail", *args)
    assert docs["Service"]["metadata"]["name"] == args[1]
    assert docs["Service"]["metadata"]["namespace"] == args[3]
