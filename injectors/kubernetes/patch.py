"""Pure JSON Patch building: a pod (or pod template) and settings in, ops out.

The patch only *adds*: env entries, volume mounts, volumes, containers and the
marker annotation, each at its own path, creating a missing array first. It
never replaces a container or a list, so fields this code does not know
(new probe kinds, future fields) reach the API server untouched.

Idempotence is structural, not marker-based: every addition is skipped when
its target is already there (an env name, a mount of the token volume or at
the token folder, a volume name, a container name). A second admission of a
patched pod therefore adds only what a later webhook's new containers lack,
with or without the ``webid-agent.io/injected`` marker.

Names are reserved: a container named like one of ours (``webid-init``,
``webid-agent``) or a volume named like one of ours (``webid-token``,
``webid-client``, ``webid-ca``) counts as present only when it is recognisably
ours (see :func:`_check_reserved`); anything else with such a name is refused,
because skipping it would leave the pod without credentials while marking it
injected.

Ops are ordered so indices stay right when applied in sequence: edits of
existing containers first (original indices), then volumes, then the new
init containers inserted at the front, then the sidecar, then the marker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from agent import TOKEN_DIR, InputError, merge_env
from injectors.kubernetes.fragments import Fragments, fragments
from injectors.kubernetes.options import (
    MARKER_ANNOTATION,
    InjectorConfig,
    PodOptions,
    escape_pointer,
    resolve_pod,
)

__all__ = ["PatchOp", "Plan", "plan_pod"]

# the C string encoder json.dumps itself uses (ASCII output, quotes included)
_encode_string = json.encoder.encode_basestring_ascii
MARKER_PATH = "/metadata/annotations/" + escape_pointer(MARKER_ANNOTATION)
Decision = Literal["injected", "unchanged", "not-opted-in"]


class PatchOp(TypedDict):
    """One RFC 6902 operation; this module only ever emits ``add``."""

    op: Literal["add"]
    path: str
    value: Any


@dataclass
class Plan:
    """What to do with one pod: the decision, the ops and warnings for the user."""

    decision: Decision
    ops: list[PatchOp] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    options: PodOptions | None = None
    fragments: Fragments | None = None

    def patch_json(self) -> str:
        """The ops as compact JSON, exactly as ``json.dumps`` would write them.

        Pieces rendered from templates are cached with their JSON, so only
        paths and the few per-pod values are encoded here.
        """
        encoded = self.fragments.encoded if self.fragments else {}
        parts = []
        for op in self.ops:
            value = op["value"]
            text = encoded.get(id(value))
            if text is None:
                if isinstance(value, list) and all(id(v) in encoded for v in value):
                    text = "[" + ",".join(encoded[id(v)] for v in value) + "]"
                else:
                    text = json.dumps(value, separators=(",", ":"))
            parts.append(
                '{"op":"add","path":'
                + json.dumps(op["path"])
                + ',"value":'
                + text
                + "}"
            )
        return "[" + ",".join(parts) + "]"


def _add(path: str, value: Any) -> PatchOp:
    return {"op": "add", "path": path, "value": value}


def _object(value: Any, pointer: str, *, required: bool = False) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise InputError("expected an object", where=pointer)
    return value


def _array(parent: Mapping[str, Any], key: str, pointer: str) -> list[Any] | None:
    """``parent[key]`` as a list of objects, or None when absent or null."""
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise InputError("expected an array", where=f"{pointer}/{key}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InputError("expected an object", where=f"{pointer}/{key}/{index}")
    return value


def _append(
    ops: list[PatchOp], existing: list[Any] | None, pointer: str, items: Sequence[Any]
) -> None:
    """Append ``items`` to the array at ``pointer``, creating it when missing."""
    if not items:
        return
    if existing is None:
        ops.append(_add(pointer, list(items)))
    else:
        ops.extend(_add(f"{pointer}/-", item) for item in items)


def _container_names(items: list[Any] | None, pointer: str) -> list[str]:
    names = []
    for index, item in enumerate(items or ()):
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InputError("container without a name", where=f"{pointer}/{index}")
        names.append(name)
    return names


def _image_name(image: Any) -> str:
    """The repository's last path segment: no registry, folder, tag or digest."""
    if not isinstance(image, str):
        return ""
    return image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]


