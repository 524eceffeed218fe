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

Every value read from the user's file is type-checked where it is read; a
wrong type is an :class:`InputError` whose ``where`` is ``file:line`` and the
key path (``services.web.environment``). Names are reserved: a service, a
top-level volume or a secret named like ours is taken over only when it is
recognisably ours (a service marked ``x-webid-managed``; a volume or secret
with the keys ours has), else refused.
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
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.tokens import CommentToken

from agent import (
    ROLE_ARN_PATTERN,
    TOKEN_DIR,
    TOKEN_PATH,
    ConfigError,
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
EXTENSION_KEYS = ("role-arn", "session-name", "region")


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


def _line(node: Any, key: Any, source: str) -> str:
    """``file:line`` of ``key`` inside a ruamel mapping (or index inside a
    sequence), or just the file (e.g. for a key merged in with ``<<:``)."""
    try:
        if isinstance(node, CommentedSeq):
            line, _ = node.lc.item(key)
        else:
            line, _ = node.lc.key(key)
    except (AttributeError, KeyError, TypeError, IndexError):
        return source
    return f"{source}:{line + 1}"


def _where(node: Any, key: Any, source: str, path: str) -> str:
    """``file:line key.path`` of ``key`` inside ``node``."""
    return f"{_line(node, key, source)} {path}"


def _kind(value: Any) -> str:
    """What a YAML value is, in the words of an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool | ScalarBoolean):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float)


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
        raise InputError(
            f"expected a Compose file (a mapping), got {_kind(data)}", where=source
        )
    services = data.get("services")
    if not isinstance(services, CommentedMap) or not services:
        got = "" if "services" not in data else f", got {_kind(services)}"
        raise InputError(
            f"no services mapping{got}",
            where=_where(data, "services", source, "services"),
        )
    indent, offset = _guess_indent(text)
    return data, indent, offset


def _relative(path: Path, base_dir: Path) -> str:
    """A path as Compose reads it: relative to the project folder."""
    relative = os.path.relpath(path.resolve(), base_dir)
    return relative if relative.startswith("..") else f"./{relative}"


# The agent image's own user; used when no credential file tells a better one.
IMAGE_USER = (10001, 10001)


def _load_rendered(parser: Any, name: str, text: str) -> Any:
    """Parse what a template rendered; a broken (user) template is named."""
    from ruamel.yaml.error import YAMLError

    try:
        return parser.load(text)
    except YAMLError as exc:
        raise ConfigError(
            f"rendered template is not valid YAML: {exc}".splitlines()[0],
            where=f"template compose/{name}",
        ) from exc


def _agent_user(value: str | None, settings: Settings) -> tuple[int, int]:
    """Who the agent services run as: --agent-user, or the credentials' owner.

    Compose bind-mounts a file secret with its host owner and mode, so a
    private (0600) secret is readable in the container only by its owner.
    """
    if value:
        uid, sep, gid = value.partition(":")
        if not (uid.isdigit() and (not sep or gid.isdigit())):
            raise ConfigError(
                f"expected numeric UID:GID, got {value!r}", where="--agent-user"
            )
        return int(uid), int(gid or uid)
    for path in (settings.client_secret_file, settings.client_key_file):
        if path is not None and path.exists():
            info = path.stat()
            return info.st_uid, info.st_gid
    return IMAGE_USER


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


def _extension(
    value: Any, *, label: str, path: str, where: str, source: str
) -> dict[str, Any]:
    """An ``x-webid`` mapping checked: known keys, text (or null) values."""
    unknown = [str(k) for k in value if k not in EXTENSION_KEYS]
    if unknown:
        raise InputError(
            f"{label}unknown x-webid key(s): {', '.join(sorted(unknown))}",
            where=where,
        )
    for key, item in value.items():
        if item is not None and not isinstance(item, str):
            raise InputError(
                f"{label}x-webid {key} must be text, got {_kind(item)}",
                where=_where(value, key, source, f"{path}.{key}"),
            )
    return dict(value)


def _top_extension(data: CommentedMap, source: str) -> dict[str, Any]:
    """The top-level ``x-webid`` defaults (a mapping, or absent)."""
    top = data.get(EXTENSION)
    if top is None:
        return {}
    where = _where(data, EXTENSION, source, EXTENSION)
    if not isinstance(top, dict):
        raise InputError(
            f"the top-level x-webid must be a mapping ({', '.join(EXTENSION_KEYS)}),"
            f" got {_kind(top)}",
            where=where,
        )
    return _extension(top, label="", path=EXTENSION, where=where, source=source)


def _workload_env(
    name: str,
    opt_in: Any,
    top: dict[str, Any],
    defaults: Defaults,
    where: str,
    source: str,
) -> WorkloadEnv:
    """The AWS variables one service asked for with ``x-webid``."""
    if opt_in is True:
        opt_in = {}
    if not isinstance(opt_in, dict):
        raise InputError(
            f"service {name}: x-webid must be true, false or a mapping"
            f" ({', '.join(EXTENSION_KEYS)}), got {_kind(opt_in)} {opt_in!r}",
            where=where,
        )
    opt_in = _extension(
        opt_in,
        label=f"service {name}: ",
        path=f"services.{name}.{EXTENSION}",
        where=where,
        source=source,
    )

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


def _env_names(
    environment: Any, *, source: str, path: str, where: str
) -> dict[str, object]:
    """The variables a service sets, from either form of ``environment``.

    Raises InputError for anything Compose would not take: a mapping of
    scalar values, or a list of ``NAME=value`` / ``NAME`` strings.
    """
    if isinstance(environment, dict):
        for key, value in environment.items():
            if not _scalar(value):
                raise InputError(
                    f"an environment value must be text, a number or null,"
                    f" got {_kind(value)}",
                    where=_where(environment, key, source, f"{path}.{key}"),
                )
        return {str(k): v for k, v in environment.items()}
    if not isinstance(environment, list):
        raise InputError(
            f"environment must be a mapping or a list, got {_kind(environment)}",
            where=where,
        )
    names: dict[str, object] = {}
    for index, item in enumerate(environment):
        if not isinstance(item, str):
            raise InputError(
                f"an environment entry must be NAME=value text, got {_kind(item)}",
                where=_where(environment, index, source, f"{path}[{index}]"),
            )
        key, _, value = item.partition("=")
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
    warnings: list[str],
    shared: set[int],
    source: str,
) -> None:
    wanted = {str(k): str(v) for k, v in fragment["environment"].items()}
    environment = _own(service, "environment", shared)
    path = f"services.{name}.environment"
    at = _where(service, "environment", source, path)
    present = (
        {}
        if environment is None
        else _env_names(environment, source=source, path=path, where=at)
    )
    merge = merge_env(present, wanted)
    warnings.extend(merge.warnings(f"{at}: service {name}"))
    if not merge.added:
        return
    if environment is None:
        service["environment"] = environment = CommentedMap()
    if isinstance(environment, dict):
        for key in wanted:
            if key in merge.added:
                environment[key] = merge.added[key]
        return
    for key, entry in zip(wanted, fragment["environment_list"], strict=True):
        if key in merge.added:
            environment.append(entry)


def _volume_target(entry: Any, where: str) -> tuple[str | None, str | None]:
    """Source and target of a volume entry, short (text) or long (mapping) form."""
    if isinstance(entry, dict):
        for key in ("source", "target"):
            if not isinstance(entry.get(key), str | None):
                raise InputError(
                    f"volume {key} must be text, got {_kind(entry[key])}",
                    where=f"{where}.{key}",
                )
        return entry.get("source") or None, entry.get("target")
    if not isinstance(entry, str):
        raise InputError(
            f"a volume entry must be text or a mapping, got {_kind(entry)}",
            where=where,
        )
    parts = entry.split(":")
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


def _merge_volume(
    service: CommentedMap,
    fragment: CommentedMap,
    name: str,
    shared: set[int],
    file: str,
) -> None:
    volumes = _own(service, "volumes", shared)
    path = f"services.{name}.volumes"
    if volumes is None:
        service["volumes"] = volumes = CommentedSeq()
    if not isinstance(volumes, list):
        raise InputError(
            f"service {name}: volumes must be a list, got {_kind(volumes)}",
            where=_where(service, "volumes", file, path),
        )
    for index, entry in enumerate(volumes):
        at = _where(volumes, index, file, f"{path}[{index}]")
        source, target = _volume_target(entry, at)
        if target is not None and target.rstrip("/") == TOKEN_DIR:
            if source == VOLUME:
                return
            raise InputError(
                f"service {name}: already mounts {source or 'a volume'} at"
                f" {TOKEN_DIR}, where the token goes",
                where=at,
            )
    volumes.append(fragment["volume"])


def _merge_depends_on(
    service: CommentedMap,
    fragment: CommentedMap,
    name: str,
    shared: set[int],
    source: str,
) -> None:
    depends = _own(service, "depends_on", shared)
    path = f"services.{name}.depends_on"
    if isinstance(depends, list):
        # the list form means "started"; the map form can say more
        converted = CommentedMap()
        for index, other in enumerate(depends):
            if not isinstance(other, str):
                raise InputError(
                    f"service {name}: a depends_on entry must be a service name,"
                    f" got {_kind(other)}",
                    where=_where(depends, index, source, f"{path}[{index}]"),
                )
            converted[other] = CommentedMap(condition="service_started")
        service["depends_on"] = depends = converted
    elif depends is None:
        service["depends_on"] = depends = CommentedMap()
    elif not isinstance(depends, dict):
        raise InputError(
            f"service {name}: depends_on must be a list or a mapping,"
            f" got {_kind(depends)}",
            where=_where(service, "depends_on", source, path),
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


def _check_top(data: CommentedMap, key: str, entries: Any, source: str) -> None:
    """Refuse a top-level block of the wrong type, or a user entry with our name.

    An entry named like ours is ours (and replaced) when it is null or has
    exactly the keys ours has: a volume ``{}``, a secret ``{file: ...}``.
    """
    block = data.get(key)
    if block is None or not entries:
        return
    if not isinstance(block, dict):
        raise InputError(
            f"top-level {key} must be a mapping, got {_kind(block)}",
            where=_where(data, key, source, key),
        )
    for name, value in entries.items():
        if name not in block or block[name] is None:
            continue
        mine = block[name]
        if not isinstance(mine, dict) or set(mine) != set(value):
            raise InputError(
                f"a top-level {key[:-1]} named {name} exists and was not added by"
                " webid-agent; rename it",
                where=_where(block, name, source, f"{key}.{name}"),
            )


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
    agent_user: str | None = None,
    templates_dir: Path | None = None,
) -> Result:
    """Wire the sidecar into the Compose document ``text`` (read from ``source``)."""
    data, indent, offset = _load(text, source)
    services: CommentedMap = data["services"]
    top = _top_extension(data, source)
    result = Result(text="")

    # our own services: refuse to take over a name the user uses
    for own in (FIRST_SERVICE, AGENT_SERVICE):
        existing = services.get(own)
        if existing is not None and not (
            isinstance(existing, dict) and existing.get(MANAGED)
        ):
            raise InputError(
                f"a service named {own} exists and was not added by webid-agent",
                where=_where(services, own, source, f"services.{own}"),
            )

    # the sidecar services, volume and secrets
    secrets = _secrets(settings, base_dir)
    uid, gid = _agent_user(agent_user, settings)
    parser = _yaml()
    added = _load_rendered(
        parser,
        "services.yaml.j2",
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
                "uid": uid,
                "gid": gid,
            },
            templates_dir=templates_dir,
        ),
    )

    # top-level volumes and secrets we add to: mappings, our names free
    _check_top(data, "volumes", added.get("volumes"), source)
    _check_top(data, "secrets", added.get("secrets"), source)

    # each opted-in service
    shared = _shared(data)
    fragments: dict[tuple[tuple[str, str], ...], Any] = {}
    for name, service in services.items():
        if name in (FIRST_SERVICE, AGENT_SERVICE):
            continue
        if not isinstance(service, CommentedMap):
            raise InputError(
                f"service {name} must be a mapping, got {_kind(service)}",
                where=_where(services, name, source, f"services.{name}"),
            )
        opt_in = service.get(EXTENSION)
        if opt_in is None or opt_in is False:
            continue
        where = _where(service, EXTENSION, source, f"services.{name}.{EXTENSION}")
        env = _workload_env(str(name), opt_in, top, defaults, where, source)

        # rendered and parsed once per distinct set of variables (parsing is
        # most of the cost); each service gets its own copy, never shared
        # nodes, which would be written out as YAML aliases
        wanted = env.as_env()
        key = tuple(wanted.items())
        if key not in fragments:
            fragments[key] = _load_rendered(
                parser,
                "workload.yaml.j2",
                render(
                    "compose",
                    "workload.yaml.j2",
                    {"env": wanted, "volume": VOLUME, "token_dir": TOKEN_DIR},
                    templates_dir=templates_dir,
                ),
            )
        fragment = copy.deepcopy(fragments[key])
        with _appending(service):
            _merge_env(service, fragment, str(name), result.warnings, shared, source)
            _merge_volume(service, fragment, str(name), shared, source)
            _merge_depends_on(service, fragment, str(name), shared, source)
        result.services.append(str(name))
    if not result.services:
        raise InputError(
            "no service has an x-webid field; add x-webid: {role-arn: ARN} to the"
            " services that need AWS credentials",
            where=_where(data, "services", source, "services"),
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
