"""What ``webid-agent inject nomad`` does, once its options are parsed.

Reads the job (HCL or JSON, from a file) or a registered job (``--job-id``),
injects it locally or through the Nomad API, and writes the result to stdout,
``-o FILE`` or the input file (``--in-place``) - atomically, and only after
every check passed. Warnings go to the log (stderr).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import click

from agent import InputError, UsageError, output_target, read_input, write_output

from .api import NomadApi, NomadSettings, check_parse_result, format_plan
from .hclinject import inject_hcl, static_structure
from .hclsource import parse_hcl
from .jsoninject import JobDocument, inject_job, job_of
from .options import InjectConfig
from .snippets import Snippets

__all__ = ["Mode", "Request", "execute"]

log = logging.getLogger(__name__)

Mode = Literal["local", "plan", "submit"]


@dataclass(frozen=True)
class Request:
    """One invocation: where the job comes from and where the result goes."""

    jobfile: Path | None
    output: Path | None
    in_place: bool
    fmt: Literal["hcl", "json"] | None
    mode: Mode
    job_id: str | None
    nomad: NomadSettings


def _check(request: Request) -> None:
    if request.job_id and request.jobfile:
        raise UsageError("give a JOBFILE or --job-id, not both", where="--job-id")
    if not request.job_id and not request.jobfile:
        raise UsageError("give a JOBFILE (or --job-id ID)", where="JOBFILE")
    output_target(
        source=request.jobfile, output=request.output, in_place=request.in_place
    )
    if request.job_id and request.fmt == "hcl":
        raise UsageError(
            "a registered job can only be written as JSON", where="--format"
        )


# JSON nesting beyond this is refused before the injector recurses into it
MAX_DEPTH = 200


def _read(path: Path) -> str:
    # bytes, then decode (in read_input): CRLF line endings stay as they are
    return read_input(path)


def _too_deep(value: Any) -> bool:
    """Whether lists and objects nest deeper than :data:`MAX_DEPTH`."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if not isinstance(item, list):
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in item)
    return False


def _load_json(text: str, *, path: str) -> JobDocument:
    deep = f"JSON nested deeper than {MAX_DEPTH} levels"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"JSON syntax error: {exc.msg}", where=f"{path}:{exc.lineno}:{exc.colno}"
        ) from None
    except RecursionError:
        raise InputError(deep, where=path) from None
    if _too_deep(data):
        raise InputError(deep, where=path)
    return job_of(data, path=path)


def _json_indent(text: str) -> int:
    """The indentation step of the user's JSON (2 if it cannot be told)."""
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" ")
        if stripped:
            return max(1, len(line) - len(stripped))
    return 2


def _dump(document: dict[str, Any], indent: int = 2) -> str:
    return json.dumps(document, indent=indent, ensure_ascii=False) + "\n"


def _warn(warnings: list[str]) -> None:
    for line in warnings:
        log.warning("%s", line)


def _write(request: Request, content: str) -> None:
    target = output_target(
        source=request.jobfile, output=request.output, in_place=request.in_place
    )
    write_output(content, target)
    if target is not None:
        log.info("wrote %s", target)


def execute(request: Request, config: InjectConfig) -> None:
    """Run one ``inject nomad`` invocation."""
    _check(request)
    snippets = Snippets(templates_dir=config.templates_dir)

    # a registered job: read, inject, plan (and submit)
    if request.job_id:
        api = NomadApi(request.nomad)
        doc = JobDocument(document=api.read(request.job_id), wrapped=False)
        where = f"job {request.job_id}"
        result = inject_job(doc, path=where, config=config, snippets=snippets)
        _warn(result.warnings)
        _plan_and_submit(api, doc.job, request)
        return

    # a file: HCL or JSON, told apart by content rather than by name
    assert request.jobfile is not None  # noqa: S101 - checked by _check
    path = str(request.jobfile)
    text = _read(request.jobfile)
    # HCL never starts with a brace or bracket; JSON always does
    is_json = text.lstrip().startswith(("{", "[")) or path.endswith(".json")
    if is_json and request.fmt == "hcl":
        raise UsageError("JSON input can only be written as JSON", where="--format")
    needs_api = request.mode != "local" or (not is_json and request.fmt == "json")

    if not needs_api and not is_json:
        try:
            hcl = inject_hcl(text, path=path, config=config, snippets=snippets)
        except RecursionError:
            raise InputError("HCL nested too deeply", where=path) from None
        _warn(hcl.warnings)
        _write(request, hcl.text)
        return
    if not needs_api:
        doc = _load_json(text, path=path)
        result = inject_job(doc, path=path, config=config, snippets=snippets)
        _warn(result.warnings)
        _write(request, _dump(result.document, _json_indent(text)))
        return

    # API mode: Nomad evaluates HCL; the file's groups and tasks must survive
    api = NomadApi(request.nomad)
    if is_json:
        doc = _load_json(text, path=path)
    else:
        try:
            static = static_structure(parse_hcl(text, path=path))
        except RecursionError:
            raise InputError("HCL nested too deeply", where=path) from None
        why = ""
        if request.mode == "local":
            why = "writing HCL as JSON needs the Nomad API (its parse endpoint)"
        parsed = api.parse(text, why=why)
        check_parse_result(static, parsed, path=path)
        doc = JobDocument(document={"Job": parsed}, wrapped=True)
    result = inject_job(doc, path=path, config=config, snippets=snippets)
    _warn(result.warnings)
    if request.mode == "local":
        _write(request, _dump(result.document))
        return
    if request.output is not None or request.in_place:
        _write(request, _dump(result.document, _json_indent(text) if is_json else 2))
    _plan_and_submit(api, doc.job, request)


def _plan_and_submit(api: NomadApi, job: dict[str, Any], request: Request) -> None:
    if "ID" not in job:
        raise InputError("the job has no ID", where="/Job/ID")
    plan = api.plan(job)
    click.echo(format_plan(plan), nl=False)
    if request.mode != "submit":
        return
    index = int(plan.get("JobModifyIndex") or 0)
    answer = api.register(job, modify_index=index)
    click.echo(
        f"submitted job {job['ID']!r}: evaluation {answer.get('EvalID') or '(none)'}"
    )