def _is_agent_container(
    container: Mapping[str, Any], piece: Mapping[str, Any], frag: Fragments
) -> bool:
    """Whether ``container`` is the agent container ``piece`` from an injection.

    Ours means all three of: the same image repository name (registry and tag
    may differ: an earlier injection may have used another version), the same
    first argument (the agent's subcommand, ``token`` or ``run``) and the token
    volume mounted at the token folder.
    """
    args = container.get("args")
    wanted = piece.get("args")
    if not isinstance(args, list) or not args or not isinstance(wanted, list):
        return False
    mounts = container.get("volumeMounts")
    token = (frag.token_volume["name"], frag.workload_mount["mountPath"])
    return (
        _image_name(container.get("image")) == _image_name(piece.get("image"))
        and bool(wanted)
        and args[0] == wanted[0]
        and isinstance(mounts, list)
        and any(
            isinstance(m, dict) and (m.get("name"), m.get("mountPath")) == token
            for m in mounts
        )
    )


def _check_reserved(
    inits: list[Any] | None,
    containers: list[Any],
    volumes: list[Any] | None,
    frag: Fragments,
) -> None:
    """Refuse user containers and volumes that carry one of our names.

    The init container is ours only among ``initContainers``; the sidecar in
    either list (plain or native). A volume with one of our names is ours when
    it has the same kind of source as the one we render (``emptyDir``,
    ``secret``, ``configMap``, or whatever an overriding template makes).
    """
    # containers: image, subcommand and token mount must be ours
    pieces = {frag.init_container["name"]: frag.init_container}
    pieces[frag.sidecar["name"]] = frag.sidecar
    roles = {frag.init_container["name"]: "token init container"}
    roles[frag.sidecar["name"]] = "refresh sidecar"
    for key, items in (("initContainers", inits), ("containers", containers)):
        for index, container in enumerate(items or ()):
            name = container["name"]
            piece = pieces.get(name)
            if piece is None:
                continue
            placed = key == "initContainers" or piece is frag.sidecar
            if placed and _is_agent_container(container, piece, frag):
                continue
            wanted = piece.get("args") or [""]
            raise InputError(
                f"container {name!r} has the reserved name of webid-agent's"
                f" {roles[name]} but is not one (that has image"
                f" .../{_image_name(piece.get('image'))}, args starting with"
                f" {wanted[0]!r} and volume {frag.token_volume['name']!r} mounted"
                f" at {frag.workload_mount['mountPath']}); rename the container",
                where=f"/spec/{key}/{index}/name",
            )

    # volumes: the source kind must be the one we render
    ours = {v["name"]: v for v in (frag.token_volume, *frag.agent_volumes)}
    for index, volume in enumerate(volumes or ()):
        piece = ours.get(volume.get("name"))
        if piece is None:
            continue
        kind = sorted(set(piece) - {"name"})
        if sorted(k for k in volume if k != "name") != kind:
            raise InputError(
                f"volume {volume['name']!r} has a name reserved by webid-agent"
                f" but is not its volume (that is a {', '.join(kind)} volume);"
                " rename the volume",
                where=f"/spec/volumes/{index}/name",
            )


def _native(
    config: InjectorConfig, options: PodOptions, inits: list[Any] | None
) -> bool:
    """Native sidecar or plain container, for this pod."""
    if config.native_sidecar != "auto":
        return config.native_sidecar == "always"
    if options.native_sidecar is not None:
        return options.native_sidecar
    # a pod that already has a native sidecar proves the API server knows them
    if any(item.get("restartPolicy") == "Always" for item in inits or ()):
        return True
    return config.native_by_default()


