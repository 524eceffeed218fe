"""HCL jobs: golden outputs, structure of the result, text preservation, errors."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.nomad.hclrules import hcl_line_problems
from tests.nomad.helpers import (
    CASES,
    GOLDEN,
    ROLE,
    Run,
    groups_of,
    hcl_job,
    tasks_of,
)

HCL_CASES = sorted(p.name for p in CASES.glob("*.hcl"))
TOKEN_PATH = "${NOMAD_ALLOC_DIR}/webid/token"

Inject = Callable[..., Run]
WriteJob = Callable[..., Path]


def _ok(run: Run) -> str:
    assert run.code == 0, run.err
    return run.out


def _inserted_only(before: str, after: str) -> list[str]:
    """The lines added to ``before``; fails if any line was changed or removed."""
    matcher = difflib.SequenceMatcher(
        a=before.splitlines(), b=after.splitlines(), autojunk=False
    )
    added: list[str] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        assert op in ("equal", "insert"), (op, before.splitlines()[i1:i2])
        if op == "insert":
            added.extend(after.splitlines()[j1:j2])
    return added


# -- the reported cases ---------------------------------------------------------


@pytest.mark.parametrize("case", HCL_CASES)
def test_golden_output(case: str, inject: Inject) -> None:
    out = _ok(inject(CASES / case))
    golden = GOLDEN / case
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(out)
    assert out == golden.read_text()
    assert hcl_line_problems(out) == []


@pytest.mark.parametrize("case", HCL_CASES)
def test_user_text_is_kept_byte_for_byte(case: str, inject: Inject) -> None:
    before = (CASES / case).read_text()
    added = _inserted_only(before, _ok(inject(CASES / case)))
    assert added, "nothing was injected"


@pytest.mark.parametrize("case", HCL_CASES)
def test_injecting_twice_changes_nothing(
    case: str, inject: Inject, write_job: WriteJob
) -> None:
    once = _ok(inject(CASES / case))
    twice = _ok(inject(write_job(once)))
    assert twice == once


@pytest.mark.parametrize(
    ("case", "group", "workload_tasks"),
    [
        ("n01-two-groups-existing-env.nomad.hcl", "api", ["server"]),
        ("n02-variables-and-locals.nomad.hcl", "workers", ["worker"]),
        ("n05-heredoc-template.nomad.hcl", "run", ["transform"]),
    ],
)
def test_structure_of_injected_group(
    case: str, group: str, workload_tasks: list[str], inject: Inject
) -> None:
    job = hcl_job(_ok(inject(CASES / case)))
    tasks = tasks_of(groups_of(job)[group])
    assert list(tasks) == [*workload_tasks, "webid-token", "webid-agent"]

    # the first token before the main tasks, then a sidecar keeping it fresh
    (token_life,) = tasks["webid-token"]["lifecycle"]
    (agent_life,) = tasks["webid-agent"]["lifecycle"]
    assert (token_life["hook"], token_life["sidecar"]) == ("prestart", False)
    assert (agent_life["hook"], agent_life["sidecar"]) == ("prestart", True)

    # secrets come from a template, never from a literal
    for name in ("webid-token", "webid-agent"):
        (template,) = tasks[name]["template"]
        assert template["destination"] == "secrets/client-secret"
        assert f'nomadVar "nomad/jobs/{job_name(case)}/{group}"' in (template["data"])
        (env,) = tasks[name]["env"]
        assert env["WEBID_CLIENT_SECRET_FILE"] == "${NOMAD_SECRETS_DIR}/client-secret"
        assert env["WEBID_TOKEN_FILE"] == TOKEN_PATH

    # every workload task has the AWS variables next to its own
    for name in workload_tasks:
        (env,) = tasks[name]["env"]
        assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == TOKEN_PATH
        assert env["AWS_ROLE_ARN"].startswith("arn:aws:iam::111122223333:role/")


def job_name(case: str) -> str:
    """The job label of a case file."""
    return {"n01": "storefront", "n02": "ingest", "n05": "etl"}[case[:3]]


def test_existing_env_is_merged_not_replaced(inject: Inject) -> None:
    job = hcl_job(_ok(inject(CASES / "n01-two-groups-existing-env.nomad.hcl")))
    (env,) = tasks_of(groups_of(job)["api"])["server"]["env"]
    assert env["LOG_LEVEL"] == "info"
    assert env["BUCKET"] == "storefront-assets"
    assert env["AWS_ROLE_ARN"] == "arn:aws:iam::111122223333:role/storefront-api"


def test_group_without_meta_is_left_alone(inject: Inject) -> None:
    case = CASES / "n01-two-groups-existing-env.nomad.hcl"
    out = _ok(inject(case))
    cache_before = case.read_text().split('  group "cache" {')[1]
    assert out.split('  group "cache" {')[1] == cache_before


def test_expressions_stay_expressions(inject: Inject) -> None:
    out = _ok(inject(CASES / "n02-variables-and-locals.nomad.hcl"))
    for line in (
        "count = var.replicas",
        "image = local.image",
        'args  = ["--region", var.region, "--tmp", "${NOMAD_TASK_DIR}/tmp"]',
        "AWS_REGION = var.region",
        'image = "registry.example/ingest/worker:${var.region}-1.0"',
    ):
        assert line in out
    assert '"${var.' not in out.replace(
        '"registry.example/ingest/worker:${var.region}-1.0"', ""
    )


def test_heredoc_and_template_env_warn(inject: Inject) -> None:
    run = inject(CASES / "n05-heredoc-template.nomad.hcl")
    out = _ok(run)
    heredoc = (CASES / "n05-heredoc-template.nomad.hcl").read_text().split("<<EOT")[1]
    assert heredoc.split("EOT")[0] in out
    assert "sets env from a template" in run.err


# -- roles and group selection ----------------------------------------------------

ONE_GROUP = """\
job "j" {
  group "g" {
    task "t" {
      driver = "docker"
    }
  }

  group "h" {
    meta {
      webid_role_arn = ROLE_EXPR
    }

    task "u" {
      driver = "docker"
    }
  }
}
"""


def test_role_arn_flag_injects_every_group_and_meta_wins(
    inject: Inject, write_job: WriteJob
) -> None:
    text = ONE_GROUP.replace("ROLE_EXPR", '"arn:aws:iam::111122223333:role/meta"')
    job = hcl_job(_ok(inject(write_job(text), "--role-arn", ROLE)))
    groups = groups_of(job)
    (env_g,) = tasks_of(groups["g"])["t"]["env"]
    (env_h,) = tasks_of(groups["h"])["u"]["env"]
    assert env_g["AWS_ROLE_ARN"] == ROLE
    assert env_h["AWS_ROLE_ARN"] == "arn:aws:iam::111122223333:role/meta"


def test_role_from_an_expression_is_copied_as_written(
    inject: Inject, write_job: WriteJob
) -> None:
    out = _ok(inject(write_job(ONE_GROUP.replace("ROLE_EXPR", "var.role"))))
    assert "AWS_ROLE_ARN                = var.role" in out
    assert 'group "g" {\n    task "t" {\n      driver = "docker"\n    }\n  }' in out


def test_meta_attribute_form_opts_in(inject: Inject, write_job: WriteJob) -> None:
    text = ONE_GROUP.replace(
        "meta {\n      webid_role_arn = ROLE_EXPR\n    }",
        'meta = { webid_role_arn = "arn:aws:iam::111122223333:role/m" }',
    )
    job = hcl_job(_ok(inject(write_job(text))))
    assert "webid-token" in tasks_of(groups_of(job)["h"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--group", "nope"), "no group named 'nope'"),
        (("--group", "g"), "group 'g' has no meta webid_role_arn"),
        (("--role-arn", "arn:aws:iam::1:role/x"), "not an IAM role ARN"),
    ],
)
def test_bad_group_selection_exits_2(
    args: tuple[str, ...], message: str, inject: Inject, write_job: WriteJob
) -> None:
    text = ONE_GROUP.replace("ROLE_EXPR", '"arn:aws:iam::111122223333:role/meta"')
    run = inject(write_job(text), *args)
    assert run.code == 2
    assert message in run.err
    assert run.out == ""


def test_only_named_groups_are_injected(inject: Inject, write_job: WriteJob) -> None:
    text = ONE_GROUP.replace("ROLE_EXPR", '"arn:aws:iam::111122223333:role/meta"')
    job = hcl_job(_ok(inject(write_job(text), "--role-arn", ROLE, "--group", "g")))
    groups = groups_of(job)
    assert "webid-token" in tasks_of(groups["g"])
    assert "webid-token" not in tasks_of(groups["h"])


def test_task_that_sets_the_role_keeps_it_with_a_warning(
    inject: Inject, write_job: WriteJob
) -> None:
    text = ONE_GROUP.replace("ROLE_EXPR", '"arn:aws:iam::111122223333:role/meta"')
    text = text.replace(
        'task "u" {\n      driver = "docker"',
        'task "u" {\n      driver = "docker"\n      env {\n'
        '        AWS_ROLE_ARN = "arn:aws:iam::111122223333:role/own"\n      }',
    )
    run = inject(write_job(text))
    (env,) = tasks_of(groups_of(hcl_job(_ok(run)))["h"])["u"]["env"]
    assert env["AWS_ROLE_ARN"] == "arn:aws:iam::111122223333:role/own"
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == TOKEN_PATH
    assert "task 'u': keeps its own AWS_ROLE_ARN" in run.err


# -- layouts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_body", "expect"),
    [
        # one-line env block
        ('env { A = "1" }', {"A": "1"}),
        # empty env block
        ("env {}", {}),
        # env as an object attribute, one line and several lines
        ('env = { A = "1" }', {"A": "1"}),
        ('env = {\n        A = "1"\n        B = "2"\n      }', {"A": "1", "B": "2"}),
        # no env at all
        ("", {}),
    ],
)
def test_env_layouts(
    task_body: str, expect: dict[str, str], inject: Inject, write_job: WriteJob
) -> None:
    text = (
        'job "j" {\n  group "g" {\n    task "t" {\n      driver = "docker"\n'
        f"      {task_body}\n    }}\n  }}\n}}\n"
    )
    run = inject(write_job(text), "--role-arn", ROLE)
    out = _ok(run)
    if "{ A" not in task_body and "{}" not in task_body:
        _inserted_only(text, out)
    task = tasks_of(groups_of(hcl_job(out))["g"])["t"]
    env = task["env"][0] if isinstance(task["env"], list) else task["env"]
    assert {k: v for k, v in env.items() if not k.startswith("__")} == {
        **expect,
        "AWS_ROLE_ARN": ROLE,
        "AWS_WEB_IDENTITY_TOKEN_FILE": TOKEN_PATH,
    }
    once = out
    assert _ok(inject(write_job(once, "again.hcl"), "--role-arn", ROLE)) == once


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("unit", ["  ", "    ", "\t"])
def test_indentation_and_line_endings_follow_the_file(
    unit: str, newline: str, inject: Inject, write_job: WriteJob
) -> None:
    lines = [
        'job "j" {',
        f'{unit}group "g" {{',
        f'{unit * 2}task "t" {{',
        f'{unit * 3}driver = "docker"',
        f"{unit * 2}}}",
        f"{unit}}}",
        "}",
    ]
    text = newline.join(lines) + newline
    path = write_job("")
    path.write_bytes(text.encode())
    out = _ok(inject(path, "--role-arn", ROLE, "-o", path.with_suffix(".out")))
    assert out == ""
    result = path.with_suffix(".out").read_bytes().decode()
    assert f'{newline}{unit * 2}task "webid-token" {{{newline}' in result
    assert f"{newline}{unit * 3}lifecycle {{{newline}" in result
    if newline == "\n":
        assert "\r" not in result
    else:
        assert "\n" not in result.replace("\r\n", "")
    assert "webid-agent" in tasks_of(groups_of(hcl_job(result))["g"])


def test_dynamic_tasks_get_env_and_dynamic_groups_warn(
    inject: Inject, write_job: WriteJob
) -> None:
    text = """\
