"""Injection into a job in the Nomad API's JSON form.

Accepts both shapes people have: ``{"Job": {...}}`` (the API, ``nomad job run
-output``) and a bare job object, and returns the same shape. Errors name the
JSON pointer of the offending value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from agent import InputError, merge_env

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

__all__ = ["JobDocument", "JsonResult", "inject_job", "job_of", "structure"]

log = logging.getLogger(__name__)


@dataclass
class JsonResult:
    """The rewritten document (same shape as given) and what happened."""

    document: dict[str, Any]
    injected: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobDocument:
    """A parsed JSON document and where its job object sits."""

    document: dict[str, Any]
    wrapped: bool

    @property
    def job(self) -> dict[str, Any]:
        """The job object itself."""
        job: dict[str, Any] = self.document["Job"] if self.wrapped else self.document
        return job

    @property
    def prefix(self) -> str:
        """JSON pointer of the job object."""
        return "/Job" if self.wrapped else ""


def job_of(document: Any, *, path: str) -> JobDocument:
    """Recognise the document's shape; refuse anything that is not a job."""
    if not isinstance(document, dict):
        raise InputError("expected a JSON object holding a job", where=f"{path}: /")
    if "job" in document and "Job" not in document:
        raise InputError(
            "this is HCL's JSON syntax; give the API form "
            "(nomad job run -output job.hcl)",
            where=f"{path}: /job",
        )
    wrapped = "Job" in document
    doc = JobDocument(document=document, wrapped=wrapped)
    if not isinstance(doc.job, dict):
        raise InputError("Job must be an object", where=f"{path}: /Job")
    return doc


def _kind(value: Any) -> str:
    """A JSON value's kind, as an error message names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


_EXPECTED = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def _pointer_key(key: str) -> str:
    """A key as a JSON pointer step (RFC 6901 escaping)."""
    return key.replace("~", "~0").replace("/", "~1")


class _Reader:
    """Typed reads from the job; a wrong type names its JSON pointer."""

    def __init__(self, *, path: str, prefix: str) -> None:
        self.path = path
        self.prefix = prefix

    def where(self, pointer: str) -> str:
        return f"{self.path}: {self.prefix}{pointer}"

    def get(self, obj: dict[str, Any], key: str, kind: type, pointer: str) -> Any:
        """``obj[key]`` if it has type ``kind``; None when absent or null."""
        value = obj.get(key)
        if value is None or (isinstance(value, kind) and not _bool_as(value, kind)):
            return value
        raise InputError(
            f"{key} must be {_EXPECTED[kind]}, got {_kind(value)}",
            where=self.where(f"{pointer}/{_pointer_key(key)}"),
        )

    def items(self, array: list[Any], kind: type, pointer: str) -> list[Any]:
        """The elements of ``array``, each of type ``kind``."""
        for i, value in enumerate(array):
            if not isinstance(value, kind) or _bool_as(value, kind):
                raise InputError(
                    f"expected {_EXPECTED[kind]}, got {_kind(value)}",
                    where=self.where(f"{pointer}/{i}"),
                )
        return array

    def strings(self, obj: dict[str, Any], pointer: str) -> dict[str, str]:
        """An object whose values must all be strings (Env, Meta)."""
        for key, value in obj.items():
            if not isinstance(value, str):
                raise InputError(
                    f"must be a string, got {_kind(value)}",
                    where=self.where(f"{pointer}/{_pointer_key(key)}"),
                )
        return obj


def _bool_as(value: Any, kind: type) -> bool:
    """True for a JSON boolean where a number would pass ``isinstance``."""
    return isinstance(value, bool) and kind is not bool


def _shape(job: dict[str, Any], reader: _Reader) -> list[dict[str, Any]]:
    """The job's groups, with every Name and Tasks list the injector reads typed."""
    groups: list[dict[str, Any]] = reader.get(job, "TaskGroups", list, "")
    if not groups:
        raise InputError("job has no TaskGroups", where=reader.where("/TaskGroups"))
    reader.items(groups, dict, "/TaskGroups")
    for key in ("ID", "Name"):
        reader.get(job, key, str, "")
    for i, group in enumerate(groups):
        pointer = f"/TaskGroups/{i}"
        if reader.get(group, "Name", str, pointer) is None:
            raise InputError("group without a Name", where=reader.where(pointer))
        tasks = reader.get(group, "Tasks", list, pointer) or []
        reader.items(tasks, dict, f"{pointer}/Tasks")
        for t, task in enumerate(tasks):
            task_pointer = f"{pointer}/Tasks/{t}"
            if reader.get(task, "Name", str, task_pointer) is None:
                raise InputError(
                    "task without a Name", where=reader.where(task_pointer)
                )
    return groups


