"""``inject k8s``: the webhook's patch applied to every pod template of a YAML file.

For clusters where no webhook can be installed. Each document is a Pod or a
workload holding a pod template (Deployment, StatefulSet, DaemonSet,
ReplicaSet, ReplicationController, Job, CronJob; a ``List`` is walked item by
item); anything else passes through as it is. The same annotations, mapping
file, templates and idempotence as the webhook apply, because the same
:func:`plan_pod` builds the patch and ``jsonpatch`` applies it.

Known limit: YAML comments, flow style, quoting and anchors are not kept
(PyYAML drops them; ruamel's round-trip mode would keep them, but measured
over ten times slower on 1000 Deployments, see bench/inject_scaling.py); every
document, field and key order is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from agent import InputError
from injectors.kubernetes.options import InjectorConfig, PodDefaults
from injectors.kubernetes.patch import plan_pod
from injectors.kubernetes.safeinput import compose_documents

__all__ = ["InjectResult", "inject_documents", "load_documents"]

log = logging.getLogger(__name__)

# kind -> JSON pointer tokens from the document to its pod template
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "PodTemplate": ("template",),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


@dataclass
class InjectResult:
    """The rewritten documents and what happened to each pod template."""

    documents: list[Any]
    injected: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_documents(text: str, *, source: str) -> list[tuple[int, Any]]:
    """Parse multi-document YAML into ``(first line, document)`` pairs.

    Empty documents (a stray ``---``) are dropped; a YAML error, a
    self-referencing anchor, nesting or alias expansion beyond the limits of
    :mod:`injectors.kubernetes.safeinput` name the line.
    """
    return compose_documents(text, source=source, error=InputError)


def _templates(
    document: Any, pointer: str, *, at: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod template in a document, with its JSON pointer.

    ``at`` is the document's ``file:line``, for errors.
    """
    if not isinstance(document, dict):
        return
    kind = document.get("kind")
    if kind == "List":
        items = document.get("items")
        if items is None:
            return
        if not isinstance(items, list):
            raise InputError(
                f"a List's items must be a list, got {type(items).__name__}",
                where=f"{at} {pointer}/items",
            )
        for index, item in enumerate(items):
            yield from _templates(item, f"{pointer}/items/{index}", at=at)
        return
    if not isinstance(kind, str) or kind not in TEMPLATE_PATHS:
        return
    node: Any = document
    path = pointer
    for key in TEMPLATE_PATHS[kind]:
        node = node.get(key) if isinstance(node, dict) else None
        path = f"{path}/{key}"
    if not isinstance(node, dict):
        raise InputError(
            f"a {kind} without a pod template", where=f"{at} {path or '/'}"
        )
    yield path, node


def _fresh(value: Any) -> Any:
    """A copy of nested mappings and lists; scalars (immutable) are shared.

    What ``copy.deepcopy`` gives for JSON-shaped data, without its memo.
    """
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    return value


def _label(document: dict[str, Any], template: dict[str, Any]) -> str:
    meta = document.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or "<unnamed>"
    return f"{document.get('kind')}/{name}"


def inject_documents(
    documents: list[tuple[int, Any]],
    *,
    config: InjectorConfig,
    defaults: PodDefaults | None,
    source: str,
    namespace: str = "default",
) -> InjectResult:
    """Patch every opted-in pod template in place; return what was done."""
    import jsonpatch

    result = InjectResult(documents=[doc for _, doc in documents])
    for line, document in documents:
        for pointer, template in _templates(document, "", at=f"{source}:{line}"):
            # the defaults that apply to this template
            meta = document.get("metadata") or {}
            spec = template.get("spec") or {}
            ns = str(meta.get("namespace") or namespace)
            account = str(spec.get("serviceAccountName") or "default")
            layers = defaults.layers(ns, account) if defaults else []
            label = _label(document, template)

            # build the patch, naming file:line and the pointer on bad input
            try:
                plan = plan_pod(template, config=config, layers=layers)
            except InputError as exc:
                raise InputError(
                    f"{label}: {exc.message}",
                    where=f"{source}:{line} {pointer}{exc.where or ''}",
                ) from exc
            result.warnings.extend(f"{label}: {w}" for w in plan.warnings)
            if plan.decision == "not-opted-in":
                log.debug("%s: not opted in, unchanged", label)
                continue

            # apply it where the template lives; the ops hold cached fragments,
            # so their mappings and lists are copied first (no shared objects,
            # no YAML aliases); the strings in them stay shared, saving memory
            jsonpatch.apply_patch(template, _fresh(plan.ops), in_place=True)
            if plan.decision == "injected":
                result.injected.append(label)
            log.info("%s: %s (%d ops)", label, plan.decision, len(plan.ops))
    return result
