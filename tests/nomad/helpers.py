"""Shared constants and helpers of the Nomad injector tests (no fixtures)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
CASES = DATA / "cases"
GOLDEN = DATA / "golden"

ROLE = "arn:aws:iam::111122223333:role/from-flag"
IDP_ARGS = (
    "--authority",
    "https://idp.example/tenant1",
    "--audience",
    "sts.amazonaws.com",
    "--client-id",
    "webid-app",
    # pinned so the golden files do not change with the package version
    "--image",
    "registry.example/webid-agent:pinned",
)


@dataclass
class Run:
    """The outcome of one ``webid-agent`` invocation."""

    code: int
    out: str
    err: str


def hcl_job(text: str) -> dict[str, Any]:
    """The job of an HCL text as plain data: {group: {task: body}} and more.

    Labels and strings are unquoted; each block type maps to a list of bodies.
    """
    import hcl2

    options = hcl2.SerializationOptions(strip_string_quotes=True, with_comments=False)
    data = hcl2.loads(text, serialization_options=options)
    (job,) = data["job"]
    ((_, body),) = job.items()
    return dict(body)


def groups_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Group name -> group body of a parsed HCL job."""
    return {name: body for g in job.get("group", []) for name, body in g.items()}


def tasks_of(group: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Task name -> task body of a parsed HCL group."""
    return {name: body for t in group.get("task", []) for name, body in t.items()}