def structure(job: dict[str, Any]) -> dict[str, list[str]]:
    """Group name -> task names of an API job (its shape checked before)."""
    return {
        str(g.get("Name")): [str(t.get("Name")) for t in g.get("Tasks") or []]
        for g in job.get("TaskGroups") or []
    }


class _JsonInjector:
    def __init__(
        self, doc: JobDocument, *, path: str, config: InjectConfig, snippets: Snippets
    ) -> None:
        self.doc = doc
        self.path = path
        self.config = config
        self.snippets = snippets
        self.warnings: list[str] = []
        self.read = _Reader(path=path, prefix=doc.prefix)

    def where(self, pointer: str) -> str:
        return self.read.where(pointer)

    def run(self) -> list[str]:
        job, config = self.doc.job, self.config
        groups = _shape(job, self.read)
        job_id = str(job.get("ID") or job.get("Name") or "")
        if not job_id:
            raise InputError("job has neither ID nor Name", where=self.where("/ID"))

        # names unique, every --group known
        names: list[str] = []
        for i, group in enumerate(groups):
            if group["Name"] in names:
                raise InputError(
                    f"group {group['Name']!r} is defined twice",
                    where=self.where(f"/TaskGroups/{i}/Name"),
                )
            names.append(group["Name"])
        unknown = [n for n in config.groups if n not in names]
        if unknown:
            raise InputError(
                f"no group named {', '.join(map(repr, unknown))} in job {job_id!r} "
                f"(groups: {', '.join(sorted(names))})",
                where="--group",
            )

        injected: list[str] = []
        for i, group in enumerate(groups):
            name = group["Name"]
            if config.groups and name not in config.groups:
                continue
            role = self._role(group, i)
            if role is None:
                if config.groups:
                    raise InputError(
                        f"group {name!r} has no Meta.{META_ROLE_KEY} and no "
                        "--role-arn was given",
                        where=self.where(f"/TaskGroups/{i}/Meta"),
                    )
                continue
            self._group(job_id, group, i, role)
            injected.append(name)
        if not injected:
            self.warnings.append(
                f"{self.path}: no group has Meta.{META_ROLE_KEY} and no --role-arn "
                "was given; the job is unchanged"
            )
        return injected

    def _meta(self, group: dict[str, Any], index: int, key: str) -> str | None:
        """One group Meta entry (a string) or None."""
        pointer = f"/TaskGroups/{index}"
        meta = self.read.get(group, "Meta", dict, pointer) or {}
        value = self.read.get(meta, key, str, f"{pointer}/Meta")
        return str(value) if value is not None else None

    def _role(self, group: dict[str, Any], index: int) -> GroupRole | None:
        value = self._meta(group, index, META_ROLE_KEY)
        if value is not None:
            pointer = f"/TaskGroups/{index}/Meta/{META_ROLE_KEY}"
            return GroupRole(value=check_role_arn(value, where=self.where(pointer)))
        if self.config.role_arn:
            return GroupRole(value=self.config.role_arn)
        return None

    def _mode(self, group: dict[str, Any], index: int) -> Mode:
        value = self._meta(group, index, META_MODE_KEY)
        if value is None:
            return self.config.mode
        pointer = f"/TaskGroups/{index}/Meta/{META_MODE_KEY}"
        return check_mode(value, where=self.where(pointer))

    def _check_shared_loopback(self, group: dict[str, Any], index: int) -> None:
        """Refuse a group whose tasks do not share one network namespace
        (see ``hclinject._check_shared_loopback`` for why)."""
        pointer = f"/TaskGroups/{index}/Networks"
        networks = self.read.get(group, "Networks", list, f"/TaskGroups/{index}")
        networks = self.read.items(networks or [], dict, pointer)
        first = networks[0] if networks else {}
        mode = self.read.get(first, "Mode", str, f"{pointer}/0") or "host"
        if mode != "bridge" and not mode.startswith("cni/"):
            raise InputError(
                f"group {group['Name']!r} uses network mode {mode!r}: in"
                " credentials-endpoint mode its tasks reach the agent on"
                " 127.0.0.1, so they must share one network namespace; set"
                ' Networks[0].Mode to "bridge" (or use webid_mode ='
                ' "web-identity")',
                where=self.where(pointer),
            )

    def _group(
        self, job_id: str, group: dict[str, Any], index: int, role: GroupRole
    ) -> None:
        assert role.value is not None  # noqa: S101 - JSON roles are always literal
        mode = self._mode(group, index)
        if mode == "credentials-endpoint":
            self._check_shared_loopback(group, index)
        context = self.config.group_context(
            job_id=job_id, group=group["Name"], role=role, mode=mode
        )
        tasks = group.get("Tasks")
        if not isinstance(tasks, list):
            raise InputError(
                "group has no Tasks", where=self.where(f"/TaskGroups/{index}/Tasks")
            )

        # the workload tasks; a task named like ours must be one we added
        env = self.config.workload_env(role.value, mode=mode)
        entries = [{"name": k, "value": v, "hcl": None} for k, v in env.items()]
        for t, task in enumerate(tasks):
            pointer = f"/TaskGroups/{index}/Tasks/{t}"
            if task["Name"] in OWN_TASKS:
                self._check_own_task(task, pointer)
                continue
            self._task_env(task, pointer, entries, context)

        # our own tasks: drop a previous run's, append the current ones
        kept = [t for t in tasks if t["Name"] not in OWN_TASKS]
        kept.extend(self.snippets.data("tasks.json.j2", context))
        group["Tasks"] = kept

    def _check_own_task(self, task: dict[str, Any], pointer: str) -> None:
        """Refuse a user task that has the name of one of ours (see options)."""
        life = self.read.get(task, "Lifecycle", dict, pointer) or {}
        hook = self.read.get(life, "Hook", str, f"{pointer}/Lifecycle")
        sidecar = self.read.get(life, "Sidecar", bool, f"{pointer}/Lifecycle")
        env = self.read.get(task, "Env", dict, pointer) or {}
        reason = not_our_task(
            task["Name"], hook=hook, sidecar=bool(sidecar), env=set(env)
        )
        if reason is not None:
            raise InputError(
                own_task_clash(task["Name"], reason), where=self.where(pointer)
            )

    def _task_env(
        self,
        task: dict[str, Any],
        pointer: str,
        entries: list[dict[str, str | None]],
        context: dict[str, Any],
    ) -> None:
        where = f"{self.where(pointer)} task {task['Name']!r}"
        templates = self.read.get(task, "Templates", list, pointer) or []
        for template in self.read.items(templates, dict, f"{pointer}/Templates"):
            if template.get("Envvars"):
                self.warnings.append(
                    f"{where}: sets env from a template (Envvars); if it sets "
                    f"{entries[0]['name']} or {entries[1]['name']} that value wins"
                )
        existing = self.read.get(task, "Env", dict, pointer) or {}
        self.read.strings(existing, f"{pointer}/Env")

        wanted = {str(e["name"]): str(e["value"]) for e in entries}
        merge = merge_env(existing, wanted)
        self.warnings.extend(merge.warnings(where))
        if merge.added:
            added = [e for e in entries if e["name"] in merge.added]
            rendered = self.snippets.data("env.json.j2", {**context, "entries": added})
            task["Env"] = {**existing, **rendered}


def inject_job(
    doc: JobDocument, *, path: str, config: InjectConfig, snippets: Snippets
) -> JsonResult:
    """Inject every opted-in group of the job; the document is changed in place."""
    _shape(doc.job, _Reader(path=path, prefix=doc.prefix))
    before = structure(doc.job)
    injector = _JsonInjector(doc, path=path, config=config, snippets=snippets)
    injected = injector.run()

    # every group and task is still there, ours exactly once
    after = structure(doc.job)
    for group, tasks in before.items():
        user = [t for t in tasks if t not in OWN_TASKS]
        expected = user + list(OWN_TASKS) if group in injected else tasks
        if after.get(group) != expected:
            raise InputError(
                f"group {group!r}: tasks {after.get(group)} after injection, "
                f"expected {expected}",
                where=path,
            )
    return JsonResult(
        document=doc.document, injected=injected, warnings=injector.warnings
    )