job "j" {
  group "g" {
    dynamic "task" {
      for_each = ["a", "b"]
      labels   = [task.value]
      content {
        driver = "docker"
      }
    }
  }

  dynamic "group" {
    for_each = ["x"]
    labels   = [group.value]
    content {
      task "t" {
        driver = "docker"
      }
    }
  }
}
"""
    run = inject(write_job(text), "--role-arn", ROLE)
    out = _ok(run)
    _inserted_only(text, out)
    content = out.split("content {")[1].split("}")[0]
    assert "AWS_ROLE_ARN" in content
    assert 'dynamic "group" blocks are not injected' in run.err


# -- options that change the rendered tasks -----------------------------------------


def test_exec_driver_runs_the_installed_agent(
    inject: Inject, write_job: WriteJob
) -> None:
    text = ONE_GROUP.replace("ROLE_EXPR", '"arn:aws:iam::111122223333:role/meta"')
    out = _ok(inject(write_job(text), "--driver", "exec", "--agent-command", "/opt/wa"))
    token = tasks_of(groups_of(hcl_job(out))["h"])["webid-token"]
    (config,) = token["config"]
    assert config["command"] == "/opt/wa"
    assert config["args"] == ["token", "--deadline", "60"]
    (agent_env,) = tasks_of(groups_of(hcl_job(out))["h"])["webid-agent"]["env"]
    assert agent_env["WEBID_LISTEN"] == "off"  # an empty variable would count as unset


def test_vault_secret(inject: Inject, write_job: WriteJob) -> None:
    text = ONE_GROUP.replace("ROLE_EXPR", '"arn:aws:iam::111122223333:role/meta"')
    out = _ok(
        inject(
            write_job(text),
            "--vault-path",
            "secret/data/webid/j",
            "--vault-policy",
            "webid-read",
        )
    )
    agent = tasks_of(groups_of(hcl_job(out))["h"])["webid-agent"]
    (template,) = agent["template"]
    assert 'secret "secret/data/webid/j"' in template["data"]
    assert ".Data.data.webid_client_secret" in template["data"]
    assert agent["vault"][0]["policies"] == ["webid-read"]
    assert "nomadVar" not in out


def test_client_id_from_the_secret_store_when_not_given(
    webid: Callable[..., Run], write_job: WriteJob
) -> None:
    text = ONE_GROUP.replace("ROLE_EXPR", '"arn:aws:iam::111122223333:role/meta"')
    run = webid(
        "inject", "nomad", write_job(text), "--authority", "https://idp.example/t"
    )
    agent = tasks_of(groups_of(hcl_job(_ok(run)))["h"])["webid-agent"]
    destinations = [t["destination"] for t in agent["template"]]
    assert destinations == ["secrets/client-secret", "secrets/client-id"]
    (env,) = agent["env"]
    assert env["WEBID_CLIENT_ID_FILE"] == "${NOMAD_SECRETS_DIR}/client-id"


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (("--variable-path", 'a" }}{{ evil'), "--variable-path"),
        (("--vault-path", "x y"), "--vault-path"),
        (("--driver", "podman"), "--driver"),
    ],
)
def test_bad_options_exit_2(
    args: tuple[str, ...], where: str, inject: Inject, write_job: WriteJob
) -> None:
    text = ONE_GROUP.replace("ROLE_EXPR", '"arn:aws:iam::111122223333:role/meta"')
    run = inject(write_job(text), *args)
    assert run.code == 2
    assert where in run.err


def test_authority_is_required(webid: Callable[..., Run], write_job: WriteJob) -> None:
    run = webid("inject", "nomad", write_job(ONE_GROUP))
    assert run.code == 2
    assert "--authority" in run.err


def test_custom_templates_dir_overrides_one_template(
    inject: Inject, write_job: WriteJob, tmp_path: Path
) -> None:
    own = tmp_path / "tpl" / "nomad"
    own.mkdir(parents=True)
    (own / "env_block.hcl.j2").write_text(
        "env {\n  # from my template\n{% for e in entries %}\n"
        "  {{ e.name }} = {{ e.value|tojson }}\n{% endfor %}\n}\n"
    )
    text = ONE_GROUP.replace("ROLE_EXPR", '"arn:aws:iam::111122223333:role/meta"')
    out = _ok(inject(write_job(text), "--templates", tmp_path / "tpl"))
    assert "# from my template" in out
    assert 'task "webid-agent"' in out


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('job "j" {\n  group "g" {\n    count = \n  }\n}\n', "job.nomad.hcl:3:"),
        ('job "j" {\n  group "g" {\n', "HCL syntax error"),
        ('variable "x" {}\n', "no job block"),
        ('job "j" {\n  datacenters = ["dc1"]\n}\n', "job 'j' has no group"),
        ('job "a" {\n  group "g" {}\n}\njob "b" {\n  group "g" {}\n}\n', ":4: 2 job"),
        (
            'job "j" {\n  group "g" {}\n  group "g" {}\n}\n',
            "job.nomad.hcl:3: group 'g' is defined twice",
        ),
        (
            'job "j" {\n  group "g" {\n    meta { webid_role_arn = "nope" }\n  }\n}\n',
            "job.nomad.hcl:3: not an IAM role ARN",
        ),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    text: str, message: str, inject: Inject, write_job: WriteJob
) -> None:
    path = write_job(text)
    output = path.with_name("out.hcl")
    run = inject(path, "-o", output)
    assert run.code == 2, run.err
    assert message in run.err
    assert "Traceback" not in run.err
    assert not output.exists()
    assert path.read_text() == text


def test_missing_file_exits_2(inject: Inject, tmp_path: Path) -> None:
    run = inject(tmp_path / "absent.hcl")
    assert run.code == 2
    assert "absent.hcl: file not found" in run.err


# -- where the result goes ------------------------------------------------------------


def test_input_untouched_unless_in_place(inject: Inject, write_job: WriteJob) -> None:
    text = ONE_GROUP.replace("ROLE_EXPR", '"arn:aws:iam::111122223333:role/meta"')
    path = write_job(text)
    out = _ok(inject(path))
    assert path.read_text() == text

    output = path.with_name("out.hcl")
    assert _ok(inject(path, "-o", output)) == ""
    assert output.read_text() == out
    assert path.read_text() == text

    path.chmod(0o640)
    assert _ok(inject(path, "--in-place")) == ""
    assert path.read_text() == out
    assert path.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--in-place", "-o", "x"), "give -o or --in-place, not both"),
        (("--format", "hcl", "--job-id", "x"), "not both"),
    ],
)
def test_conflicting_flags(
    args: tuple[str, ...], message: str, inject: Inject, write_job: WriteJob
) -> None:
    run = inject(write_job(ONE_GROUP), *args)
    assert run.code == 2
    assert message in run.err


# -- one-line blocks (HCL allows one argument, closed on the same line) -------------

ROLE_LINE = 'webid_role_arn = "arn:aws:iam::111122223333:role/meta"'

ONE_LINERS = {
    "env": (
        'job "j" {\n  group "g" {\n    meta {\n      ROLE\n    }\n\n'
        '    task "t" {\n      driver = "docker"\n'
        '      env { NAME = "héllo 🚀" }\n    }\n  }\n}\n'
    ),
    "empty env": (
        'job "j" {\n  group "g" {\n    meta {\n      ROLE\n    }\n'
        '    task "t" {\n      env {}\n    }\n  }\n}\n'
    ),
    "task": (
        'job "j" {\n  group "g" {\n    meta {\n      ROLE\n    }\n'
        '    task "t" { driver = "java" }\n  }\n}\n'
    ),
    "task with a comment": (
        'job "j" {\n  group "g" {\n    meta {\n      ROLE\n    }\n'
        '    task "t" { /* java */ driver = "java" } # the app\n  }\n}\n'
    ),
    "meta and task": (
        'job "j" {\n  group "g" {\n    meta { ROLE }\n'
        '    task "t" { driver = "java" }\n  }\n}\n'
    ),
    "group": 'job "j" {\n  group "g" { meta = { ROLE } }\n}\n',
    "env object in a one-line task": (
        'job "j" {\n  group "g" {\n    meta { ROLE }\n'
        '    task "t" { env = { A = "1" } }\n  }\n}\n'
    ),
    # not valid HCL as given (a block inside a one-line block); the blocks
    # we add to are split, which makes them valid
    "nested": 'job "j" {\n  group "g" { meta { ROLE } }\n}\n',
    "nested env in task": (
        'job "j" {\n  group "g" {\n    meta { ROLE }\n'
        '    task "t" { env { A = "1" } }\n  }\n}\n'
    ),
    "nested task in group": (
        'job "j" {\n  group "g" { task "t" { driver = "java" } }\n}\n'
    ),
    "group opener shares its line": (
        'job "j" {\n  group "g" { meta { ROLE }\n'
        '    task "t" { driver = "java" }\n  }\n}\n'
    ),
}


def _squeezed_in(before: str, after: str) -> bool:
    """Every non-blank character of ``before`` appears in ``after``, in order."""
    rest = iter("".join(after.split()))
    return all(char in rest for char in "".join(before.split()))


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("layout", list(ONE_LINERS))
def test_one_line_blocks_are_split_before_lines_are_added(
    layout: str, newline: str, inject: Inject, write_job: WriteJob
) -> None:
    text = ONE_LINERS[layout].replace("ROLE", ROLE_LINE).replace("\n", newline)
    path = write_job("")
    path.write_bytes(text.encode())
    # stdout: capsys keeps line endings as written
    run = inject(path, "--role-arn", ROLE)
    out = _ok(run)

    # valid HCL by Nomad's rules, same line endings, the user's text kept
    assert hcl_line_problems(out) == []
    assert "Nomad refuses" not in run.err
    if newline == "\r\n":
        assert "\n" not in out.replace("\r\n", "")
    else:
        assert "\r" not in out
    assert _squeezed_in(text, out)
    assert "# the app" not in out or "} # the app" in out

    # and what was asked for is there, once
    tasks = tasks_of(groups_of(hcl_job(out))["g"])
    assert list(tasks)[-2:] == ["webid-token", "webid-agent"]
    for name, task in tasks.items():
        if name.startswith("webid-"):
            continue
        env = task["env"][0] if isinstance(task["env"], list) else task["env"]
        assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == TOKEN_PATH
    again = path.with_name("again.hcl")
    again.write_bytes(out.encode())
    assert _ok(inject(again, "--role-arn", ROLE)) == out


def test_one_line_env_is_split_at_its_indentation(
    inject: Inject, write_job: WriteJob
) -> None:
    text = ONE_LINERS["env"].replace("ROLE", ROLE_LINE)
    out = _ok(inject(write_job(text)))
    assert (
        '      env {\n        NAME = "héllo 🚀"\n'
        f'        AWS_ROLE_ARN                = "{ROLE.replace("from-flag", "meta")}"\n'
        f'        AWS_WEB_IDENTITY_TOKEN_FILE = "{TOKEN_PATH}"\n      }}\n    }}\n'
    ) in out


def test_untouched_invalid_layout_is_kept_with_a_warning(
    inject: Inject, write_job: WriteJob
) -> None:
    text = (
        'job "j" {\n  group "g" {\n    meta {\n      ROLE\n    }\n\n'
        '    task "t" {\n      driver = "docker"\n    }\n  }\n\n'
        '  group "cache" { task "redis" { driver = "docker" } }\n}\n'
    ).replace("ROLE", ROLE_LINE)
    run = inject(write_job(text))
    out = _ok(run)
    assert '  group "cache" { task "redis" { driver = "docker" } }\n' in out
    assert "job.nomad.hcl:12: block 'group' is written on one line" in run.err
    assert "Nomad refuses this (left as written)" in run.err
    (problem,) = hcl_line_problems(out)
    assert problem.endswith("nested block inside a one-line block")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a { b = 1\n  c = 2\n}\n", "line 1: block has content after '{'"),
        ("a { b = 1 c = 2 }\n", "line 1: two arguments on one line"),
        ("a { b { c = 1 } }\n", "line 1: nested block inside a one-line block"),
        ("a {\n  b = 1 }\n", "line 2: '}' does not start its line"),
        ("a {\n  b {\n  } c = 1\n}\n", "line 3: two items on one line"),
    ],
)
def test_the_line_rule_validator_finds_each_kind(text: str, problem: str) -> None:
    """The validator the tests rely on is not vacuous."""
    assert any(p.startswith(problem) for p in hcl_line_problems(text))
    tricky = 'a {\n  b = "{ c = 1 }"\n  d = <<X\n{\nX\n  e { f = "}" }\n}\n'
    assert hcl_line_problems(tricky) == []


# -- a user task with one of our names --------------------------------------------

CLASH = """\
job "j" {
  group "g" {
    meta {
      webid_role_arn = "arn:aws:iam::111122223333:role/meta"
    }

    task "app" {
      driver = "docker"
    }

    TASK
  }
}
"""


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        (
            'task "webid-agent" {\n      driver = "docker"\n    }',
            "it is not a prestart sidecar",
        ),
        (
            'task "webid-token" {\n      lifecycle {\n        hook = "prestart"\n'
            '      }\n      env {\n        TOKEN = "x"\n      }\n    }',
            "its env has no WEBID_TOKEN_FILE",
        ),
        (
            'task "webid-token" {\n      lifecycle {\n        hook    = "prestart"\n'
            "        sidecar = true\n      }\n    }",
            "it is not a prestart task (not a sidecar)",
        ),
        ('task "webid-agent" { driver = "exec" }', "it is not a prestart sidecar"),
    ],
)
def test_user_task_with_our_name_is_refused(
    task: str, reason: str, inject: Inject, write_job: WriteJob
) -> None:
    path = write_job(CLASH.replace("TASK", task))
    output = path.with_name("out.hcl")
    run = inject(path, "-o", output)
    assert run.code == 2, run.err
    name = task.split('"')[1]
    assert f"job.nomad.hcl:11: a task is named {name!r}" in run.err
    assert reason in run.err
    assert not output.exists()


def test_user_task_with_our_name_in_a_group_left_alone_is_kept(
    inject: Inject, write_job: WriteJob
) -> None:
    text = CLASH.replace("TASK", 'task "webid-agent" {\n      driver = "docker"\n    }')
    other = '  group "other" {\n    task "x" {}\n  }\n\n  group'
    text = text.replace("  group", other, 1)
    run = inject(write_job(text), "--group", "other", "--role-arn", ROLE)
    assert run.code == 0, run.err
    assert 'task "webid-agent" {\n      driver = "docker"\n    }' in run.out


@pytest.mark.parametrize("driver", ["exec", "raw_exec"])
def test_our_tasks_are_recognised_whatever_their_settings(
    driver: str, inject: Inject, write_job: WriteJob
) -> None:
    """A re-run with other flags replaces our tasks (config, driver, env)."""
    text = CLASH.replace("TASK", "")
    first = _ok(inject(write_job(text), "--driver", driver, "--cpu", "7"))
    second = _ok(inject(write_job(first, "again.hcl")))
    assert second == _ok(inject(write_job(text, "fresh.hcl")))
