"""``webid-agent inject compose``: golden files, idempotence, order, comments."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from agent import TOKEN_DIR, InjectorPlugin
from tests.compose.helpers import CLIENT_SECRET, DATA, IDP_OPTIONS, RunCli

CASES = sorted(p.stem for p in DATA.glob("*.yml") if ".expected" not in p.name)
Validate = Callable[[Path], "subprocess.CompletedProcess[str]"]


def inject(run_cli: RunCli, path: Path, *extra: str) -> str:
    result = run_cli("inject", "compose", str(path), *IDP_OPTIONS, *extra)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def copy_case(name: str, project: Path) -> Path:
    target = project / "docker-compose.yml"
    shutil.copy(DATA / f"{name}.yml", target)
    return target


def load(text: str) -> dict:  # type: ignore[type-arg]
    return YAML(typ="safe").load(text)  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", CASES)
def test_golden(run_cli: RunCli, project: Path, case: str) -> None:
    # an explicit user keeps the goldens independent of who owns the test files
    out = inject(run_cli, copy_case(case, project), "--agent-user", "10001:10001")
    expected = DATA / f"{case}.expected.yml"
    if os.environ.get("UPDATE_GOLDEN"):
        expected.write_text(out)
    assert out == expected.read_text()


@pytest.mark.parametrize("case", CASES)
def test_injecting_twice_changes_nothing(
    run_cli: RunCli, project: Path, case: str
) -> None:
    once = inject(run_cli, copy_case(case, project))
    (project / "once.yml").write_text(once)
    assert inject(run_cli, project / "once.yml") == once


@pytest.mark.parametrize("case", CASES)
def test_order_and_comments_are_kept(run_cli: RunCli, project: Path, case: str) -> None:
    source = (DATA / f"{case}.yml").read_text()
    out = inject(run_cli, copy_case(case, project))
    comments = [line.strip() for line in source.splitlines() if "#" in line]
    for comment in comments:
        fragment = comment[comment.index("#") :]
        assert fragment in out
    before, after = load(source), load(out)
    assert list(after)[: len(before)] == list(before)
    for name, service in before["services"].items():
        assert list(after["services"][name])[: len(service)] == list(service)
    assert list(after["services"])[: len(before["services"])] == list(
        before["services"]
    )


@pytest.mark.parametrize("case", CASES)
def test_output_is_a_valid_compose_file(
    run_cli: RunCli, project: Path, case: str, compose_config: Validate
) -> None:
    path = project / "out.yml"
    path.write_text(inject(run_cli, copy_case(case, project)))
    checked = compose_config(path)
    assert checked.returncode == 0, checked.stderr


def test_what_an_opted_in_service_gets(run_cli: RunCli, project: Path) -> None:
    out = load(inject(run_cli, copy_case("mixed", project)))
    services = out["services"]
    worker = services["worker"]
    assert worker["environment"] == {
        "AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/worker",
        "AWS_WEB_IDENTITY_TOKEN_FILE": f"{TOKEN_DIR}/token",
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
    }
    assert worker["volumes"] == [f"webid-token:{TOKEN_DIR}:ro"]
    assert worker["depends_on"]["webid-token"] == {
        "condition": "service_completed_successfully"
    }
    # the list form of depends_on became the map form, keeping db
    assert services["web"]["depends_on"]["db"] == {"condition": "service_started"}
    assert (
        "AWS_ROLE_ARN=arn:aws:iam::111122223333:role/app"
        in (services["web"]["environment"])
    )
    assert "environment" not in services["db"] or not any(
        k.startswith("AWS_") for k in services["db"]["environment"]
    )
    assert "volumes" not in services["db"]


def test_the_sidecar_services(run_cli: RunCli, project: Path) -> None:
    out = load(inject(run_cli, copy_case("mixed", project)))
    first, agent = out["services"]["webid-token"], out["services"]["webid-agent"]
    assert first["command"][0] == "token"
    assert first["restart"] == "no"
    assert agent["command"] == ["run"]
    assert agent["depends_on"] == {
        "webid-token": {"condition": "service_completed_successfully"}
    }
    for service in (first, agent):
        env = service["environment"]
        assert env["WEBID_CLIENT_SECRET_FILE"] == "/run/secrets/webid-client-secret"
        assert env["WEBID_TOKEN_FILE"] == f"{TOKEN_DIR}/token"
        assert service["volumes"] == [f"webid-token:{TOKEN_DIR}"]
    assert out["secrets"] == {
        "webid-client-secret": {"file": "./secrets/client-secret"}
    }
    assert "webid-token" in out["volumes"]


def test_the_secret_never_appears(run_cli: RunCli, project: Path) -> None:
    result = run_cli(
        "inject", "compose", str(copy_case("mixed", project)), *IDP_OPTIONS
    )
    assert CLIENT_SECRET not in result.stdout + result.stderr


def test_a_service_keeps_its_own_variable_and_we_say_so(
    run_cli: RunCli, project: Path
) -> None:
    path = copy_case("four-spaces", project)
    result = run_cli("inject", "compose", str(path), *IDP_OPTIONS)
    env = load(result.stdout)["services"]["api"]["environment"]
    assert env["AWS_ROLE_ARN"] == "arn:aws:iam::111122223333:role/kept"
    assert re.search(
        r"warning: .*docker-compose.yml:\d+ services.api.environment: service api:"
        r" keeps its own AWS_ROLE_ARN",
        result.stderr,
    )


def test_the_input_is_untouched_unless_in_place(run_cli: RunCli, project: Path) -> None:
    path = copy_case("mixed", project)
    before = path.read_text()
    out = project / "sub" / "compose.out.yml"
    out.parent.mkdir()
    result = run_cli("inject", "compose", str(path), *IDP_OPTIONS, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert path.read_text() == before
    # paths are relative to the file written, as Compose resolves them
    assert load(out.read_text())["secrets"]["webid-client-secret"]["file"] == (
        "../secrets/client-secret"
    )
    result = run_cli("inject", "compose", str(path), *IDP_OPTIONS, "--in-place")
    assert result.exit_code == 0
    assert path.read_text() != before
    assert "webid-agent" in load(path.read_text())["services"]


def test_x_webid_true_takes_the_role_from_the_command_line(
    run_cli: RunCli, project: Path
) -> None:
    path = project / "c.yml"
    path.write_text("services:\n  app:\n    image: a\n    x-webid: true\n")
    out = inject(run_cli, path, "--role-arn", "arn:aws:iam::111122223333:role/cli")
    env = load(out)["services"]["app"]["environment"]
    assert env["AWS_ROLE_ARN"] == "arn:aws:iam::111122223333:role/cli"


BAD = [
    ("services:\n  app:\n    image: a\n", "no service has an x-webid", 1, "services"),
    ("services:\n  app:\n    x-webid: true\n", "no role", 3, "services.app.x-webid"),
    (
        "services:\n  app:\n    x-webid: {role-arn: nope}\n",
        "not a role ARN",
        3,
        "services.app.x-webid",
    ),
    (
        "services:\n  app:\n    x-webid: yes please\n",
        "must be true, false",
        3,
        "services.app.x-webid",
    ),
    (
        "services:\n  app:\n    x-webid: {role-arn: x, rolearn: y}\n",
        "unknown x-webid key(s): rolearn",
        3,
        "services.app.x-webid",
    ),
    (
        "services:\n  webid-agent:\n    image: mine\n  app:\n"
        "    x-webid: {role-arn: 'arn:aws:iam::111122223333:role/a'}\n",
        "not added by webid-agent",
        2,
        "services.webid-agent",
    ),
    (
        "services:\n  app:\n    volumes: ['mine:/var/run/secrets/webid']\n"
        "    x-webid: {role-arn: 'arn:aws:iam::111122223333:role/a'}\n",
        "already mounts mine at /var/run/secrets/webid",
        3,
        "services.app.volumes[0]",
    ),
    ("services:\n  app: [\n", "not valid YAML", 3, ""),
    ("- just\n- a list\n", "expected a Compose file", None, ""),
    ("version: '3'\n", "no services mapping", None, "services"),
]


@pytest.mark.parametrize(("content", "message", "line", "key"), BAD)
def test_bad_input_is_named_with_its_line(
    run_cli: RunCli,
    project: Path,
    content: str,
    message: str,
    line: int | None,
    key: str,
) -> None:
    path = project / "bad.yml"
    path.write_text(content)
    result = run_cli("inject", "compose", str(path), *IDP_OPTIONS)
    assert result.exit_code == 2
    assert message in result.stderr
    where = f"{path}:{line}" if line else f"{path}"
    where += f" {key}:" if key else ":"
    assert where in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--client-secret-env", "SECRET"), "--client-secret-env"),
        (("-o", "x.yml", "--in-place"), "not both"),
    ],
)
def test_bad_options(
    run_cli: RunCli, project: Path, extra: tuple[str, ...], message: str
) -> None:
    result = run_cli(
        "inject", "compose", str(copy_case("mixed", project)), *IDP_OPTIONS, *extra
    )
    assert result.exit_code == 2
    assert message in result.stderr


def test_registered_through_the_entry_point(run_cli: RunCli) -> None:
    (found,) = [
        ep for ep in entry_points(group="webid_agent.injectors") if ep.name == "compose"
    ]
    plugin = found.load()
    assert isinstance(plugin, InjectorPlugin)
    assert plugin.inject is not None and plugin.inject.name == "compose"
    assert "compose" in run_cli("inject", "--help").stdout


def test_the_plugin_uses_only_the_public_api() -> None:
    package = Path(__file__).parents[2] / "injectors" / "compose"
    for module in package.glob("*.py"):
        text = module.read_text()
        assert not re.search(r"^\s*(from|import) agent\.", text, re.M), module.name
        assert "injectors.docker" not in text and "injectors.k8s" not in text


def test_the_plugin_module_does_not_import_yaml() -> None:
    code = (
        "import sys, injectors.compose.plugin;"
        "print(any(m.startswith('ruamel') for m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


_name = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True).filter(
    lambda n: n not in ("webid-token", "webid-agent")
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    names=st.lists(_name, min_size=1, max_size=4, unique=True),
    opted=st.lists(st.booleans(), min_size=4, max_size=4),
    env_as_list=st.booleans(),
    existing=st.dictionaries(
        st.sampled_from(["AWS_REGION", "FOO", "AWS_ROLE_ARN", "BAR"]),
        st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True),
        max_size=3,
    ),
)
def test_generated_files_inject_idempotently(
    run_cli: RunCli,
    project: Path,
    names: list[str],
    opted: list[bool],
    env_as_list: bool,
    existing: dict[str, str],
) -> None:
    role = "arn:aws:iam::111122223333:role/gen"
    services = {}
    for name, opt in zip(names, opted, strict=False):
        service: dict[str, object] = {"image": "busybox"}
        if existing:
            service["environment"] = (
                [f"{k}={v}" for k, v in existing.items()] if env_as_list else existing
            )
        if opt:
            service["x-webid"] = {"role-arn": role}
        services[name] = service
    path = project / "gen.yml"
    YAML().dump({"services": services}, path)
    result = run_cli("inject", "compose", str(path), *IDP_OPTIONS)
    if not any(opted[: len(names)]):
        assert result.exit_code == 2
        return
    assert result.exit_code == 0, result.stderr
    once = project / "once.yml"
    once.write_text(result.stdout)
    assert inject(run_cli, once) == result.stdout
    out = load(result.stdout)["services"]
    for name, opt in zip(names, opted, strict=False):
        env = out[name].get("environment") or {}
        names_set = (
            {e.split("=", 1)[0] for e in env} if isinstance(env, list) else set(env)
        )
        assert ("AWS_WEB_IDENTITY_TOKEN_FILE" in names_set) == opt


def test_agent_runs_as_the_owner_of_the_secret_by_default(
    run_cli: RunCli, project: Path
) -> None:
    out = load(inject(run_cli, copy_case("mixed", project)))

    owner = f"{os.getuid()}:{os.getgid()}"
    for name in ("webid-token", "webid-agent"):
        assert out["services"][name]["user"] == owner
    options = out["volumes"]["webid-token"]["driver_opts"]
    assert options["type"] == "tmpfs"
    assert f"uid={os.getuid()},gid={os.getgid()}," in options["o"]


@pytest.mark.parametrize("value", ["root", "1000:staff", ":5", "-1"])
def test_bad_agent_user(run_cli: RunCli, project: Path, value: str) -> None:
    result = run_cli(
        "inject", "compose", str(copy_case("mixed", project)), *IDP_OPTIONS,
        "--agent-user", value,
    )  # fmt: skip

    assert result.exit_code == 2
    assert "--agent-user" in result.stderr
