"""Injection into an HCL2 job file by editing the original text.

The file is parsed into a positional model (:mod:`.hclsource`); the injector
computes a list of edits (insert rendered snippets before a block's closing
brace, remove the tasks a previous run added) and applies them to the
original text. Everything else - expressions, variables, heredocs, comments,
alignment - stays byte for byte as the user wrote it. The result is parsed
again and its structure checked before anything is written.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

from agent import ENV_ROLE_ARN, InputError, merge_env

from .hclsource import Attribute, Block, HclSource, layout_problems, parse_hcl
from .options import (
    META_MODE_KEY,
    META_ROLE_KEY,
    OWN_TASKS,
    GroupRole,
    InjectConfig,
    Mode,
    check_mode,
    check_role_arn,
    not_our_task,
    own_task_clash,
)
from .snippets import Snippets

__all__ = ["HclResult", "inject_hcl", "static_structure"]

log = logging.getLogger(__name__)

_PLAIN_STRING = re.compile(r'^"([^"\\$%]*)"$')
_PLACEHOLDER_ROLE = "arn:aws:iam::000000000000:role/placeholder"


@dataclass
class HclResult:
    """The rewritten text, what was injected, and what the user should know."""

    text: str
    injected: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str


# -- reading the job ----------------------------------------------------------


def _where(src: HclSource, offset: int) -> str:
    return f"{src.path}:{src.line_of(offset)}"


def _the_job(src: HclSource) -> Block:
    jobs = [b for b in src.blocks if b.type == "job"]
    if not jobs:
        raise InputError("no job block found", where=src.path)
    if len(jobs) > 1:
        raise InputError(
            f"{len(jobs)} job blocks in one file; give one job per file",
            where=_where(src, jobs[1].start),
        )
    return jobs[0]


def _groups(src: HclSource, job: Block) -> tuple[list[Block], list[Block]]:
    """Static groups and ``dynamic "group"`` blocks; names must be unique."""
    groups = job.children("group")
    dynamic = [b for b in job.children("dynamic") if b.label == "group"]
    if not groups and not dynamic:
        raise InputError(
            f"job {job.label!r} has no group", where=_where(src, job.start)
        )
    seen: set[str] = set()
    for group in groups:
        if group.label in seen:
            raise InputError(
                f"group {group.label!r} is defined twice",
                where=_where(src, group.start),
            )
        seen.add(group.label)
    return groups, dynamic


def _meta(src: HclSource, group: Block, key: str) -> tuple[str, int] | None:
    """A group meta entry's source text and offset, from a ``meta`` block or a
    ``meta = {...}`` attribute."""
    found: tuple[str, int] | None = None
    for meta in group.children("meta"):
        attr = meta.attribute(key)
        if attr is not None:
            found = attr.value, attr.start
    meta_attr = group.attribute("meta")
    if meta_attr is not None and meta_attr.obj and key in meta_attr.obj.keys:
        found = meta_attr.obj.keys[key], meta_attr.start
    return found


def _meta_role(src: HclSource, group: Block) -> GroupRole | None:
    """``webid_role_arn`` from the group meta: a literal ARN or an expression."""
    found = _meta(src, group, META_ROLE_KEY)
    if found is None:
        return None
    value, at = found
    literal = _PLAIN_STRING.match(value)
    if literal:
        arn = check_role_arn(literal.group(1), where=_where(src, at))
        return GroupRole(value=arn, hcl=value)
    # an expression (var.role, local.x): Nomad evaluates it, we copy it as is
    return GroupRole(value=None, hcl=value)


def _meta_mode(src: HclSource, group: Block, default: Mode) -> Mode:
    """``webid_mode`` from the group meta (a string literal), else ``default``."""
    found = _meta(src, group, META_MODE_KEY)
    if found is None:
        return default
    value, at = found
    literal = _PLAIN_STRING.match(value.strip())
    if not literal:
        # the mode decides which tasks and variables are written: it must be
        # known here, so an expression cannot be left to Nomad
        raise InputError(
            f"meta {META_MODE_KEY} must be a string literal, got {value.strip()}",
            where=_where(src, at),
        )
    return check_mode(literal.group(1), where=_where(src, at))


def _check_shared_loopback(src: HclSource, group: Block) -> str | None:
    """Refuse a group whose tasks do not share a network namespace.

    In credentials-endpoint mode the workload reaches the agent on
    127.0.0.1. Only ``bridge`` and ``cni/*`` network modes give the tasks
    of a group one namespace; in ``host`` mode (the default) loopback is the
    client's, shared by every allocation: two allocations would fight over
    the port and any process on the host could reach the endpoint. Returns
    a warning when the mode is an expression that cannot be checked here.
    """
    mode_attr = None
    for network in group.children("network"):
        mode_attr = network.attribute("mode") or mode_attr
    where = _where(src, mode_attr.start if mode_attr else group.start)
    if mode_attr is None:
        mode = "host"
    else:
        literal = _PLAIN_STRING.match(mode_attr.value.strip())
        if not literal:
            return (
                f"{where}: network mode is an expression "
                f"({mode_attr.value.strip()}); credentials-endpoint mode needs "
                '"bridge" (or a CNI network) so tasks share the agent\'s loopback'
            )
        mode = literal.group(1)
    if mode != "bridge" and not mode.startswith("cni/"):
        raise InputError(
            f"group {group.label!r} uses network mode {mode!r}: in"
            " credentials-endpoint mode its tasks reach the agent on 127.0.0.1,"
            " so they must share one network namespace; add network { mode ="
            ' "bridge" } to the group (or use webid_mode = "web-identity")',
            where=where,
        )
    return None


def _check_own_task(src: HclSource, task: Block) -> None:
    """Refuse a user task that has the name of one of ours (see options)."""
    hook = sidecar = None
    for lifecycle in task.children("lifecycle"):
        hook = lifecycle.attribute("hook") or hook
        sidecar = lifecycle.attribute("sidecar") or sidecar
    env: set[str] = {a.name for b in task.children("env") for a in b.attributes}
    env_attr = task.attribute("env")
    if env_attr is not None and env_attr.obj is not None:
        env |= set(env_attr.obj.keys)
    hook_literal = _PLAIN_STRING.match(hook.value.strip()) if hook else None
    reason = not_our_task(
        task.label,
        hook=hook_literal.group(1) if hook_literal else None,
        sidecar=sidecar is not None and sidecar.value.strip() == "true",
        env=env,
    )
    if reason is not None:
        raise InputError(
            own_task_clash(task.label, reason), where=_where(src, task.start)
        )


def static_structure(src: HclSource) -> dict[str, tuple[int, dict[str, int]]]:
    """Group name -> (line, {static task name: line}) as written in the file."""
    job = _the_job(src)
    return {
        g.label: (g.line, {t.label: t.line for t in g.children("task")})
        for g in job.children("group")
    }


# -- layout helpers -------------------------------------------------------------


def _unit(src: HclSource, job: Block, groups: list[Block]) -> str:
    """The file's indentation step, guessed from job -> group nesting."""
    if groups:
        outer, inner = src.indent_at(job.start), src.indent_at(groups[0].start)
        if inner.startswith(outer) and len(inner) > len(outer):
            return inner[len(outer) :]
    return "  "


def _indent_of(src: HclSource, block: Block, unit: str) -> str:
    """The indentation ``block`` has once every block it shares a line with is
    split: its line's, or one step inside its parent's body."""
    if block.parent is None or not block.parent.type:
        return src.indent_at(block.start)
    if src.only_space_before(block.start):
        return src.indent_at(block.start)
    return _child_indent(src, block.parent, unit)


def _child_indent(src: HclSource, block: Block, unit: str) -> str:
    """The indentation of ``block``'s body: its first item's, else one step in."""
    first = block.first_item_start()
    if first is not None and src.only_space_before(first):
        return src.indent_at(first)
    return _indent_of(src, block, unit) + unit


def _reindent(snippet: str, *, base: str, unit: str, newline: str) -> str:
    """Shift a snippet written with 2-space steps to the file's indentation."""
    lines = []
    for line in snippet.splitlines():
        stripped = line.lstrip(" ")
        if not stripped:
            lines.append("")
            continue
        depth = (len(line) - len(stripped)) // 2
        lines.append(base + unit * depth + stripped)
    return newline.join(lines) + newline


@dataclass
class _Insertion:
    """Text to add at the end of one block's body (each piece ends a line)."""

    bodies: list[str] = field(default_factory=list)
    blank_line: bool = False


def _layout_edits(
    src: HclSource,
    *,
    split: dict[int, Block],
    inserts: dict[int, _Insertion],
    unit: str,
) -> list[_Edit]:
    """Edits giving each block of ``split`` its own lines, plus the insertions.

    HCL accepts a one-line block only with a single argument and its closing
    brace on the same line, so a block we add lines to - and every block
    around it - must have ``{`` end its line and ``}`` start one. Content
    sharing the ``{`` line moves to the next line; the closing brace moves
    to its own line at the block's indentation. Nothing else changes.
    ``split`` and ``inserts`` are keyed by the offset of the block's ``{``.
    """
    nl = src.newline
    edits: list[_Edit] = []
    for key, block in split.items():
        # the opening brace ends its line
        first = src.content_after(block.open + 1)
        if first is not None and first != block.close:
            at = max(src.blank_start(first), block.open + 1)
            edits.append(_Edit(at, first, nl + _child_indent(src, block, unit)))

        # what is added, then the closing brace on a line of its own
        insertion = inserts.get(key)
        body = "".join(insertion.bodies) if insertion else ""
        if body and insertion and insertion.blank_line:
            body = nl + body
        if src.only_space_before(block.close):
            if body:
                at = src.line_start(block.close)
                edits.append(_Edit(at, at, body))
            continue
        at = max(src.blank_start(block.close), block.open + 1)
        indent = _indent_of(src, block, unit)
        edits.append(_Edit(at, block.close, nl + body + indent))
    return edits


def _line_span(src: HclSource, block: Block) -> tuple[int, int]:
    """A whole-line span covering ``block`` and one blank line before it."""
    start = src.line_start(block.start)
    end = src.text.find("\n", block.close)
    end = len(src.text) if end < 0 else end + 1
    before = src.line_start(start - 1) if start > 0 else start
    if start > 0 and not src.text[before:start].strip():
        start = before
    return start, end


# -- the injection --------------------------------------------------------------


class _HclInjector:
    def __init__(self, src: HclSource, config: InjectConfig, snippets: Snippets):
        self.src = src
        self.config = config
        self.snippets = snippets
        self.edits: list[_Edit] = []
        self.warnings: list[str] = []
        # blocks that get lines added (and every block around them), by "{"
        self.split: dict[int, Block] = {}
        self.inserts: dict[int, _Insertion] = {}

    def run(self) -> HclResult:
        src, config = self.src, self.config
        job = _the_job(src)
        groups, dynamic = _groups(src, job)
        self.unit = _unit(src, job, groups)
        for block in dynamic:
            self.warnings.append(
                f'{_where(src, block.start)}: dynamic "group" blocks are not '
                "injected from the file; use --plan/--submit so Nomad expands "
                "them first"
            )

        # which groups, with which role
        names = {g.label for g in groups}
        unknown = [n for n in config.groups if n not in names]
        if unknown:
            raise InputError(
                f"no group named {', '.join(map(repr, unknown))} in job "
                f"{job.label!r} (groups: {', '.join(sorted(names))})",
                where="--group",
            )
        injected: list[str] = []
        for group in groups:
            if config.groups and group.label not in config.groups:
                continue
            role = _meta_role(src, group)
            if role is None and config.role_arn:
                role = GroupRole(value=config.role_arn)
            if role is None:
                if config.groups:
                    raise InputError(
                        f"group {group.label!r} has no meta {META_ROLE_KEY} and "
                        "no --role-arn was given",
                        where=_where(src, group.start),
                    )
                continue
            self._group(job, group, role)
            injected.append(group.label)
        if not injected:
            self.warnings.append(
                f"{src.path}: no group has meta {META_ROLE_KEY} and no --role-arn "
                "was given; the job is unchanged"
            )
        return HclResult(text=self._apply(), injected=injected, warnings=self.warnings)

    # -- one group ----------------------------------------------------------

    def _group(self, job: Block, group: Block, role: GroupRole) -> None:
        src = self.src
        mode = _meta_mode(src, group, self.config.mode)
        if mode == "credentials-endpoint":
            warning = _check_shared_loopback(src, group)
            if warning:
                self.warnings.append(warning)
        context = self.config.group_context(
            job_id=job.label, group=group.label, role=role, mode=mode
        )
        entries = self._entries(role, mode)

        # the workload tasks: static ones and the content of dynamic ones
        for task in group.children("task"):
            if task.label not in OWN_TASKS:
                self._task_env(task, task.label, entries, context)
        for dyn in group.children("dynamic"):
            if dyn.label == "task":
                for content in dyn.children("content"):
                    name = f"dynamic {dyn.label}"
                    self._task_env(content, name, entries, context)

        # our own tasks: drop a previous run's, add the current ones
        for task in group.children("task"):
            if task.label in OWN_TASKS:
                _check_own_task(src, task)
                start, end = _line_span(src, task)
                self.edits.append(_Edit(start, end, ""))
        snippet = self.snippets.text("tasks.hcl.j2", context)
        self._insert(group, snippet, blank_line=True)

    def _entries(self, role: GroupRole, mode: Mode) -> list[dict[str, str | None]]:
        env = self.config.workload_env(role.value or _PLACEHOLDER_ROLE, mode=mode)
        return [
            {
                "name": name,
                "value": value,
                "hcl": role.hcl if name == ENV_ROLE_ARN else None,
            }
            for name, value in env.items()
        ]

    # -- one workload task --------------------------------------------------

    def _task_env(
        self,
        task: Block,
        name: str,
        entries: list[dict[str, str | None]],
        context: dict[str, object],
    ) -> None:
        src = self.src
        where = f"{_where(src, task.start)} task {name!r}"
        pair = " and ".join(str(e["name"]) for e in entries[:2])
        for template in task.children("template"):
            env_attr = template.attribute("env")
            if env_attr is not None and env_attr.value.strip() == "true":
                self.warnings.append(
                    f"{where}: sets env from a template (env = true); if it sets "
                    f"{pair.replace(' and ', ' or ')} that value wins"
                )
        if any(b.label == "env" for b in task.children("dynamic")):
            self.warnings.append(f"{where}: has a dynamic env block; check its AWS_*")

        env_blocks = task.children("env")
        env_attr = task.attribute("env")
        existing: dict[str, str] = {}
        if env_blocks:
            existing = {a.name: a.value for b in env_blocks for a in b.attributes}
        elif env_attr is not None:
            if env_attr.obj is None:
                self.warnings.append(
                    f"{where}: env is an expression ({env_attr.value.strip()}); "
                    f"add {pair} to it yourself"
                )
                return
            existing = dict(env_attr.obj.keys)

        # what to add, what the task keeps (and whether it differs from ours)
        wanted = {str(e["name"]): _hcl_value(e) for e in entries}
        merge = merge_env({k: str(v).strip() for k, v in existing.items()}, wanted)
        self.warnings.extend(merge.warnings(where))
        added = [e for e in entries if e["name"] in merge.added]
        if not added:
            return
        local = {**context, "entries": added}

        # into the existing env block or object, else a new env block
        if env_blocks:
            lines = self.snippets.text("env_entries.hcl.j2", local)
            self._insert(env_blocks[-1], lines, blank_line=False)
        elif env_attr is not None and env_attr.obj is not None:
            self._into_object(task, env_attr, local)
        else:
            block = self.snippets.text("env_block.hcl.j2", local)
            self._insert(task, block, blank_line=task.first_item_start() is not None)

    def _insert(self, block: Block, snippet: str, *, blank_line: bool) -> None:
        """Add ``snippet`` at the end of ``block``'s body, at its indentation."""
        src = self.src
        body = _reindent(
            snippet,
            base=_child_indent(src, block, self.unit),
            unit=self.unit,
            newline=src.newline,
        )
        insertion = self.inserts.setdefault(block.open, _Insertion())
        insertion.bodies.append(body)
        insertion.blank_line = insertion.blank_line or blank_line
        self._needs_own_lines(block)

    def _needs_own_lines(self, block: Block) -> None:
        """``block`` and the blocks around it get ``{`` and ``}`` lines."""
        for outer in block.ancestors():
            if outer.open in self.split:
                break  # its ancestors are in already
            self.split[outer.open] = outer

    def _into_object(
        self, task: Block, attr: Attribute, context: dict[str, object]
    ) -> None:
        """Add entries to an ``env = { ... }`` object (an expression, where
        newlines may separate the elements anywhere)."""
        src = self.src
        obj = attr.obj
        assert obj is not None  # noqa: S101 - checked by the caller
        indent = _child_indent(src, task, self.unit)
        if src.only_space_before(attr.start):
            indent = src.indent_at(attr.start)
        first_key_line = None
        if obj.keys:
            # the first element's line, if the object spans several lines
            after_open = src.text.find("\n", obj.start, obj.close)
            if after_open >= 0:
                first_key_line = after_open + 1
        if first_key_line is not None and src.only_space_before(obj.close):
            base = src.indent_at(first_key_line)
        else:
            base = indent + self.unit
        lines = self.snippets.text("env_entries.hcl.j2", context)
        body = _reindent(lines, base=base, unit=self.unit, newline=src.newline)
        if src.only_space_before(obj.close):
            at = src.line_start(obj.close)
            self.edits.append(_Edit(at, at, body))
        else:
            at = max(src.blank_start(obj.close), obj.start + 1)
            self.edits.append(_Edit(at, obj.close, src.newline + body + indent))
        self._needs_own_lines(task)

    # -- applying the edits -------------------------------------------------

    def _apply(self) -> str:
        text = self.src.text
        layout = _layout_edits(
            self.src, split=self.split, inserts=self.inserts, unit=self.unit
        )
        ordered = sorted(self.edits + layout, key=lambda e: (e.start, e.end))
        for before, after in zip(ordered, ordered[1:], strict=False):
            if before.end > after.start:
                raise InputError(
                    "overlapping edits (unexpected layout)",
                    where=_where(self.src, after.start),
                )

        # one pass: the text between edits, then each edit's new text
        pieces: list[str] = []
        done = 0
        for edit in ordered:
            pieces += (text[done : edit.start], edit.text)
            done = edit.end
        pieces.append(text[done:])
        return "".join(pieces)


def _hcl_value(entry: dict[str, str | None]) -> str:
    """The HCL source text we write for one env entry."""
    if entry["hcl"] is not None:
        return entry["hcl"]
    return json.dumps(entry["value"])


# -- checking the result ----------------------------------------------------------


def _check(before: HclSource, after: HclSource, injected: list[str]) -> None:
    """The rewritten job keeps every group and task, and adds ours once."""
    old = {g: list(t) for g, (_, t) in static_structure(before).items()}
    new = {g: list(t) for g, (_, t) in static_structure(after).items()}
    if list(old) != list(new):
        raise InputError(
            f"groups changed from {list(old)} to {list(new)} while injecting",
            where=before.path,
        )
    for group, tasks in old.items():
        user = [t for t in tasks if t not in OWN_TASKS]
        expected = user + list(OWN_TASKS) if group in injected else tasks
        if new[group] != expected:
            raise InputError(
                f"group {group!r}: tasks {new[group]} after injection, "
                f"expected {expected}",
                where=before.path,
            )


def _check_layout(before: HclSource, after: HclSource) -> list[str]:
    """The result keeps HCL's newline rules wherever the input did.

    python-hcl2 accepts blocks that Nomad refuses (``task "t" { a = 1`` on
    one line, then more lines); a break we introduced is our bug and stops
    the run; one the input already had is left as written, with a warning.
    Problems are matched by the text of their line, as lines move.
    """

    def lines(src: HclSource) -> list[tuple[str, str, int]]:
        found = []
        for offset, message in layout_problems(src):
            start = src.line_start(offset)
            end = src.text.find("\n", offset)
            line = src.text[start : len(src.text) if end < 0 else end].strip()
            found.append((line, message, offset))
        return found

    old: dict[tuple[str, str], list[int]] = {}
    for line, message, offset in lines(before):
        old.setdefault((line, message), []).append(offset)
    warnings = []
    for line, message, offset in lines(after):
        if old.get((line, message)):
            where = f"{before.path}:{before.line_of(old[line, message].pop(0))}"
            warnings.append(f"{where}: {message}; Nomad refuses this (left as written)")
            continue
        raise InputError(
            f"the injected text breaks HCL's line rules: {message} (please report)",
            where=f"{after.path}:{after.line_of(offset)}",
        )
    return warnings


def inject_hcl(
    text: str, *, path: str, config: InjectConfig, snippets: Snippets
) -> HclResult:
    """Inject every opted-in group of the HCL job in ``text``."""
    src = parse_hcl(text, path=path)
    result = _HclInjector(src, config, snippets).run()
    if result.injected:
        after = parse_hcl(result.text, path=f"{path} (injected)")
        _check(src, after, result.injected)
        result.warnings.extend(_check_layout(src, after))
    return result
