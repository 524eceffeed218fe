"""Benchmark of the sidecar's steady state: memory after the first token, idle CPU.

Starts the real local IdP (tokens live 300 s, so the first refresh is due at
about 216-240 s, far after the idle window) and ``python -m agent run`` from
this checkout with a token file and the health server on a free loopback
port. Once the token is written and the server answers ``/readyz``:

1. Memory of the ``run`` process: VmRSS (target <= 35 MB), VmHWM (peak),
   Pss and USS (private pages) from ``/proc/PID/smaps_rollup``. Side by side,
   in the same run: a bare interpreter, and an interpreter that only imports
   what ``run`` imports (``agent.commands`` and the OIDC provider), to tell
   the interpreter and the imports from what running costs.
2. Idle cost over ``--idle`` seconds (default 20) with nobody calling it:
   utime+stime from ``/proc/PID/stat`` before and after, as CPU seconds per
   minute (target: about 0), and the context switches of all its threads per
   second (target: about 0, i.e. no polling), which count every wake-up even
   when it is too cheap for the 10 ms tick counters.

Bounded: about 30 s in all, loopback only.

    PYTHONPATH=. python bench/engine_sidecar.py [--idle 20]
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

from _engine_bench import (
    Setup,
    agent_argv,
    child_env,
    context_switches,
    cpu_seconds,
    load_average,
    memory_kb,
    running_idp,
    verdict,
)

RSS_TARGET_MB = 35.0
IDLE_CPU_TARGET = 0.1  # CPU seconds per minute that still count as "about 0"
# Wake-ups per second that still mean "no polling" (a rare timer is fine).
WAKEUP_TARGET = 0.5
LISTEN_RE = re.compile(r"health and metrics on (http://\S+)")

# What `run` imports before it fetches anything, without running it.
IMPORTS_ONLY = (
    "import signal, agent.commands, agent.providers.oidc, agent.http;"
    " print('ready', flush=True); signal.pause()"
)


# Import order for the RSS breakdown: each step is charged with what it adds
# over the steps before it (shared dependencies go to the first that needs them).
IMPORT_STEPS = (
    ("ssl", "ssl"),
    ("click", "click"),
    ("yaml", "yaml"),
    ("requests (+urllib3, charset_normalizer, idna)", "requests"),
    ("cryptography.x509 (Rust bindings)", "cryptography.x509"),
    ("jwt (PyJWT, the rest)", "jwt"),
    ("tenacity", "tenacity"),
    ("prometheus_client", "prometheus_client"),
    ("agent.commands + providers.oidc", "agent.commands, agent.providers.oidc"),
)
PROBE = """
import importlib, json, sys
def rss():
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmRSS'):
                return int(line.split()[1])
out = [['python', rss()]]
for label, names in json.loads(sys.argv[1]):
    for name in names.split(', '):
        importlib.import_module(name)
    out.append([label, rss()])
