"""End to end: the injected first-token task, run the way Nomad's exec runs it.

The job is injected with ``--driver exec``; the test reads the rendered
``webid-token`` task back from the HCL output, plays Nomad's part (alloc and
secrets dirs, the template's secret file, ``${NOMAD_*}`` interpolation of the
env) and executes the task's command line against the local IdP. The token
file must appear where the workload tasks are told to look for it; in
credentials-endpoint mode so must the endpoint's authorization token file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.nomad.helpers import REPO, Run, groups_of, hcl_job, tasks_of

Webid = Callable[..., Run]

JOB = """\
job "e2e" {
  group "app" {
    meta {
      webid_role_arn = "arn:aws:iam::111122223333:role/e2e"
    }

    network {
      mode = "bridge"
    }

    task "main" {
      driver = "exec"

      config {
        command = "/bin/true"
      }
    }
  }
}
"""


def _interpolate(value: str, dirs: dict[str, str]) -> str:
    """Nomad's ``${NOMAD_*}`` interpolation of a task's env values."""
    return re.sub(r"\$\{(NOMAD_[A-Z_]+)\}", lambda m: dirs[m.group(1)], value)


@pytest.mark.parametrize("mode", ["web-identity", "credentials-endpoint"])
def test_first_token_task_writes_the_token(
    mode: str, webid: Webid, idp: Any, tmp_path: Path
) -> None:
    from devenv.idp import verify_token

    client = idp.client("webid-secret")
    jobfile = tmp_path / "e2e.nomad.hcl"
    jobfile.write_text(JOB)
    run = webid(
        "inject",
        "nomad",
        jobfile,
        "--driver",
        "exec",
        "--authority",
        idp.issuer,
        "--client-id",
        client.client_id,
        "--audience",
        idp.audience,
        "--ca-bundle",
        str(idp.ca_file),
        "--deadline",
        "30",
        "--mode",
        mode,
    )
    assert run.code == 0, run.err
    group = groups_of(hcl_job(run.out))["app"]
    task = tasks_of(group)["webid-token"]
    main_env = tasks_of(group)["main"]["env"][0]
    (config,) = task["config"]
    (env,) = task["env"]
    (template,) = task["template"]

    # Nomad's part: task dirs, the rendered secret, interpolated env
    dirs = {
        "NOMAD_ALLOC_DIR": str(tmp_path / "alloc"),
        "NOMAD_SECRETS_DIR": str(tmp_path / "task" / "secrets"),
        "NOMAD_TASK_DIR": str(tmp_path / "task" / "local"),
    }
    for folder in dirs.values():
        Path(folder).mkdir(parents=True)
    secret_file = tmp_path / "task" / template["destination"]
    secret_file.write_text(client.secret)
    task_env = {
        k: _interpolate(str(v), dirs) for k, v in env.items() if not k.startswith("__")
    }

    # exec: the rendered command line, this checkout's engine first on the path
    command = [config["command"], *config["args"]]
    assert command == ["webid-agent", "token", "--deadline", "30"]
    bindir = Path(sys.executable).parent
    process = subprocess.run(
        command,
        env={
            "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO),
            "HOME": str(tmp_path),
            **dirs,
            **task_env,
        },
        cwd=tmp_path / "task",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 0, process.stderr

    # the token is where the agent (and in web-identity mode the workload)
    # looks, and it is the IdP's
    token_file = Path(_interpolate(env["WEBID_TOKEN_FILE"], dirs))
    assert token_file == tmp_path / "alloc" / "webid" / "token"
    if mode == "web-identity":
        assert _interpolate(main_env["AWS_WEB_IDENTITY_TOKEN_FILE"], dirs) == str(
            token_file
        )
    else:
        # the endpoint's authorization token file exists before the workload
        auth = main_env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]
        auth_file = Path(_interpolate(auth, dirs))
        assert auth_file == token_file.parent / "credentials-auth-token"
        assert len(auth_file.read_text().strip()) >= 40
        assert "AWS_WEB_IDENTITY_TOKEN_FILE" not in main_env
    claims = verify_token(idp, token_file.read_text().strip())
    assert claims["iss"] == idp.issuer
    assert client.secret not in process.stdout + process.stderr
