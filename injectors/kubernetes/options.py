"""What to inject: process-wide settings and the options resolved for one pod.

:class:`InjectorConfig` holds what the flags of ``serve-k8s`` / ``inject k8s``
say (IdP, image, sidecar kind). :func:`resolve_pod` merges, for one pod, the
mapping-file defaults (global, then namespace, then service account) with the
pod's own ``webid-agent.io/*`` annotations, which win. Every value is checked
here, so the patch builder only ever sees valid options; a bad value raises
:class:`InputError` whose ``where`` is the JSON pointer of the annotation (or
the mapping-file key).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent import (
    ANNOTATION_PREFIX,
    ROLE_ARN_PATTERN,
    ConfigError,
    InputError,
    __version__,
    read_input,
)
from injectors.kubernetes.safeinput import compose_documents

__all__ = [
    "ANNOTATION_KEYS",
    "MARKER_ANNOTATION",
    "MODES",
    "InjectorConfig",
    "MappingStore",
    "Mode",
    "PodDefaults",
    "PodOptions",
    "escape_pointer",
    "load_mapping",
    "parse_kubernetes_version",
    "resolve_pod",
]

log = logging.getLogger(__name__)

# annotation names without the prefix; the mapping file uses the same keys
ANNOTATION_KEYS = (
    "inject",
    "role-arn",
    "audience",
    "scope",
    "client-secret",
    "skip-containers",
    "session-name",
    "region",
    "native-sidecar",
    "mode",
)
MARKER_ANNOTATION = f"{ANNOTATION_PREFIX}injected"

NativeMode = Literal["auto", "always", "never"]
ClientAuth = Literal["secret", "certificate"]
# how the workload gets credentials: the token file, or the loopback
# container-credentials endpoint served by the sidecar
Mode = Literal["web-identity", "credentials-endpoint"]
MODES: tuple[Mode, ...] = ("web-identity", "credentials-endpoint")

_ROLE_ARN = re.compile(ROLE_ARN_PATTERN)
# RFC 1123 label (container names) and subdomain (Secret, ConfigMap names)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
# STS RoleSessionName
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_TEXT = re.compile(r"^[\x21-\x7e]([\x20-\x7e]{0,510}[\x21-\x7e])?$")
_BOOLEAN = {"true": True, "false": False}
# native sidecars (init containers with restartPolicy: Always) are on by default
NATIVE_SIDECAR_SINCE = (1, 29)


def escape_pointer(token: str) -> str:
    """One JSON Pointer reference token (RFC 6901): ``~`` then ``/`` escaped."""
    return token.replace("~", "~0").replace("/", "~1")


_POINTERS = {
    key: "/metadata/annotations/" + escape_pointer(ANNOTATION_PREFIX + key)
    for key in ANNOTATION_KEYS
}


def _annotation_pointer(key: str) -> str:
    return _POINTERS[key]


def parse_kubernetes_version(value: str, *, where: str) -> tuple[int, int]:
    """``1.29``, ``v1.29.3`` or ``1.29+`` (GKE) into ``(1, 29)``."""
    match = re.match(r"^v?(\d+)\.(\d+)", value.strip())
    if not match:
        raise ConfigError(f"expected a version like 1.29, got {value!r}", where=where)
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class InjectorConfig:
    """Process-wide injection settings (from flags); hashable for caching."""

    authority: str
    provider: str = "oidc"
    image: str = f"webid-agent:{__version__}"
    image_pull_policy: str | None = None
    tenant_id: str | None = None
    audience: str | None = None
    scope: str | None = None
    issuer: str | None = None
    client_secret_name: str = "webid-agent-client"  # noqa: S105 - a Secret name
    client_auth: ClientAuth = "secret"
    ca_configmap: str | None = None
    native_sidecar: NativeMode = "auto"
    kubernetes_version: tuple[int, int] | None = None
    token_deadline: int = 60
    agent_port: int = 18081
    templates_dir: Path | None = None

    def validate(self) -> InjectorConfig:
        """Check the flags once at start-up; raise ConfigError naming the option."""
        if not self.authority.startswith("https://"):
            raise ConfigError(
                f"an https:// IdP URL is required, got {self.authority!r}",
                where="--authority",
            )
        if self.provider not in ("entra", "oidc"):
            raise ConfigError(f"unknown provider {self.provider!r}", where="--provider")
        if not _DNS_SUBDOMAIN.match(self.client_secret_name):
            raise ConfigError(
                f"not a valid Secret name: {self.client_secret_name!r}",
                where="--client-secret-name",
            )
        if self.ca_configmap and not _DNS_SUBDOMAIN.match(self.ca_configmap):
            raise ConfigError(
                f"not a valid ConfigMap name: {self.ca_configmap!r}",
                where="--ca-configmap",
            )
        if not self.image.strip() or any(c.isspace() for c in self.image):
            raise ConfigError(
                f"not an image reference: {self.image!r}", where="--image"
            )
        if not 1 <= self.agent_port <= 65535:
            raise ConfigError("must be a TCP port", where="--agent-port")
        return self

    def native_by_default(self) -> bool:
        """Whether ``auto`` picks native sidecars for a pod that does not say."""
        if self.native_sidecar == "always":
            return True
        if self.native_sidecar == "never":
            return False
        return (
            self.kubernetes_version is not None
            and self.kubernetes_version >= NATIVE_SIDECAR_SINCE
        )


@dataclass(frozen=True)
class PodOptions:
    """Everything that varies per pod, validated; hashable for caching."""

    role_arn: str
    client_secret: str
    audience: str | None = None
    scope: str | None = None
    session_name: str | None = None
    region: str | None = None
    skip_containers: frozenset[str] = frozenset()
    native_sidecar: bool | None = None
    mode: Mode = "web-identity"


# -- the mapping file ---------------------------------------------------------


@dataclass(frozen=True)
class PodDefaults:
    """Default annotation values: for all pods, per namespace, per service account.

    Values are annotation values keyed by annotation name without the prefix;
    service accounts are keyed ``NAMESPACE/NAME``.
    """

    defaults: dict[str, str] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    service_accounts: dict[str, dict[str, str]] = field(default_factory=dict)

    def layers(self, namespace: str, service_account: str) -> list[dict[str, str]]:
        """Defaults that apply to a pod, weakest first."""
        found = (
            self.defaults,
            self.namespaces.get(namespace),
            self.service_accounts.get(f"{namespace}/{service_account}"),
        )
        return [layer for layer in found if layer]


def _mapping_entry(value: Any, *, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError("expected a mapping of annotation keys", where=where)
    entry: dict[str, str] = {}
    for key, raw in value.items():
        name = str(key).removeprefix(ANNOTATION_PREFIX)
        if name not in ANNOTATION_KEYS:
            raise ConfigError(
                f"unknown key {key!r} (one of: {', '.join(ANNOTATION_KEYS)})",
                where=f"{where}.{key}",
            )
        text = str(raw).lower() if isinstance(raw, bool) else str(raw)
        if isinstance(raw, list):
            text = ",".join(str(item) for item in raw)
        # validate now, so a bad mapping fails at load and not at admission
        _check(name, text, where=f"{where}.{key}", error=ConfigError)
        entry[name] = text
    return entry


def read_mapping(path: Path) -> str:
    """The mapping file's text; any read or decoding error is a ConfigError."""
    return read_input(path, where=str(path), error=ConfigError)


