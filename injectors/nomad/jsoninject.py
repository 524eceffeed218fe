"""Injection into a job in the Nomad API's JSON form.

Accepts both shapes people have: ``{"Job": {...}}`` (the API, ``nomad job run
-output``) and a bare job object, and returns the same shape. Errors name the
JSON pointer of the offending value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, TypedDict

from agent import EnvMerge, InputError, merge_env

from .options import (
    META_MODE_KEY,
    META_ROLE_KEY,
    OWN_TASKS,
    GroupRole,
    InjectConfig,
    Mode,
    check_mode,
    check_role_arn,
)
from .snippets import Snippets

__all__ = ["JobDocument", "JsonResult", "inject_job", "job_of", "structure"]

log = logging.getLogger(__name__)


class TaskJson(TypedDict, total=False):
    """The fields of an API task this module reads or writes."""

    Name: str
    Env: dict[str, str] | None
    Templates: list[dict[str, Any]] | None


class GroupJson(TypedDict, total=False):
    """The fields of an API task group this module reads or writes."""

    Name: str
    Meta: dict[str, str] | None
    Networks: list[dict[str, Any]] | None
    Tasks: list[TaskJson]


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


def structure(job: dict[str, Any]) -> dict[str, list[str]]:
    """Group name -> task names of an API job."""
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

    def where(self, pointer: str) -> str:
        return f"{self.path}: {self.doc.prefix}{pointer}"

    def run(self) -> list[str]:
        job, config = self.doc.job, self.config
        groups = job.get("TaskGroups")
        if not isinstance(groups, list) or not groups:
            raise InputError("job has no TaskGroups", where=self.where("/TaskGroups"))
        job_id = str(job.get("ID") or job.get("Name") or "")
        if not job_id:
            raise InputError("job has neither ID nor Name", where=self.where("/ID"))

        # names unique, every --group known
        names: list[str] = []
        for i, group in enumerate(groups):
            if not isinstance(group, dict) or not isinstance(group.get("Name"), str):
                raise InputError(
                    "group without a Name", where=self.where(f"/TaskGroups/{i}")
                )
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

    def _role(self, group: GroupJson, index: int) -> GroupRole | None:
        meta = group.get("Meta") or {}
        value = meta.get(META_ROLE_KEY) if isinstance(meta, dict) else None
        if value is not None:
            pointer = f"/TaskGroups/{index}/Meta/{META_ROLE_KEY}"
            return GroupRole(
                value=check_role_arn(str(value), where=self.where(pointer))
            )
        if self.config.role_arn:
            return GroupRole(value=self.config.role_arn)
        return None

    def _mode(self, group: GroupJson, index: int) -> Mode:
        meta = group.get("Meta") or {}
        value = meta.get(META_MODE_KEY) if isinstance(meta, dict) else None
        if value is None:
            return self.config.mode
        pointer = f"/TaskGroups/{index}/Meta/{META_MODE_KEY}"
        return check_mode(str(value), where=self.where(pointer))

    def _check_shared_loopback(self, group: GroupJson, index: int) -> None:
        """Refuse a group whose tasks do not share one network namespace
        (see ``hclinject._check_shared_loopback`` for why)."""
        networks = group.get("Networks") or []
        first = networks[0] if isinstance(networks, list) and networks else {}
        mode = str((first.get("Mode") if isinstance(first, dict) else "") or "host")
        if mode != "bridge" and not mode.startswith("cni/"):
            raise InputError(
                f"group {group['Name']!r} uses network mode {mode!r}: in"
                " credentials-endpoint mode its tasks reach the agent on"
                " 127.0.0.1, so they must share one network namespace; set"
                ' Networks[0].Mode to "bridge" (or use webid_mode ='
                ' "web-identity")',
                where=self.where(f"/TaskGroups/{index}/Networks"),
            )

    def _group(
        self, job_id: str, group: GroupJson, index: int, role: GroupRole
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

        # the workload tasks
        env = self.config.workload_env(role.value, mode=mode)
        entries = [{"name": k, "value": v, "hcl": None} for k, v in env.items()]
        for t, task in enumerate(tasks):
            if task.get("Name") in OWN_TASKS:
                continue
            self._task_env(task, f"/TaskGroups/{index}/Tasks/{t}", entries, context)

        # our own tasks: drop a previous run's, append the current ones
        kept = [t for t in tasks if t.get("Name") not in OWN_TASKS]
        kept.extend(self.snippets.data("tasks.json.j2", context))
        group["Tasks"] = kept

    def _task_env(
        self,
        task: TaskJson,
        pointer: str,
        entries: list[dict[str, str | None]],
        context: dict[str, Any],
    ) -> None:
        where = f"{self.where(pointer)} task {task.get('Name')!r}"
        for template in task.get("Templates") or []:
            if isinstance(template, dict) and template.get("Envvars"):
                self.warnings.append(
                    f"{where}: sets env from a template (Envvars); if it sets "
                    f"{entries[0]['name']} or {entries[1]['name']} that value wins"
                )
        existing = task.get("Env")
        if existing is None:
            existing = {}
        if not isinstance(existing, dict):
            raise InputError(
                "Env must be an object", where=self.where(f"{pointer}/Env")
            )

        wanted = {str(e["name"]): str(e["value"]) for e in entries}
        merge = merge_env(existing, wanted)
        differing = {k: v for k, v in merge.kept.items() if v != wanted[k]}
        if differing:
            self.warnings.extend(EnvMerge(added={}, kept=differing).warnings(where))
        if merge.added:
            added = [e for e in entries if e["name"] in merge.added]
            rendered = self.snippets.data("env.json.j2", {**context, "entries": added})
            task["Env"] = {**existing, **rendered}


def inject_job(
    doc: JobDocument, *, path: str, config: InjectConfig, snippets: Snippets
) -> JsonResult:
    """Inject every opted-in group of the job; the document is changed in place."""
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
