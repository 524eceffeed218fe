"""``k8s manifests``: the YAML that installs the webhook, from one template.

The injection flags given here are forwarded to the webhook's Deployment, so
``inject k8s`` and the installed webhook inject the same way. The caBundle
comes from ``--ca-file`` (the serving certificate then lives in a Secret the
user manages, e.g. with cert-manager), or a CA and serving certificate are
generated and put into a Secret in the output, with a warning: the output
then holds a private key, and renewal means re-running the command.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import ConfigError, render
from injectors.kubernetes.options import InjectorConfig

__all__ = [
    "ManifestSettings",
    "build_manifests",
    "check_name",
    "generate_serving_pair",
]

log = logging.getLogger(__name__)

TLS_DIR = "/etc/webid-agent/tls"
MAPPING_DIR = "/etc/webid-agent/mapping"
WEBHOOK_PORT = 8443
METRICS_PORT = 8080
# forwarded flags that name files on this machine, meaningless in the cluster
NOT_FORWARDED = ("mapping", "templates")


@dataclass(frozen=True)
class ManifestSettings:
    """What ``k8s manifests`` was asked for."""

    failure_policy: str
    namespace: str = "webid-system"
    name: str = "webid-agent-webhook"
    replicas: int = 2
    timeout_seconds: int = 5
    ca_file: Path | None = None
    tls_secret: str = "webid-agent-webhook-tls"  # noqa: S105 - a Secret name
    cert_days: int = 365
    namespace_label: str | None = None
    mapping_text: str | None = None
    forwarded: dict[str, Any] = field(default_factory=dict)


# Kubernetes' own name rules (apimachinery validation): a namespace is an
# RFC 1123 label; the webhook's --name also names its Service, so it must be an
# RFC 1035 label (a letter first); Secrets and ConfigMaps take DNS subdomains
_RFC1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_RFC1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_NAME_RULES: dict[str, tuple[re.Pattern[str], int, str]] = {
    "rfc1123-label": (
        _RFC1123_LABEL,
        63,
        "lowercase letters, digits and '-', starting and ending with a letter or digit",
    ),
    "rfc1035-label": (
        _RFC1035_LABEL,
        63,
        "lowercase letters, digits and '-', starting with a letter and ending"
        " with a letter or digit",
    ),
    "subdomain": (
        _SUBDOMAIN,
        253,
        "lowercase letters, digits, '-' and '.', each dot-separated part"
        " starting and ending with a letter or digit",
    ),
}


def check_name(value: str, *, rule: str, where: str) -> None:
    """Raise ConfigError naming ``where`` unless ``value`` is a valid name."""
    pattern, limit, wanted = _NAME_RULES[rule]
    if not value:
        raise ConfigError("must not be empty", where=where)
    if len(value) > limit:
        raise ConfigError(f"{value!r} is longer than {limit} characters", where=where)
    if not pattern.fullmatch(value):
        raise ConfigError(f"{value!r} is not a valid name: {wanted}", where=where)


def _check_names(settings: ManifestSettings) -> None:
    check_name(settings.namespace, rule="rfc1123-label", where="--namespace")
    check_name(settings.name, rule="rfc1035-label", where="--name")
    # derived names: the mapping ConfigMap and the TLS Secret
    check_name(f"{settings.name}-mapping", rule="subdomain", where="--name")
    check_name(settings.tls_secret, rule="subdomain", where="--tls-secret")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def generate_serving_pair(
    dns_names: list[str], *, days: int
) -> tuple[bytes, bytes, bytes]:
    """A fresh CA and a serving certificate it signs: ``(ca, cert, key)`` PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(minutes=5)
    not_after = now + datetime.timedelta(days=days)

    # the CA
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "webid-agent webhook CA")]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    # the serving certificate
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for name in dns_names:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    # X.509 caps the CN at 64 characters; clients check the full SANs
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0][:64])])
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return (
        ca.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _read_ca(path: Path) -> bytes:
    from cryptography import x509

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read CA file: {exc.strerror}", where=f"--ca-file {path}"
        ) from exc
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(
            "not a PEM certificate (bundle)", where=f"--ca-file {path}"
        ) from exc
    return data


def _args(forwarded: dict[str, Any]) -> list[str]:
    args = []
    for key, value in sorted(forwarded.items()):
        if key in NOT_FORWARDED or value in (None, ""):
            continue
        args.extend([f"--{key.replace('_', '-')}", str(value)])
    return args


def build_manifests(
    *, config: InjectorConfig, settings: ManifestSettings
) -> tuple[str, list[str]]:
    """The install YAML and warnings for the user (stderr)."""
    _check_names(settings)
    warnings: list[str] = []
    version = config.kubernetes_version
    if version is not None and version < (1, 16):
        raise ConfigError(
            "admissionregistration.k8s.io/v1 needs Kubernetes 1.16 or later",
            where="--kubernetes-version",
        )
    if settings.forwarded.get("templates"):
        warnings.append(
            "--templates is not forwarded: bake custom templates into the image"
            " and pass --templates in the Deployment's args"
        )

    # the serving certificate: given CA, or generated into a Secret
    service = f"{settings.name}.{settings.namespace}.svc"
    generated: dict[str, str] | None = None
    if settings.ca_file is not None:
        ca_pem = _read_ca(settings.ca_file)
    else:
        ca_pem, cert_pem, key_pem = generate_serving_pair(
            [service, f"{service}.cluster.local", settings.name],
            days=settings.cert_days,
        )
        generated = {"crt": _b64(cert_pem), "key": _b64(key_pem)}
        expires = datetime.date.today() + datetime.timedelta(days=settings.cert_days)
        warnings.append(
            f"generated a self-signed CA and serving certificate valid until {expires}"
            f" (Secret {settings.namespace}/{settings.tls_secret}): the output holds"
            " its private key, so do not commit it; re-run this command and apply"
            " the output again before that date, or use --ca-file with a managed"
            " certificate (e.g. cert-manager)"
        )

    # namespace selection
    label_key = label_value = None
    if settings.namespace_label:
        label_key, sep, label_value = settings.namespace_label.partition("=")
        if not sep or not label_key:
            raise ConfigError(
                f"expected KEY=VALUE, got {settings.namespace_label!r}",
                where="--namespace-label",
            )

    # the rendered YAML
    context = {
        "namespace": settings.namespace,
        "name": settings.name,
        "image": config.image,
        "image_pull_policy": config.image_pull_policy,
        "replicas": settings.replicas,
        "failure_policy": settings.failure_policy,
        "timeout_seconds": settings.timeout_seconds,
        "ca_bundle": _b64(ca_pem),
        "tls_secret": settings.tls_secret,
        "generated": generated,
        "tls_dir": TLS_DIR,
        "mapping_dir": MAPPING_DIR,
        "mapping_text": settings.mapping_text or "{}\n",
        "webhook_port": WEBHOOK_PORT,
        "metrics_port": METRICS_PORT,
        "args": _args(settings.forwarded),
        "label_key": label_key,
        "label_value": label_value,
        "pdb_api": (
            "policy/v1beta1"
            if version is not None and version < (1, 21)
            else "policy/v1"
        ),
    }
    text = render(
        "kubernetes", "manifests.yaml.j2", context, templates_dir=config.templates_dir
    )
    return text, warnings