def load_mapping(path: Path, text: str | None = None) -> PodDefaults:
    """Read and check a mapping file; raise ConfigError naming file and key.

    ``text`` is the file's content when the caller has already read it.
    """
    if text is None:
        text = read_mapping(path)
    documents = compose_documents(text, source=str(path), error=ConfigError)
    if len(documents) > 1:
        raise ConfigError(
            "expected one YAML document", where=f"{path}:{documents[1][0]}"
        )
    data = (documents[0][1] if documents else None) or {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level", where=str(path))
    unknown = set(data) - {"defaults", "namespaces", "serviceAccounts"}
    if unknown:
        raise ConfigError(
            f"unknown keys {sorted(map(str, unknown))} "
            "(expected defaults, namespaces, serviceAccounts)",
            where=str(path),
        )
    groups: dict[str, dict[str, dict[str, str]]] = {}
    for group in ("namespaces", "serviceAccounts"):
        section = data.get(group) or {}
        if not isinstance(section, dict):
            raise ConfigError("expected a mapping", where=f"{path}: {group}")
        items: dict[str, dict[str, str]] = {}
        for name, entry in section.items():
            where = f"{path}: {group}.{name}"
            if group == "serviceAccounts" and str(name).count("/") != 1:
                raise ConfigError("expected NAMESPACE/SERVICEACCOUNT", where=where)
            items[str(name)] = _mapping_entry(entry, where=where)
        groups[group] = items
    return PodDefaults(
        defaults=_mapping_entry(data.get("defaults"), where=f"{path}: defaults"),
        namespaces=groups["namespaces"],
        service_accounts=groups["serviceAccounts"],
    )


class MappingStore:
    """The mapping file, re-read when its modification time or size changes.

    A file that turns invalid keeps the last good mapping in use (and says so
    in the log and through ``on_error``), so a typo never stops admissions.
    """

    def __init__(
        self,
        path: Path,
        *,
        check_every: float = 1.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.check_every = check_every
        self.on_error = on_error
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._checked = time.monotonic()
        self._mapping = load_mapping(path)

    def _stat(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def get(self) -> PodDefaults:
        """The current mapping, reloaded first if the file changed."""
        now = time.monotonic()
        if now - self._checked < self.check_every:
            return self._mapping
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if stamp == self._stamp:
                return self._mapping
            self._stamp = stamp
            try:
                self._mapping = load_mapping(self.path)
            except ConfigError as exc:
                log.error(
                    "mapping file not reloaded, keeping the last good one: %s", exc
                )
                if self.on_error:
                    self.on_error(exc.format())
            except Exception:  # a loader bug must not stop admissions either
                log.exception("mapping file not reloaded, keeping the last good one")
                if self.on_error:
                    self.on_error(f"{self.path}: cannot be loaded")
            else:
                log.info("mapping file reloaded: %s", self.path)
        return self._mapping


# -- per-pod resolution ---------------------------------------------------------


def _check(
    key: str, value: str, *, where: str, error: type[ConfigError | InputError]
) -> None:
    """Raise ``error`` when ``value`` is not valid for annotation ``key``."""
    problem = _problem(key, value)
    if problem:
        raise error(problem, where=where)


@functools.lru_cache(maxsize=4096)
def _problem(key: str, value: str) -> str | None:
    """What is wrong with ``value`` for annotation ``key`` (cached), or None."""
    problem = None
    if key in ("inject", "native-sidecar"):
        if value.strip().lower() not in _BOOLEAN:
            problem = f'expected "true" or "false", got {value!r}'
    elif key == "role-arn":
        if not _ROLE_ARN.match(value.strip()):
            problem = (
                f"not an IAM role ARN: {value!r} "
                "(expected arn:aws:iam::123456789012:role/NAME)"
            )
    elif key == "client-secret":
        if not _DNS_SUBDOMAIN.match(value.strip()):
            problem = f"not a valid Secret name: {value!r}"
    elif key == "skip-containers":
        bad = [n for n in _split(value) if not _DNS_LABEL.match(n)]
        if bad:
            problem = f"not container names: {', '.join(map(repr, bad))}"
    elif key == "session-name":
        if not _SESSION_NAME.match(value.strip()):
            problem = f"not a role session name (2-64 of [A-Za-z0-9+=,.@_-]): {value!r}"
    elif key == "region":
        if not _REGION.match(value.strip()):
            problem = f"not an AWS region like eu-west-1: {value!r}"
    elif key == "mode":
        if value.strip() not in MODES:
            problem = f"expected one of {', '.join(MODES)}, got {value!r}"
    elif key in ("audience", "scope") and not _TEXT.match(value.strip()):
        problem = f"expected printable text without control characters, got {value!r}"
    return problem


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def resolve_pod(
    annotations: Mapping[str, Any] | None,
    *,
    config: InjectorConfig,
    layers: Sequence[Mapping[str, str]] = (),
) -> PodOptions | None:
    """Options for one pod, or None when it is not opted in.

    ``layers`` are mapping-file defaults, weakest first; the pod's own
    annotations win over all of them.
    """
    # merge: defaults, then the pod's annotations
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for key, value in layer.items():
            merged[key] = (value, "mapping file")
    if annotations:
        for key in ANNOTATION_KEYS:
            raw = annotations.get(ANNOTATION_PREFIX + key)
            if raw is not None:
                merged[key] = (_text(raw), _annotation_pointer(key))

    # opted in?
    inject = merged.get("inject")
    if inject is None:
        return None
    _check("inject", inject[0], where=inject[1], error=InputError)
    if not _BOOLEAN[inject[0].strip().lower()]:
        return None

    # every value checked, naming the annotation that holds it
    for key, (value, where) in merged.items():
        _check(key, value, where=where, error=InputError)
    if "role-arn" not in merged:
        raise InputError(
            f"the pod asks for injection but names no role: set {ANNOTATION_PREFIX}"
            "role-arn (or a default in the webhook's mapping file)",
            where=_annotation_pointer("role-arn"),
        )

    def get(key: str) -> str | None:
        item = merged.get(key)
        return item[0].strip() if item else None

    native = get("native-sidecar")
    mode: Mode = "credentials-endpoint" if get("mode") == MODES[1] else "web-identity"
    return PodOptions(
        role_arn=str(get("role-arn")),
        client_secret=get("client-secret") or config.client_secret_name,
        audience=get("audience") or config.audience,
        scope=get("scope") or config.scope,
        session_name=get("session-name"),
        region=get("region"),
        skip_containers=frozenset(_split(get("skip-containers") or "")),
        native_sidecar=None if native is None else _BOOLEAN[native.lower()],
        mode=mode,
    )
