"""Fixtures for the Kubernetes injector: settings, the pod cases, patch checking.

The cases in ``data/`` are copies of ``shared/cases/kubernetes``. Patches are
applied with the ``jsonpatch`` library (not our code) and the result is
validated against the official Kubernetes JSON schemas (``kubernetes-validate``,
strict: unknown fields are errors).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from injectors.kubernetes.options import InjectorConfig

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
