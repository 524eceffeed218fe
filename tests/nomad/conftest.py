"""Fixtures for the Nomad injector: the CLI, the cases, re-parsing the output.

The job files people reported (``data/cases``) are injected through the real
``webid-agent`` command line; golden outputs live in ``data/golden`` (set
``UPDATE_GOLDEN=1`` to rewrite them after a deliberate change).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture(scope="session", autouse=True)
def _this_checkout() -> Iterator[None]:
    """Run against this checkout's plugin and templates, whatever is installed.

    Several checkouts of the project may be ``pip install -e``-ed in turn on
    one machine; the last one wins the ``webid_agent_templates`` package and
    the entry points. This registers the nomad entry point and the built-in
    templates of THIS checkout for the test session, the way setup.cfg does.
    """
    mp = pytest.MonkeyPatch()
    dist = REPO / "build" / "nomad-test-entry-points"
    info = dist / "webid_agent_nomad_tests-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: webid-agent-nomad-tests\nVersion: 0\n"
    )
    (info / "entry_points.txt").write_text(
        "[webid_agent.injectors]\nnomad = injectors.nomad.plugin:PLUGIN\n"
    )
    mp.syspath_prepend(str(dist))
    mp.syspath_prepend(str(REPO))
    spec = importlib.util.spec_from_file_location(
        "webid_agent_templates",
        REPO / "templates" / "__init__.py",
        submodule_search_locations=[str(REPO / "templates")],
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mp.setitem(sys.modules, "webid_agent_templates", module)
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _no_nomad_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's NOMAD_* settings away from the tests."""
    for name in list(os.environ):
        if name.startswith("NOMAD_"):
            monkeypatch.delenv(name)


@dataclass
class Run:
    """The outcome of one ``webid-agent`` invocation."""

    code: int
    out: str
    err: str


CliRunner = Callable[..., Run]


@pytest.fixture
def webid(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """Run ``webid-agent ARGS...`` in-process; returns exit code, stdout, stderr."""
    from agent.cli import main

    def run(*args: str | Path) -> Run:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        else:  # pragma: no cover - main always exits
            code = 0
        captured = capsys.readouterr()
        return Run(code=code, out=captured.out, err=captured.err)

    return run


@pytest.fixture
def inject(webid: CliRunner) -> Callable[..., Run]:
    """``webid-agent inject nomad FILE`` with the test IdP settings."""

    def run(path: Path, *args: str | Path) -> Run:
        return webid("inject", "nomad", path, *IDP_ARGS, *args)

    return run


@pytest.fixture
def write_job(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a job text to a file in the test's folder and return its path."""

    def write(text: str, name: str = "job.nomad.hcl") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


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


@pytest.fixture(scope="session")
def local_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The local OIDC IdP from ``devenv.idp`` (node oidc-provider, own CA).

    Started once per session; clients and their generated secrets are in
    ``local_idp.clients``, the CA that signed its TLS certificate in
    ``local_idp.ca_file``.
    """
    from devenv.idp import start_idp

    with start_idp(tmp_path_factory.mktemp("idp")) as idp:
        yield idp
