"""Wrong-typed values, reserved names and unreadable files: exit 2, never a traceback.

Every value the injector reads (``services`` and each service, ``environment``,
``depends_on``, ``volumes``, ``x-webid``, the top-level ``volumes``, ``secrets``
and ``x-webid``) is checked where it is read; an error names ``file:line`` and
the key path.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from tests.compose.helpers import DATA, IDP_OPTIONS, RunCli

ROLE = "arn:aws:iam::111122223333:role/a"
# every key the injector reads, in each of its valid forms
RICH = f"""\
x-webid:
  role-arn: {ROLE}
  region: eu-west-1
services:
  web:
    image: nginx
    environment:
      - FOO=bar
      - BARE
    depends_on:
      - db
    volumes:
      - data:/data
      - type: bind
        source: ./conf
        target: /conf
    x-webid: true
  db:
    image: postgres
    environment:
      PGPASSWORD: example
      EMPTY:
      PORT: 5432
    depends_on:
      cache:
        condition: service_started
    x-webid:
      role-arn: {ROLE}
      session-name: db
  cache:
    image: redis
volumes:
  data: {{}}
secrets:
  other:
    file: ./other
"""
WRONG: list[Any] = [5, 1.5, True, None, "text", [1], [[1]], {"k": [1]}, [], {}]


def _write(data: Any, path: Path) -> None:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(data, out)
    path.write_text(out.getvalue())


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside ``node`` (mapping keys and list indices)."""
    found: list[tuple[Any, ...]] = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        found.append((*prefix, key))
        found.extend(_paths(value, (*prefix, key)))
    return found


def _bases() -> list[Any]:
    """RICH and every input case in ``data/`` (not the expected outputs)."""
    loader = YAML(typ="safe", pure=True)
    inputs = [p for p in sorted(DATA.glob("*.yml")) if ".expected." not in p.name]
    return [loader.load(RICH)] + [loader.load(p.read_text()) for p in inputs]


BASES = _bases()


def _assert_clean(result: Any, path: Path) -> None:
    """Exit 0, or exit 2 with one line naming the file; never anything else."""
    assert result.exit_code in (0, 2), result.stderr
    assert "Traceback" not in result.stderr
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("webid-agent: error: ")
        assert str(path) in lines[0]


@pytest.mark.parametrize(
    "edit",
    [
        ("services", "web", "environment"),
        ("services", "web", "depends_on"),
        ("services", "web", "volumes"),
        ("services", "web", "x-webid"),
        ("services", "cache"),
        ("volumes",),
        ("secrets",),
        ("x-webid",),
        ("x-webid", "region"),
        ("services", "db", "x-webid", "session-name"),
        ("services",),
    ],
    ids=".".join,
)
def test_a_wrong_type_is_named_with_line_and_key_path(
    run_cli: RunCli, project: Path, edit: tuple[str, ...]
) -> None:
    yaml = YAML()
    data = yaml.load(RICH)
    node = data
    for key in edit[:-1]:
        node = node[key]
    node[edit[-1]] = 5
    path = project / "compose.yml"
    out = io.StringIO()
    yaml.dump(data, out)
    text = out.getvalue()
    path.write_text(text)
    # the edited key is the one line that reads "KEY: 5"
    (line,) = [
        number
        for number, content in enumerate(text.splitlines(), start=1)
        if content.strip() == f"{edit[-1]}: 5"
    ]
    result = run_cli("inject", "compose", str(path), *IDP_OPTIONS)
    _assert_clean(result, path)
    assert result.exit_code == 2
    assert f"{path}:{line} {'.'.join(edit)}: " in result.stderr
    assert "got an integer" in result.stderr


@pytest.mark.parametrize(
    ("value", "key", "needle"),
    [
        ("FOO", "services.web.environment", "got a string"),
        ([{"A": 1}], "services.web.environment[0]", "got a mapping"),
        ({"A": [1]}, "services.web.environment.A", "got a list"),
    ],
)
def test_environment_forms_compose_would_refuse(
    run_cli: RunCli, project: Path, value: Any, key: str, needle: str
) -> None:
    data = YAML(typ="safe", pure=True).load(RICH)
    data["services"]["web"]["environment"] = value
    path = project / "compose.yml"
    _write(data, path)
    result = run_cli("inject", "compose", str(path), *IDP_OPTIONS)
    _assert_clean(result, path)
    assert result.exit_code == 2
    assert f" {key}: " in result.stderr
    assert needle in result.stderr


@pytest.mark.parametrize(
    ("block", "entry"),
    [
        ("volumes", {"external": True}),
        ("volumes", {"driver": "nfs"}),
        ("secrets", {"environment": "MY_SECRET"}),
        ("secrets", "text"),
    ],
)
def test_a_top_level_entry_with_our_name_is_refused(
    run_cli: RunCli, project: Path, block: str, entry: Any
) -> None:
    data = YAML(typ="safe", pure=True).load(RICH)
    name = "webid-token" if block == "volumes" else "webid-client-secret"
    data[block][name] = entry
    path = project / "compose.yml"
    _write(data, path)
    result = run_cli("inject", "compose", str(path), *IDP_OPTIONS)
    _assert_clean(result, path)
    assert result.exit_code == 2
    assert f" {block}.{name}: " in result.stderr
    assert "not added by webid-agent" in result.stderr


def test_our_own_top_level_entries_are_replaced(run_cli: RunCli, project: Path) -> None:
    path = project / "compose.yml"
    path.write_text(RICH)
    once = run_cli("inject", "compose", str(path), *IDP_OPTIONS)
    assert once.exit_code == 0, once.stderr
    path.write_text(once.stdout)
    twice = run_cli("inject", "compose", str(path), *IDP_OPTIONS)
    assert twice.exit_code == 0, twice.stderr
    assert twice.stdout == once.stdout


def test_a_file_that_is_not_utf8_is_named(run_cli: RunCli, project: Path) -> None:
    path = project / "compose.yml"
    path.write_bytes(b"services:\n  app:\n    image: caf\xe9\n")
    result = run_cli("inject", "compose", str(path), *IDP_OPTIONS)
    _assert_clean(result, path)
    assert result.exit_code == 2
    assert "not UTF-8" in result.stderr


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_wrong_typed_values_never_give_a_traceback(
    run_cli: RunCli, project: Path, data: st.DataObject
) -> None:
    document = copy.deepcopy(data.draw(st.sampled_from(BASES), label="base"))
    # replace one to three values anywhere with values of another type
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        paths = _paths(document)
        if not paths:
            break
        where = data.draw(st.sampled_from(paths), label="path")
        node = document
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = copy.deepcopy(data.draw(st.sampled_from(WRONG)))
    path = project / "compose.yml"
    _write(document, path)
    result = run_cli("inject", "compose", str(path), *IDP_OPTIONS)
    _assert_clean(result, path)
