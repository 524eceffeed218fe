"""Benchmark of cold start: spawning the engine until its token file exists.

Against the real local IdP, interleaved, ``--runs`` times each (default 7):

- engine: ``python -m agent token ... --token-file F`` from spawn until F
  exists (polled every 2 ms) and until the process has exited;
- raw: a fresh ``python -c`` doing one ``requests.post`` with
  client_secret_basic to the same token endpoint and writing the token to a
  file, timed the same way, so both pay interpreter start-up;
- floor: ``python -c pass``.

Also in this process: one raw POST on a fresh connection (TLS handshake
included), and the engine's own fetch time from its log line. The verdict
compares the medians: engine minus raw (target: <= +300 ms). A breakdown of
``python -X importtime`` of the same engine command follows, with the
heaviest modules by cumulative and by own import time.

Bounded: about 20 s, loopback only.

    PYTHONPATH=. python bench/engine_cold_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from _engine_bench import (
    CLIENT_ID,
    Setup,
    agent_argv,
    child_env,
    load_average,
    median,
    print_import_times,
    running_idp,
    verdict,
)

TARGET_MS = 300.0
TOOK_RE = re.compile(r"\(took ([0-9.]+)s\)")

RAW_POST = """
import sys, requests
url, client, secret_file, ca, out = sys.argv[1:6]
secret = open(secret_file).read().strip()
r = requests.post(url, data={"grant_type": "client_credentials"},
                  auth=(client, secret), verify=ca, timeout=10)
r.raise_for_status()
with open(out, "w") as f:
    f.write(r.json()["access_token"])
"""


@dataclass
class Sample:
    file_ms: float
    exit_ms: float
    log: str


def _timed(argv: list[str], out: Path | None) -> Sample:
    """Spawn ``argv``; time until ``out`` exists and until the process exits."""
    if out is not None:
        out.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    seen = None
    while proc.poll() is None:
        if seen is None and out is not None and out.exists():
            seen = time.perf_counter()
        time.sleep(0.002)
    ended = time.perf_counter()
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[1:4]} failed ({proc.returncode}):\n{err}")
    if out is not None and seen is None:
        if not out.exists():
            raise RuntimeError(f"{argv[1:4]} exited without writing {out}")
        seen = ended  # written in the last 2 ms before exit
    file_ms = ((seen or ended) - start) * 1000
    return Sample(file_ms=file_ms, exit_ms=(ended - start) * 1000, log=err)


def _engine_argv(setup: Setup, out: Path, flags: tuple[str, ...] = ()) -> list[str]:
    return agent_argv(
        "token", *setup.engine_options(), "--token-file", str(out), python_flags=flags
    )


def _raw_argv(setup: Setup, out: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        RAW_POST,
        setup.idp.token_endpoint,
        CLIENT_ID,
        str(setup.secret_file),
        str(setup.idp.ca_file),
        str(out),
    ]


def _in_process_post_ms(setup: Setup) -> float:
    """One client_credentials POST on a new connection, in this process."""
    secret = setup.secret_file.read_text().strip()
    started = time.perf_counter()
    with requests.Session() as session:
        session.trust_env = False
        response = session.post(
            setup.idp.token_endpoint,
            data={"grant_type": "client_credentials"},
            auth=(CLIENT_ID, secret),
            verify=str(setup.idp.ca_file),
            timeout=10,
        )
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


def _import_report(setup: Setup) -> None:
    """Print where ``python -X importtime`` of the engine command spends time."""
    out = setup.workdir / "token-importtime"
    sample = _timed(_engine_argv(setup, out, ("-X", "importtime")), out)
    print_import_times("the engine", sample.log)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each kind")
    args = parser.parse_args()
    runs = min(max(args.runs, 3), 25)

    print(f"# engine cold start to first token file ({load_average()})")
    with running_idp() as setup:
        engine_out = setup.workdir / "token-engine"
        raw_out = setup.workdir / "token-raw"
        floor = [sys.executable, "-c", "pass"]

        # warm the page cache and the IdP once, untimed
        _timed(_engine_argv(setup, engine_out), engine_out)
        _timed(_raw_argv(setup, raw_out), raw_out)

        # interleaved runs
        samples: dict[str, list[Sample]] = {"engine": [], "raw": [], "floor": []}
        in_process: list[float] = []
        for _ in range(runs):
            samples["engine"].append(
                _timed(_engine_argv(setup, engine_out), engine_out)
            )
            samples["raw"].append(_timed(_raw_argv(setup, raw_out), raw_out))
            samples["floor"].append(_timed(floor, None))
            in_process.append(_in_process_post_ms(setup))
        fetch_ms = [
            float(found.group(1)) * 1000
            for sample in samples["engine"]
            if (found := TOOK_RE.search(sample.log))
        ]

        print()
        print(f"{'median of ' + str(runs):36} {'file ms':>8} {'exit ms':>8}")
        names = {
            "engine": "python -m agent token --token-file",
            "raw": "python -c requests.post + write",
            "floor": "python -c pass",
        }
        for key, label in names.items():
            file_ms = median([s.file_ms for s in samples[key]])
            exit_ms = median([s.exit_ms for s in samples[key]])
            shown = f"{file_ms:8.0f}" if key != "floor" else "       -"
            print(f"{label:36} {shown} {exit_ms:8.0f}")
        print(f"{'raw POST in this process (new conn)':36} {median(in_process):8.0f}")
        print(f"{'engine fetch, from its log (took)':36} {median(fetch_ms):8.0f}")
        print()
        _import_report(setup)

    engine = median([s.file_ms for s in samples["engine"]])
    raw = median([s.file_ms for s in samples["raw"]])
    extra = engine - raw
    print()
    print(
        f"RESULT cold_start_extra_ms={extra:.0f} (engine {engine:.0f} ms, raw"
        f" {raw:.0f} ms, ratio {engine / raw:.2f}x) target<=+{TARGET_MS:.0f}"
        f" {verdict(extra <= TARGET_MS)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
