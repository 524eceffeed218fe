"""Rewriting a Compose file: round-trip YAML so order and comments survive.

The injected text comes from ``templates/compose/*.j2``; this module parses
what the templates render and merges it into the user's document:

* ``webid-token`` (one-shot, writes the first token) and ``webid-agent``
  (refreshes it) services, marked ``x-webid-managed`` and replaced on each run;
* the named volume ``webid-token`` and one file-based Compose secret per
  credential file (mounted at ``/run/secrets/NAME`` in the agent only);
* for each service with ``x-webid``: the AWS variables (its own values win),
  the volume read-only at the token directory, and ``depends_on`` the
  first-token service completing (list form converted to map form).

Running it on its own output changes nothing.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, MarkedYAMLError
from ruamel.yaml.tokens import CommentToken

from agent import (
    ROLE_ARN_PATTERN,
    TOKEN_DIR,
    TOKEN_PATH,
    InputError,
    Settings,
    SidecarSpec,
    WorkloadEnv,
    merge_env,
    render,
)

__all__ = ["Defaults", "Result", "inject"]

log = logging.getLogger(__name__)

EXTENSION = "x-webid"
MANAGED = "x-webid-managed"
FIRST_SERVICE = "webid-token"
AGENT_SERVICE = "webid-agent"
VOLUME = "webid-token"
SECRETS_DIR = "/run/secrets"


@dataclass(frozen=True)
class Defaults:
    """Role settings for services that say only ``x-webid: true``."""

    role_arn: str | None = None
    session_name: str | None = None
    region: str | None = None


@dataclass
class Result:
    """The rewritten file, the services wired, and what the user should know."""

    text: str
    services: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Secret:
    name: str
    file: str
    option: str


def _line(node: Any, key: str, source: str) -> str:
    """``file:line`` of ``key`` inside a ruamel mapping, or just the file."""
    try:
        line, _ = node.lc.key(key)
    except (AttributeError, KeyError, TypeError):
        return source
    return f"{source}:{line + 1}"


def _yaml(indent: int = 2, offset: int = 0) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=indent, sequence=offset + 2, offset=offset)
    return yaml


def _guess_indent(text: str) -> tuple[int, int]:
    """The file's mapping indent and sequence dash offset, to write it alike."""
    lines = [
        line
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    depths = [
        len(line) - len(line.lstrip())
        for line in lines
        if not line.lstrip().startswith("-")
    ]
    mapping = min((d for d in depths if d > 0), default=2)
    offset: int | None = None
    for previous, line in zip(lines, lines[1:], strict=False):
        stripped = line.lstrip()
        if stripped.startswith("- ") and previous.rstrip().endswith(":"):
            parent = len(previous) - len(previous.lstrip())
            offset = max(0, len(line) - len(stripped) - parent)
            break
    return mapping, offset if offset is not None else 2


def _load(text: str, source: str) -> tuple[CommentedMap, int, int]:
    try:
        data = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise InputError(f"not valid YAML: {exc.problem}", where=where) from exc
    if not isinstance(data, CommentedMap):
        raise InputError("expected a Compose file (a mapping)", where=source)
    services = data.get("services")
    if not isinstance(services, CommentedMap) or not services:
        raise InputError("no services mapping", where=_line(data, "services", source))
    indent, offset = _guess_indent(text)
    return data, indent, offset


def _relative(path: Path, base_dir: Path) -> str:
    """A path as Compose reads it: relative to the project folder."""
    relative = os.path.relpath(path.resolve(), base_dir)
    return relative if relative.startswith("..") else f"./{relative}"


def _secrets(settings: Settings, base_dir: Path) -> list[_Secret]:
    files = [
        ("webid-client-secret", settings.client_secret_file, "--client-secret-file"),
        ("webid-client-cert", settings.client_cert_file, "--client-cert-file"),
        ("webid-client-key", settings.client_key_file, "--client-key-file"),
        ("webid-ca-bundle", settings.ca_bundle, "--ca-bundle"),
    ]
    return [
        _Secret(name, _relative(path, base_dir), option)
        for name, path, option in files
        if path is not None
    ]


def _sidecar_env(settings: Settings, secrets: list[_Secret]) -> dict[str, str]:
    mounted = {s.option: f"{SECRETS_DIR}/{s.name}" for s in secrets}
    spec = SidecarSpec(
        provider=settings.provider,
        authority=settings.authority,
        client_id=settings.client_id,
        tenant_id=settings.tenant_id,
        client_secret_file=mounted.get("--client-secret-file"),
        client_cert_file=mounted.get("--client-cert-file"),
        client_key_file=mounted.get("--client-key-file"),
        auth_method=settings.auth_method,
        scope=settings.scope,
        audience=settings.audience,
        issuer=settings.issuer,
        extra_params=tuple(f"{k}={v}" for k, v in settings.extra_params),
        ca_bundle=mounted.get("--ca-bundle"),
        token_file=TOKEN_PATH,
        refresh_at=settings.refresh_at if settings.refresh_at != 0.8 else None,
    )
    return spec.env()


def _workload_env(
    name: str, opt_in: Any, top: Any, defaults: Defaults, where: str
) -> WorkloadEnv:
    """The AWS variables one service asked for with ``x-webid``."""
    if opt_in is True:
        opt_in = {}
    if not isinstance(opt_in, dict):
        raise InputError(
            f"service {name}: x-webid must be true, false or a mapping"
            f" (role-arn, session-name, region), got {opt_in!r}",
            where=where,
        )
    unknown = set(opt_in) - {"role-arn", "session-name", "region"}
    if unknown:
        raise InputError(
            f"service {name}: unknown x-webid key(s): {', '.join(sorted(unknown))}",
            where=where,
        )
    top = top if isinstance(top, dict) else {}

    def pick(key: str, fallback: str | None) -> str | None:
        value = opt_in.get(key, top.get(key, fallback))
        return str(value) if value is not None else None

    role_arn = pick("role-arn", defaults.role_arn)
    if role_arn is None:
        raise InputError(
            f"service {name}: no role: give x-webid: {{role-arn: ARN}}, a top-level"
            " x-webid role-arn, or --role-arn",
            where=where,
        )
    if not re.match(ROLE_ARN_PATTERN, role_arn):
        raise InputError(f"service {name}: not a role ARN: {role_arn!r}", where=where)
    return WorkloadEnv(
        role_arn=role_arn,
        token_file=TOKEN_PATH,
        session_name=pick("session-name", defaults.session_name),
        region=pick("region", defaults.region),
    )


def _env_names(environment: Any) -> dict[str, object]:
    """The variables a service sets, from either form of ``environment``."""
    if isinstance(environment, dict):
        return {str(k): v for k, v in environment.items()}
    names: dict[str, object] = {}
    for item in environment or []:
        key, _, value = str(item).partition("=")
        names[key] = value
    return names


def _shared(data: Any) -> set[int]:
    """Ids of the nodes that appear more than once (YAML aliases)."""
    seen: set[int] = set()
    shared: set[int] = set()
    stack = [data]
    while stack:
        node = stack.pop()
        if not isinstance(node, CommentedMap | CommentedSeq):
            continue
        if id(node) in seen:
            shared.add(id(node))
            continue
        seen.add(id(node))
        stack.extend(node.values() if isinstance(node, CommentedMap) else node)
    return shared


def _own(service: CommentedMap, key: str, shared: set[int]) -> Any:
    """``service[key]`` as the service's own value, never a shared one.

    A value merged with ``<<:`` or reached through an alias is shared with
    other services; changing it in place would inject into those too, so it
    is copied (without its anchor) first.
    """
    if key not in service:
        return None
    value = service[key]
    merged = key not in dict(service.non_merged_items())
    if merged or id(value) in shared:
        value = copy.deepcopy(value)
        if isinstance(value, CommentedMap | CommentedSeq):
            value.anchor.value = None
            value.anchor.always_dump = False
        service[key] = value
    return value


def _merge_env(
    service: CommentedMap,
    fragment: CommentedMap,
    name: str,
    where: str,
    warnings: list[str],
    shared: set[int],
) -> None:
    wanted = {str(k): str(v) for k, v in fragment["environment"].items()}
    environment = _own(service, "environment", shared)
    merge = merge_env(_env_names(environment), wanted)
    differing = {k for k, v in merge.kept.items() if v != wanted[k]}
    warnings.extend(
        line
        for line, key in zip(
            merge.warnings(f"{where}: service {name}"), merge.kept, strict=True
        )
        if key in differing
    )
    if not merge.added:
        return
    if environment is None:
        service["environment"] = environment = CommentedMap()
    if isinstance(environment, dict):
        for key in wanted:
            if key in merge.added:
                environment[key] = merge.added[key]
        return
    if not isinstance(environment, list):
        raise InputError(
            f"service {name}: environment must be a mapping or a list", where=where
        )
    for key, entry in zip(wanted, fragment["environment_list"], strict=True):
        if key in merge.added:
            environment.append(entry)


def _volume_target(entry: Any) -> tuple[str | None, str | None]:
    if isinstance(entry, dict):
        return (
            str(entry["source"]) if entry.get("source") else None,
            str(entry.get("target")),
        )
    parts = str(entry).split(":")
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


def _merge_volume(
    service: CommentedMap,
    fragment: CommentedMap,
    name: str,
    where: str,
    shared: set[int],
) -> None:
    volumes = _own(service, "volumes", shared)
    if volumes is None:
        service["volumes"] = volumes = CommentedSeq()
    if not isinstance(volumes, list):
        raise InputError(f"service {name}: volumes must be a list", where=where)
    for entry in volumes:
        source, target = _volume_target(entry)
        if target is not None and target.rstrip("/") == TOKEN_DIR:
            if source == VOLUME:
                return
            raise InputError(
                f"service {name}: already mounts {source or 'a volume'} at"
                f" {TOKEN_DIR}, where the token goes",
                where=where,
            )
    volumes.append(fragment["volume"])


def _merge_depends_on(
    service: CommentedMap,
    fragment: CommentedMap,
    name: str,
    where: str,
    shared: set[int],
) -> None:
    depends = _own(service, "depends_on", shared)
    if isinstance(depends, list):
        # the list form means "started"; the map form can say more
        converted = CommentedMap()
        for other in depends:
            converted[str(other)] = CommentedMap(condition="service_started")
        service["depends_on"] = depends = converted
    elif depends is None:
        service["depends_on"] = depends = CommentedMap()
    elif not isinstance(depends, dict):
        raise InputError(
            f"service {name}: depends_on must be a list or a mapping", where=where
        )
    for other, condition in fragment["depends_on"].items():
        if other not in depends:
            depends[other] = condition


def _last_slot(node: Any) -> tuple[Any, Any] | None:
    """The container and key of the deepest last entry under ``node``."""
    while True:
        own = (
            [k for k, _ in node.non_merged_items()]
            if isinstance(node, CommentedMap)
            else []
        )
        if own:
            key: Any = own[-1]
        elif isinstance(node, CommentedSeq) and len(node):
            key = len(node) - 1
        else:
            return None
        value = node[key]
        if isinstance(value, CommentedMap | CommentedSeq) and len(value):
            node = value
            continue
        return node, key


def _slot_index(container: Any) -> int:
    # ruamel keeps a comment after a mapping value at 2, after a sequence item at 0
    return 2 if isinstance(container, CommentedMap) else 0


@contextmanager
def _appending(node: Any) -> Iterator[None]:
    """Keep the blank lines and comments that end ``node`` at its end.

    ruamel attaches what follows a block (blank lines, comments before the
    next key) to the block's last entry; entries appended inside would land
    above it. This moves that trailer to the new last entry.
    """
    trailer = ""
    slot = _last_slot(node)
    if slot is not None:
        container, key = slot
        entry = container.ca.items.get(key)
        token = entry[_slot_index(container)] if entry else None
        if token is not None and "\n" in token.value:
            head, _, trailer = token.value.partition("\n")
            token.value = head + "\n"
    yield
    if not trailer:
        return
    slot = _last_slot(node)
    if slot is None:
        return
    container, key = slot
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    index = _slot_index(container)
    if entry[index] is None:
        entry[index] = CommentToken("\n" + trailer, CommentMark(0), None)
    else:
        entry[index].value = entry[index].value.rstrip("\n") + "\n" + trailer


def _merge_top(data: CommentedMap, key: str, entries: CommentedMap) -> None:
    block = data.get(key)
    if block is None:
        data[key] = block = CommentedMap()
    for name, value in entries.items():
        block[name] = value


def inject(
    text: str,
    *,
    source: str,
    base_dir: Path,
    settings: Settings,
    defaults: Defaults,
    image: str,
    deadline: int,
    templates_dir: Path | None = None,
) -> Result:
    """Wire the sidecar into the Compose document ``text`` (read from ``source``)."""
    data, indent, offset = _load(text, source)
    services: CommentedMap = data["services"]
    top = data.get(EXTENSION)
    result = Result(text="")

    # our own services: refuse to take over a name the user uses
    for own in (FIRST_SERVICE, AGENT_SERVICE):
        existing = services.get(own)
        if existing is not None and not (
            isinstance(existing, dict) and existing.get(MANAGED)
        ):
            raise InputError(
                f"a service named {own} exists and was not added by webid-agent",
                where=_line(services, own, source),
            )

    # the sidecar services, volume and secrets
    secrets = _secrets(settings, base_dir)
    parser = _yaml()
    added = parser.load(
        render(
            "compose",
            "services.yaml.j2",
            {
                "image": image,
                "deadline": deadline,
                "agent_env": _sidecar_env(settings, secrets),
                "secrets": [{"name": s.name, "file": s.file} for s in secrets],
                "volume": VOLUME,
                "token_dir": TOKEN_DIR,
            },
            templates_dir=templates_dir,
        )
    )

    # each opted-in service
    shared = _shared(data)
    for name, service in services.items():
        if name in (FIRST_SERVICE, AGENT_SERVICE):
            continue
        if not isinstance(service, CommentedMap):
            continue
        opt_in = service.get(EXTENSION)
        if opt_in is None or opt_in is False:
            continue
        where = _line(service, EXTENSION, source)
        env = _workload_env(str(name), opt_in, top, defaults, where)
        fragment = parser.load(
            render(
                "compose",
                "workload.yaml.j2",
                {
                    "env": env.as_env(),
                    "volume": VOLUME,
                    "token_dir": TOKEN_DIR,
                },
                templates_dir=templates_dir,
            )
        )
        with _appending(service):
            _merge_env(service, fragment, str(name), where, result.warnings, shared)
            _merge_volume(service, fragment, str(name), where, shared)
            _merge_depends_on(service, fragment, str(name), where, shared)
        result.services.append(str(name))
    if not result.services:
        raise InputError(
            "no service has an x-webid field; add x-webid: {role-arn: ARN} to the"
            " services that need AWS credentials",
            where=_line(data, "services", source),
        )

    # merge: our services replace earlier copies in place, others are appended
    with _appending(services):
        for own, definition in added["services"].items():
            services[own] = definition
    with _appending(data):
        _merge_top(data, "volumes", added["volumes"])
        if "secrets" in added:
            _merge_top(data, "secrets", added["secrets"])

    out = io.StringIO()
    _yaml(indent, offset).dump(data, out)
    result.text = out.getvalue()
    log.debug("wired %d service(s) in %s", len(result.services), source)
    return result
