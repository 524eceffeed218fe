"""Fixtures for the Kubernetes injector: settings, the pod cases, patch checking.

The cases in ``data/`` are copies of ``shared/cases/kubernetes``. Patches are
applied with the ``jsonpatch`` library (not our code) and the result is
validated against the official Kubernetes JSON schemas (``kubernetes-validate``,
strict: unknown fields are errors).
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import trustme
import yaml

from injectors.kubernetes.options import InjectorConfig
from injectors.kubernetes.webhook import ServerSettings, WebhookServer

DATA = Path(__file__).parent / "data"
# the oldest schema kubernetes-validate ships (plain sidecars) and the newest
OLDEST_SCHEMA = "1.25.0"
NEWEST_SCHEMA = kubernetes_validate.latest_version()
AUTHORITY = "https://idp.example/tenant1"


def _valid(pod: dict[str, Any], version: str) -> bool:
    try:
        kubernetes_validate.validate(pod, version, strict=True)
    except kubernetes_validate.ValidationError:
        return False
    return True


def check_pod_schema(
    pod: dict[str, Any], *, native: bool = False, original: dict[str, Any] | None = None
) -> None:
    """Fail with the schema's first complaint if ``pod`` is not a valid Pod.

    Always checked against the newest schema; a plain-sidecar pod also against
    the oldest one, when its ``original`` (unpatched) form was valid there.
    """
    versions = [NEWEST_SCHEMA]
    if not native and (original is None or _valid(original, OLDEST_SCHEMA)):
        versions.insert(0, OLDEST_SCHEMA)
    for version in versions:
        try:
            kubernetes_validate.validate(pod, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"invalid for Kubernetes {version}: {exc.message}")


@pytest.fixture
def validate_pod() -> Callable[..., None]:
    """``validate_pod(pod, native=, original=)``: fail unless the schema accepts it."""
    return check_pod_schema


@pytest.fixture
def config() -> InjectorConfig:
    """Settings as a webhook for an old cluster would have them (plain sidecar)."""
    return InjectorConfig(
        authority=AUTHORITY, audience="sts.amazonaws.com", image="webid-agent:test"
    ).validate()


@pytest.fixture
def native_config(config: InjectorConfig) -> InjectorConfig:
    """The same settings for a cluster with native sidecars (1.29+)."""
    return InjectorConfig(
        authority=config.authority,
        audience=config.audience,
        image=config.image,
        kubernetes_version=(1, 29),
    ).validate()


@pytest.fixture
def load_case() -> Callable[[str], dict[str, Any]]:
    """Load one case file from ``data/`` (YAML or JSON) as a fresh dict."""

    def load(name: str) -> dict[str, Any]:
        text = (DATA / name).read_text(encoding="utf-8")
        data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
        assert isinstance(data, dict)
        return data

    return load


@pytest.fixture
def apply_ops() -> Callable[[dict[str, Any], list[Any]], dict[str, Any]]:
    """Apply JSON Patch ops with the jsonpatch library; the input stays as it was."""

    def apply(pod: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
        before = copy.deepcopy(pod)
        result = jsonpatch.apply_patch(pod, copy.deepcopy(ops), in_place=False)
        assert pod == before, "applying a patch must not change its input"
        assert isinstance(result, dict)
        return result

    return apply


# -- the webhook over real HTTPS ---------------------------------------------------


@dataclass
class TlsFiles:
    """A trustme CA and the serving certificate/key files the webhook reads."""

    ca: trustme.CA
    cert_file: Path
    key_file: Path
    folder: Path

    def issue(self, ca: trustme.CA | None = None) -> trustme.CA:
        """Write a new certificate (from ``ca`` or a fresh CA) over the files."""
        ca = ca or trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        # write both files by rename, as a Secret volume update does
        for target, pem in (
            (self.cert_file, b"".join(b.bytes() for b in cert.cert_chain_pems)),
            (self.key_file, cert.private_key_pem.bytes()),
        ):
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(pem)
            os.replace(tmp, target)
        return ca

    def client_context(self, ca: trustme.CA | None = None) -> ssl.SSLContext:
        """A client context trusting ``ca`` (default: the first CA)."""
        context = ssl.create_default_context()
        (ca or self.ca).configure_trust(context)
        return context


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    """Serving certificate and key for 127.0.0.1 from a fresh trustme CA."""
    files = TlsFiles(
        ca=trustme.CA(),
        cert_file=tmp_path / "tls.crt",
        key_file=tmp_path / "tls.key",
        folder=tmp_path,
    )
    files.issue(files.ca)
    return files


@pytest.fixture
def start_webhook(
    tls_files: TlsFiles, config: InjectorConfig
) -> Iterator[Callable[..., WebhookServer]]:
    """Start a webhook on loopback ports chosen by the OS; stopped after the test.

    Keyword arguments override :class:`ServerSettings` fields; ``config`` may
    replace the injection settings.
    """
    started: list[WebhookServer] = []

    def start(
        *, config_: InjectorConfig | None = None, **overrides: Any
    ) -> WebhookServer:
        values: dict[str, Any] = {
            "cert_file": tls_files.cert_file,
            "key_file": tls_files.key_file,
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "reload_interval": 0.0,
            "timeout": 2.0,
        }
        values.update(overrides)
        server = WebhookServer(
            config=config_ or config, settings=ServerSettings(**values)
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def post(
    server: WebhookServer,
    body: bytes,
    context: ssl.SSLContext,
    *,
    path: str = "/mutate",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One HTTPS POST on a new connection; ``(status, body)``."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", server.port, context=context, timeout=5
    )
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def https_post() -> Callable[..., tuple[int, bytes]]:
    """``https_post(server, body, context, path=, headers=)`` on a new connection."""
    return post


@pytest.fixture
def review_for() -> Callable[..., dict[str, Any]]:
    """Wrap a pod in an AdmissionReview (v1 unless ``api_version`` says)."""

    def wrap(
        pod: dict[str, Any],
        *,
        api_version: str = "admission.k8s.io/v1",
        uid: str = "0a1b2c3d-0000-4000-8000-000000000001",
        operation: str = "CREATE",
    ) -> dict[str, Any]:
        return {
            "apiVersion": api_version,
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": pod.get("metadata", {}).get("namespace", "default"),
                "operation": operation,
                "object": pod,
            },
        }

    return wrap