print(json.dumps(out))
"""


def _import_breakdown() -> list[tuple[str, float]]:
    """RSS added by each step of IMPORT_STEPS in a fresh interpreter, in MB."""
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", PROBE, json.dumps(IMPORT_STEPS)],
        capture_output=True,
        text=True,
        check=True,
        env=child_env(),
        timeout=60,
    )
    steps = json.loads(result.stdout)
    rows = [(steps[0][0], steps[0][1] / 1024)]
    for (_, before), (label, after) in zip(steps, steps[1:], strict=False):
        rows.append((label, (after - before) / 1024))
    return rows


def _pump(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))


def _start_sidecar(setup: Setup, token_file: Path) -> tuple[subprocess.Popen[str], str]:
    """Start ``run``; return it and its health URL once the token is written."""
    argv = agent_argv(
        "run",
        *setup.engine_options(),
        "--token-file",
        str(token_file),
        "--listen",
        "127.0.0.1:0",
    )
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        argv, stderr=subprocess.PIPE, text=True, env=child_env()
    )
    assert proc.stderr is not None  # noqa: S101 - set by Popen above
    lines: list[str] = []
    threading.Thread(target=_pump, args=(proc.stderr, lines), daemon=True).start()
    deadline = time.monotonic() + 30
    url = None
    while time.monotonic() < deadline and proc.poll() is None:
        for line in lines:
            found = LISTEN_RE.search(line)
            url = found.group(1) if found else url
        if url and token_file.exists():
            return proc, url
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the sidecar wrote no token in 30 s:\n" + "\n".join(lines))


def _idle_process(code: str) -> subprocess.Popen[str]:
    """A python child that prints 'ready' and then sleeps until killed."""
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert proc.stdout is not None  # noqa: S101 - set by Popen above
    proc.stdout.readline()
    return proc


def _mb(kb: int | None) -> str:
    return f"{kb / 1024:7.1f}" if kb is not None else "    n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=20.0, help="idle seconds")
    args = parser.parse_args()
    idle = min(max(args.idle, 5.0), 120.0)

    print(f"# engine sidecar steady state ({load_average()})")
    with running_idp() as setup:
        # references: a bare interpreter, and one holding run's imports
        bare = _idle_process(
            "import signal; print('ready', flush=True); signal.pause()"
        )
        imports = _idle_process(IMPORTS_ONLY)
        proc, url = _start_sidecar(setup, setup.workdir / "token")
        try:
            time.sleep(1.0)  # let start-up garbage settle
            with urllib.request.urlopen(url + "/readyz", timeout=5) as resp:  # noqa: S310
                ready = resp.status == 200
            rows = {
                "python -c pass (sleeping)": memory_kb(bare.pid),
                "python + run's imports": memory_kb(imports.pid),
                "agent run after 1st token": memory_kb(proc.pid),
            }

            # idle window: nobody talks to it
            cpu0, ctx0, t0 = (
                cpu_seconds(proc.pid),
                context_switches(proc.pid),
                time.monotonic(),
            )
            time.sleep(idle)
            cpu1, ctx1, t1 = (
                cpu_seconds(proc.pid),
                context_switches(proc.pid),
                time.monotonic(),
            )
            with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:  # noqa: S310
                metrics = resp.read().decode()
            rows["agent run after a scrape"] = memory_kb(proc.pid)
        finally:
            stop_started = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=10)
            stop_ms = (time.perf_counter() - stop_started) * 1000
            for other in (bare, imports):
                other.kill()
                other.wait()

    refreshes = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("webid_")
        and "refreshes_total" in line
        and 'result="' in line
    )
    elapsed = t1 - t0
    cpu_per_min = (cpu1 - cpu0) / elapsed * 60
    wakeups = (ctx1 - ctx0) / elapsed
    rss_mb = rows["agent run after 1st token"]["VmRSS"] / 1024

    print()
    header = ("RSS MB", "HWM MB", "PSS MB", "USS MB")
    print(f"{'process':28} " + " ".join(f"{h:>7}" for h in header) + " threads")
    for name, mem in rows.items():
        sizes = " ".join(_mb(mem.get(key)) for key in ("VmRSS", "VmHWM", "Pss", "USS"))
        print(f"{name:28} {sizes} {mem.get('Threads', 0):7d}")
    base = rows["python -c pass (sleeping)"]["VmRSS"] / 1024
    imp = rows["python + run's imports"]["VmRSS"] / 1024
    print(
        f"RSS split: interpreter {base:.1f} MB + imports {imp - base:.1f} MB"
        f" + running {rss_mb - imp:.1f} MB"
    )
    print()
    print("RSS added by each import step (fresh interpreter, in this order):")
    for label, mb in _import_breakdown():
        print(f"  {label:48} {mb:+6.1f} MB")
    print()
    print(f"idle window           {elapsed:6.1f} s  (readyz {ready})")
    print(f"refreshes so far      {refreshes:6.0f}    (1 = only the first token)")
    print(f"CPU used              {cpu1 - cpu0:6.2f} s  ({cpu_per_min:.3f} CPU s/min)")
    print(f"context switches      {ctx1 - ctx0:6d}    ({wakeups:.1f} wake-ups/s)")
    print(f"SIGTERM -> exit       {stop_ms:6.0f} ms (exit code {code})")
    print()
    rss_ok = verdict(rss_mb <= RSS_TARGET_MB)
    print(f"RESULT rss_mb={rss_mb:.1f} target<={RSS_TARGET_MB:.0f} {rss_ok}")
    cpu_ok = verdict(cpu_per_min <= IDLE_CPU_TARGET)
    print(
        f"RESULT idle_cpu_s_per_min={cpu_per_min:.3f}"
        f" target~0 (<={IDLE_CPU_TARGET}) {cpu_ok}"
    )
    wake_ok = verdict(wakeups <= WAKEUP_TARGET)
    print(
        f"RESULT idle_wakeups_per_s={wakeups:.1f} target~0 (no polling,"
        f" <={WAKEUP_TARGET}) {wake_ok}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
