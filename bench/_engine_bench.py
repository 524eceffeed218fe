"""Shared helpers of the engine and Docker benchmarks (not a benchmark itself).

Starts the real local IdP (``devenv.idp``), writes the basic-auth client's
secret to a private file, builds the engine's command lines (always
``python -m agent`` from this checkout, never the ``webid-agent`` on PATH),
and reads a process's memory and CPU counters from ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from devenv.idp import Idp, ensure_node_modules, start_idp

REPO = Path(__file__).resolve().parent.parent
CLIENT_ID = "webid-secret"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IMPORT_RE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


@dataclass(frozen=True)
class Setup:
    """A running IdP and the files the engine needs to use it."""

    idp: Idp
    workdir: Path
    secret_file: Path

    def engine_options(self) -> list[str]:
        """The IdP options shared by ``run``, ``token`` and ``docker``."""
        return [
            "--authority",
            self.idp.issuer,
            "--client-id",
            CLIENT_ID,
            "--client-secret-file",
            str(self.secret_file),
            "--ca-bundle",
            str(self.idp.ca_file),
            "--audience",
            self.idp.audience,
        ]


@contextlib.contextmanager
def running_idp(ttl: int = 300) -> Iterator[Setup]:
    """Start the local IdP in a temporary folder; stop and remove it after."""
    ensure_node_modules()
    with tempfile.TemporaryDirectory(prefix="webid-bench-") as tmp:
        workdir = Path(tmp)
        with start_idp(workdir / "idp", ttl=ttl) as idp:
            secret = idp.client(CLIENT_ID).secret
            if not secret:
                raise RuntimeError(f"the IdP made no secret for {CLIENT_ID}")
            secret_file = workdir / "client-secret"
            secret_file.write_text(secret)
            secret_file.chmod(0o600)
            yield Setup(idp=idp, workdir=workdir, secret_file=secret_file)


def agent_argv(*args: str, python_flags: Sequence[str] = ()) -> list[str]:
    """``python [flags] -m agent ARGS`` with this interpreter."""
    return [sys.executable, *python_flags, "-m", "agent", *args]


def child_env() -> dict[str, str]:
    """The environment for children: this checkout first on PYTHONPATH.

    WEBID_* variables and CA overrides are dropped so that only the options on
    the command line count.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WEBID_")
        and key not in {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}
    }
    paths = [str(REPO), *filter(None, env.get("PYTHONPATH", "").split(":"))]
    env["PYTHONPATH"] = ":".join(dict.fromkeys(paths))
    return env


# -- /proc counters -----------------------------------------------------------


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM from status; Pss and USS (private pages) from smaps_rollup."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            values[key] = int(rest.split()[0])
    with contextlib.suppress(OSError):
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        fields = {}
        for line in rollup[1:]:
            key, _, rest = line.partition(":")
            fields[key] = int(rest.split()[0])
        values["Pss"] = fields["Pss"]
        values["USS"] = fields["Private_Clean"] + fields["Private_Dirty"]
    return values


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name may hold spaces; fields restart after its ")"
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches summed over all threads.

    Each wake-up of a sleeping thread counts at least one: a loop that polls
    shows up here even when it burns too little CPU for the tick counters.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")):
                    total += int(line.split()[1])
    return total


def load_average() -> str:
    """The 1/5/15-minute load averages and the CPU count, for the report."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_import_times(what: str, stderr: str, top: int = 12) -> None:
    """Summarise ``python -X importtime`` output found in ``stderr``.

    Own time is summed per top-level package; cumulative time is shown for
    imports made by the interpreter itself or one level below (what the
    program's own modules pull in).
    """
    own: dict[str, int] = defaultdict(int)  # top-level package -> self us
    cumulative: list[tuple[int, str]] = []
    for line in stderr.splitlines():
        found = IMPORT_RE.match(line)
        if not found:
            continue
        self_us, cum_us, indent, name = found.groups()
        own[name.split(".")[0]] += int(self_us)
        if len(indent) <= 3:
            cumulative.append((int(cum_us), name))
    total = sum(own.values())
    print(f"python -X importtime of {what}: {total / 1000:.0f} ms in imports")
    print("  by top-level package (own time of all its modules):")
    for name, us in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {name:40} {us / 1000:7.1f} ms")
    print("  heaviest first- and second-level imports (cumulative):")
    for us, name in sorted(cumulative, reverse=True)[:top]:
        print(f"    {name:40} {us / 1000:7.1f} ms")
