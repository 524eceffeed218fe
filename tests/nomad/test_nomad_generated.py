"""Generated jobs (hypothesis): any layout keeps the user's lines, is idempotent;
any wrong-typed JSON value is an InputError, never a crash."""

from __future__ import annotations

import difflib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import InputError
from injectors.nomad.hclinject import inject_hcl
from injectors.nomad.jsoninject import inject_job, job_of
from injectors.nomad.options import IdpConfig, InjectConfig
from injectors.nomad.snippets import Snippets
from tests.nomad.hclrules import hcl_line_problems
from tests.nomad.helpers import CASES, groups_of, hcl_job, tasks_of

CONFIG = InjectConfig(
    idp=IdpConfig(authority="https://idp.example/t", audience="sts.amazonaws.com")
)

task_st = st.fixed_dictionaries(
    {
        "env": st.sampled_from(["none", "block", "empty", "object", "oneline"]),
        "keys": st.lists(
            st.sampled_from(["LOG_LEVEL", "AWS_REGION", "AWS_ROLE_ARN"]),
            unique=True,
            max_size=3,
        ),
        "comment": st.booleans(),
        # the whole task on one line (when it has at most one argument)
        "one_line": st.booleans(),
    }
)
group_st = st.fixed_dictionaries(
    {
        "meta": st.sampled_from(["none", "block", "attr"]),
        "tasks": st.lists(task_st, min_size=1, max_size=3),
    }
)
job_st = st.fixed_dictionaries(
    {
        "groups": st.lists(group_st, min_size=1, max_size=3),
        "unit": st.sampled_from(["  ", "    ", "\t"]),
        "newline": st.sampled_from(["\n", "\r\n"]),
    }
)

ROLE = '"arn:aws:iam::111122223333:role/gen"'


def render_job(job: dict[str, object]) -> str:
    """A job file in the generated layout."""
    u = str(job["unit"])
    out = ['job "gen" {']
    for g, group in enumerate(job["groups"]):  # type: ignore[arg-type]
        out.append(f'{u}group "g{g}" {{')
        if group["meta"] == "block":
            out += [f"{u * 2}meta {{", f"{u * 3}webid_role_arn = {ROLE}", f"{u * 2}}}"]
        elif group["meta"] == "attr":
            out.append(f"{u * 2}meta = {{ webid_role_arn = {ROLE} }}")
        for t, task in enumerate(group["tasks"]):
            if task["one_line"] and not task["comment"] and task["env"] == "none":
                out.append(f'{u * 2}task "t{t}" {{ driver = "docker" }} # d')
                continue
            if task["one_line"] and not task["comment"] and task["env"] == "empty":
                out.append(f'{u * 2}task "t{t}" {{ env = {{}} }}')
                continue
            out += [f'{u * 2}task "t{t}" {{', f'{u * 3}driver = "docker" # d']
            pairs = [f'{k} = "v"' for k in task["keys"]]
            if task["comment"]:
                out.append(f"{u * 3}// a comment")
            if task["env"] == "block":
                out += [f"{u * 3}env {{", *[f"{u * 4}{p}" for p in pairs], f"{u * 3}}}"]
            elif task["env"] == "empty":
                out.append(f"{u * 3}env {{}}")
            elif task["env"] == "object":
                out += [
                    f"{u * 3}env = {{",
                    *[f"{u * 4}{p}" for p in pairs],
                    f"{u * 3}}}",
                ]
            elif task["env"] == "oneline" and pairs:
                out.append(f"{u * 3}env {{ {pairs[0]} }}")
            out.append(f"{u * 2}}}")
        out.append(f"{u}}}")
    out.append("}")
    newline = str(job["newline"])
    return newline.join(out) + newline


def run(text: str) -> str:
    return inject_hcl(text, path="gen.hcl", config=CONFIG, snippets=Snippets()).text


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(job_st)
def test_generated_jobs(job: dict[str, object]) -> None:
    text = render_job(job)
    once = run(text)

    # idempotent
    assert run(once) == once

    # valid by HCL's line rules, which python-hcl2 does not check
    assert hcl_line_problems(text) == []
    assert hcl_line_problems(once) == []

    # multi-line layouts only gain lines; nothing of the user's is lost
    one_line = any(
        t["env"] in ("empty", "oneline") or t["one_line"]
        for g in job["groups"]  # type: ignore[attr-defined]
        for t in g["tasks"]
    )
    if not one_line:
        ops = difflib.SequenceMatcher(
            a=text.splitlines(), b=once.splitlines(), autojunk=False
        ).get_opcodes()
        assert {op for op, *_ in ops} <= {"equal", "insert"}
    rest = iter("".join(once.split()))
    assert all(char in rest for char in "".join(text.split()))
    if job["newline"] == "\r\n":
        assert "\n" not in once.replace("\r\n", "")
    else:
        assert "\r" not in once

    # structure: opted-in groups have both agent tasks, every task its env
    groups = groups_of(hcl_job(once))
    for g, group in enumerate(job["groups"]):  # type: ignore[arg-type]
        tasks = tasks_of(groups[f"g{g}"])
        injected = group["meta"] != "none"
        assert ("webid-token" in tasks) == injected
        assert ("webid-agent" in tasks) == injected
        for t, task in enumerate(group["tasks"]):
            body = tasks[f"t{t}"]
            if not injected:
                continue
            env = body["env"][0] if isinstance(body["env"], list) else body["env"]
            assert (
                env["AWS_WEB_IDENTITY_TOKEN_FILE"] == "${NOMAD_ALLOC_DIR}/webid/token"
            )
            written = {
                "block": task["keys"],
                "object": task["keys"],
                "oneline": task["keys"][:1],
            }.get(task["env"], [])
            own = "AWS_ROLE_ARN" in written
            assert env["AWS_ROLE_ARN"] == ("v" if own else ROLE.strip('"'))


# -- JSON jobs with a wrong-typed value somewhere --------------------------------------

JSON_CASES = sorted(CASES.glob("*.json"))
json_value_st = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def pointers(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document (as key paths), the root excluded."""
    found: list[tuple[Any, ...]] = []
    children: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        found.append((*prefix, key))
        found.extend(pointers(child, (*prefix, key)))
    return found


@settings(max_examples=200, deadline=None)
@given(
    case=st.sampled_from(JSON_CASES),
    pick=st.integers(min_value=0),
    replacement=json_value_st,
    role_flag=st.booleans(),
)
def test_mutated_json_jobs_inject_or_exit_2(
    case: Path, pick: int, replacement: Any, role_flag: bool
) -> None:
    """A wrong type anywhere gives InputError (exit 2) or a result; nothing else."""
    document = json.loads(case.read_text())
    places = pointers(document)
    place = places[pick % len(places)]
    parent = document
    for key in place[:-1]:
        parent = parent[key]
    parent[place[-1]] = replacement

    config = CONFIG if not role_flag else replace(CONFIG, role_arn=ROLE.strip('"'))
    try:
        doc = job_of(document, path="job.json")
        result = inject_job(doc, path="job.json", config=config, snippets=Snippets())
    except InputError as exc:
        assert exc.exit_code == 2
        assert exc.where  # names a place: file, pointer, option or name
        return
    json.dumps(result.document)  # still a JSON document