def _workload_ops(
    container: dict[str, Any],
    pointer: str,
    frag: Fragments,
    warnings: list[str],
) -> list[PatchOp]:
    """Env entries and the token mount one workload container lacks."""
    ops: list[PatchOp] = []
    name = container["name"]

    # env: a variable the container already sets keeps its value
    env = _array(container, "env", pointer)
    present: dict[str, Any] = {}
    for index, entry in enumerate(env or ()):
        if not isinstance(entry.get("name"), str):
            raise InputError("env entry without a name", where=f"{pointer}/env/{index}")
        present[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    wanted = {entry["name"]: str(entry["value"]) for entry in frag.workload_env}
    merge = merge_env(present, wanted)
    warnings.extend(merge.warnings(f"container {name}"))
    missing = [entry for entry in frag.workload_env if entry["name"] in merge.added]
    _append(ops, env, f"{pointer}/env", missing)

    # the token mount: skipped when the volume or the folder is mounted already
    mounts = _array(container, "volumeMounts", pointer)
    mount = frag.workload_mount
    clash = None
    for item in mounts or ():
        if item.get("name") == mount["name"]:
            break
        if item.get("mountPath") == mount["mountPath"]:
            clash = item.get("name")
            break
    else:
        _append(ops, mounts, f"{pointer}/volumeMounts", [mount])
    if clash is not None:
        warnings.append(
            f"container {name}: volume {clash!r} is mounted at {TOKEN_DIR}; "
            "the token volume is not mounted there"
        )
    return ops


def plan_pod(
    pod: Mapping[str, Any],
    *,
    config: InjectorConfig,
    layers: Sequence[Mapping[str, str]] = (),
) -> Plan:
    """The JSON Patch that wires webid-agent into ``pod`` (a Pod or pod template).

    Raises InputError (``where`` is a JSON pointer into ``pod``) for a pod that
    asks for injection with bad annotations, or whose shape is not a pod's.
    """
    # opted in?
    metadata = _object(pod.get("metadata"), "/metadata")
    annotations = _object(metadata.get("annotations"), "/metadata/annotations")
    options = resolve_pod(annotations, config=config, layers=layers)
    if options is None:
        return Plan("not-opted-in")

    # the pod's shape
    spec = _object(pod.get("spec"), "/spec", required=True)
    containers = _array(spec, "containers", "/spec")
    if not containers:
        raise InputError("a pod needs at least one container", where="/spec/containers")
    inits = _array(spec, "initContainers", "/spec")
    volumes = _array(spec, "volumes", "/spec")
    init_names = _container_names(inits, "/spec/initContainers")
    names = set(init_names) | set(_container_names(containers, "/spec/containers"))
    security = _object(spec.get("securityContext"), "/spec/securityContext")
    frag = fragments(
        config,
        options,
        native=_native(config, options, inits),
        fs_group=security.get("fsGroup") is not None,
    )
    _check_reserved(inits, containers, volumes, frag)
    init_name = frag.init_container["name"]
    sidecar_name = frag.sidecar["name"]
    ours = {init_name, sidecar_name}
    plan = Plan("unchanged", options=options, fragments=frag)
    for skipped in sorted(options.skip_containers - names):
        plan.warnings.append(f"skip-containers names no container {skipped!r}")

    # env and token mount for every workload container, init containers too
    for key, items in (("initContainers", inits), ("containers", containers)):
        for index, container in enumerate(items or ()):
            name = container["name"]
            if name in ours or name in options.skip_containers:
                continue
            pointer = f"/spec/{key}/{index}"
            plan.ops.extend(_workload_ops(container, pointer, frag, plan.warnings))

    # volumes: the token volume always; agent-only ones with a new agent container
    # (a name taken anywhere counts as present: container names are pod-unique)
    add_init = init_name not in names
    add_sidecar = sidecar_name not in names
    volume_names = {item.get("name") for item in volumes or ()}
    wanted = [frag.token_volume]
    if add_init or add_sidecar:
        wanted.extend(frag.agent_volumes)
    missing = [v for v in wanted if v["name"] not in volume_names]
    _append(plan.ops, volumes, "/spec/volumes", missing)

    # the token init container first, a native sidecar right after it
    native = frag.sidecar.get("restartPolicy") == "Always"
    front = [frag.init_container] if add_init else []
    if add_sidecar and native:
        front.append(frag.sidecar)
    if front and inits is None:
        plan.ops.append(_add("/spec/initContainers", front))
    elif front:
        start = init_names.index(init_name) + 1 if init_name in init_names else 0
        plan.ops.extend(
            _add(f"/spec/initContainers/{start + offset}", item)
            for offset, item in enumerate(front)
        )
    if add_sidecar and not native:
        plan.ops.append(_add("/spec/containers/-", frag.sidecar))

    # the marker annotation, creating metadata or annotations when missing
    if annotations.get(MARKER_ANNOTATION) != "true":
        if pod.get("metadata") is None:
            marker = _add("/metadata", {"annotations": {MARKER_ANNOTATION: "true"}})
        elif metadata.get("annotations") is None:
            marker = _add("/metadata/annotations", {MARKER_ANNOTATION: "true"})
        else:
            marker = _add(MARKER_PATH, "true")
        plan.ops.append(marker)
    plan.decision = "injected" if plan.ops else "unchanged"
    return plan
