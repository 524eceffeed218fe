"""Benchmark of ``webid-agent docker run`` next to plain ``docker run``.

Both run the same image and command (``webid-app:test true``) with
``--rm --network host``, interleaved, ``--runs`` times each (default 5),
wall time from spawn to exit. The wrapper is ``python -m agent --log-level
debug docker ... run ...`` from this checkout against the real local IdP;
the verdict is the difference of the medians (target: <= +1.0 s).

Where the time goes is read from outside, without touching the wrapper:
Docker engine events (volume and container create/start/die/destroy, with
nanosecond times), the sidecar's own JSON log line for the first token
(followed live, since the sidecar is removed at the end) and the wrapper's
debug line just before it runs ``docker run``. Each phase is the median over
the runs of the time between two such marks.

The agent image is built from this checkout by ``devenv.images`` under its own
tag (default ``webid-agent:bench``), so other checkouts rebuilding
``webid-agent:dev`` do not change what is measured. The sidecar serves health
on 127.0.0.1:8081 in the host network, so nothing else may hold that port.

Bounded: about a minute, loopback only.

    PYTHONPATH=. python bench/docker_run.py [--runs 5] [--image TAG]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

import docker
from _engine_bench import (
    Setup,
    agent_argv,
    child_env,
    load_average,
    median,
    print_import_times,
    running_idp,
    verdict,
)

TARGET_S = 1.0
ROLE_ARN = "arn:aws:iam::123456789012:role/webid-bench"
RUN_LABEL = "io.webid-bench.run"
SESSION_LABEL = "io.webid-agent.session"
APP_ARGS = ("--rm", "--network", "host")
APP_CMD = ("true",)


class EventLog:
    """Docker events and sidecar first-token times, collected in threads.

    ``marks[run_id][what]`` is a Unix time in seconds, e.g.
    ``marks["wrapped-0"]["app start"]``.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.marks: dict[str, dict[str, float]] = defaultdict(dict)
        self._session_run: dict[str, str] = {}
        self._session_marks: dict[str, dict[str, float]] = defaultdict(dict)
        self._lock = threading.Lock()
        self._stream = client.events(
            decode=True,
            since=int(time.time()) - 1,
            filters={"type": ["container", "volume"]},
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()

    def for_run(self, run_id: str) -> dict[str, float]:
        """All marks of one run, the wrapped session's included."""
        with self._lock:
            marks = dict(self.marks[run_id])
            for session, owner in self._session_run.items():
                if owner == run_id:
                    marks.update(self._session_marks[session])
        return marks

    def _read(self) -> None:
        with contextlib.suppress(Exception):
            for event in self._stream:
                self._note(event)

    def _note(self, event: dict[str, Any]) -> None:
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        when = int(event.get("timeNano", 0)) / 1e9
        action = str(event.get("Action", "")).split(":")[0]
        name = attrs.get("name", "") or (event.get("Actor") or {}).get("ID", "")
        with self._lock:
            if event.get("Type") == "container" and RUN_LABEL in attrs:
                # the app's container, plain or wrapped
                run_id = attrs[RUN_LABEL]
                self.marks[run_id].setdefault(f"app {action}", when)
                if SESSION_LABEL in attrs:
                    self._session_run[attrs[SESSION_LABEL]] = run_id
            elif name.startswith("webid-sidecar-"):
                session = name.removeprefix("webid-sidecar-")
                self._session_marks[session].setdefault(f"sidecar {action}", when)
                if action == "start":
                    threading.Thread(
                        target=self._follow, args=(name, session), daemon=True
                    ).start()
            elif name.startswith(("webid-token-", "webid-client-")):
                session = name.rsplit("-", 1)[1]
                marks = self._session_marks[session]
                if action == "create":
                    marks.setdefault("volume create", when)
                elif action == "destroy":
                    marks["volume destroy"] = max(marks.get("volume destroy", 0), when)

    def _follow(self, name: str, session: str) -> None:
        """Read the sidecar's log live; note when it wrote the first token."""
        with contextlib.suppress(Exception):
            container = self.client.containers.get(name)
            for raw in container.logs(stream=True, follow=True, stdout=False):
                for line in raw.decode(errors="replace").splitlines():
                    with contextlib.suppress(ValueError):
                        record = json.loads(line)
                        if record.get("event") == "token_written":
                            stamp = datetime.fromisoformat(record["time"]).timestamp()
                            with self._lock:
                                self._session_marks[session]["token written"] = stamp
                            return


def _run(argv: list[str], timeout: float = 120) -> tuple[float, float, str]:
    """Run ``argv``; return (start, end) Unix times and its stderr."""
    start = time.time()
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        env=child_env(),
        check=False,
    )
    end = time.time()
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}... failed:\n{result.stderr}")
    return start, end, result.stderr


def _wrapper_argv(setup: Setup, image: str, app_image: str, run_id: str) -> list[str]:
    return agent_argv(
        "--log-level",
        "debug",
        "docker",
        "--role-arn",
        ROLE_ARN,
        *setup.engine_options(),
        "--image",
        image,
        "--first-token-timeout",
        "30",
        "run",
        *APP_ARGS,
        "--label",
        f"{RUN_LABEL}={run_id}",
        app_image,
        *APP_CMD,
    )


def _plain_argv(app_image: str, run_id: str) -> list[str]:
    return [
        "docker",
        "run",
        *APP_ARGS,
        "--label",
        f"{RUN_LABEL}={run_id}",
        app_image,
        *APP_CMD,
    ]


def _docker_run_logged(stderr: str) -> float | None:
    """Unix time of the wrapper's 'running docker run' debug line (ms)."""
    for line in stderr.splitlines():
        if "running docker run" in line:
            stamp = " ".join(line.split()[:2])
            with contextlib.suppress(ValueError):
                return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


# (label, from mark, to mark) for the phase table
WRAPPED_PHASES = (
    ("CLI start-up, docker ping, image check", "spawn", "volume create"),
    ("volumes + sidecar create", "volume create", "sidecar create"),
    ("credentials copy + sidecar start", "sidecar create", "sidecar start"),
    ("agent start-up + first token", "sidecar start", "token written"),
    ("wrapper notices the token", "token written", "docker run logged"),
    ("docker CLI until app created", "docker run logged", "app create"),
    ("app create -> start", "app create", "app start"),
    ("app runs", "app start", "app die"),
    ("wrapper finds and signals the sidecar", "app die", "sidecar kill"),
    ("agent exits on SIGTERM", "sidecar kill", "sidecar die"),
    ("sidecar + volumes removed", "sidecar die", "volume destroy"),
    ("wrapper exits", "volume destroy", "exit"),
)
PLAIN_PHASES = (
    ("docker CLI until app created", "spawn", "app create"),
    ("app create -> start", "app create", "app start"),
    ("app runs", "app start", "app die"),
    ("app die -> CLI exit", "app die", "exit"),
)


def _phase_table(
    title: str, phases: tuple[tuple[str, str, str], ...], runs: list[dict[str, float]]
) -> None:
    print(title)
    for label, start, end in phases:
        values = [m[end] - m[start] for m in runs if start in m and end in m]
        shown = f"{median(values) * 1000:7.0f} ms" if values else "    n/a"
        print(f"  {label:40} {shown}  ({start} -> {end}, n={len(values)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each kind")
    parser.add_argument("--image", default="webid-agent:bench", help="agent image")
    args = parser.parse_args()
    runs = min(max(args.runs, 3), 15)

    from devenv.images import ensure_agent_image, ensure_app_image

    image = ensure_agent_image(tag=args.image)
    app_image = ensure_app_image()
    client = docker.from_env()
    print(f"# webid-agent docker run vs docker run ({load_average()})")
    with running_idp() as setup:
        # warm up both paths once, untimed
        _run(_wrapper_argv(setup, image, app_image, "warm-wrapped"))
        _run(_plain_argv(app_image, "warm-plain"))

        # one untimed run under -X importtime for the start-up breakdown
        traced = _wrapper_argv(setup, image, app_image, "importtime")
        traced[1:1] = ["-X", "importtime"]
        importtime_log = _run(traced)[2]

        events = EventLog(client)
        totals: dict[str, list[float]] = {"plain": [], "wrapped": []}
        marks: dict[str, list[dict[str, float]]] = {"plain": [], "wrapped": []}
        try:
            for index in range(runs):
                for kind in ("wrapped", "plain"):
                    run_id = f"{kind}-{index}"
                    argv = (
                        _wrapper_argv(setup, image, app_image, run_id)
                        if kind == "wrapped"
                        else _plain_argv(app_image, run_id)
                    )
                    start, end, stderr = _run(argv)
                    totals[kind].append(end - start)
                    logged = _docker_run_logged(stderr)
                    outside = {"spawn": start, "exit": end}
                    if logged is not None:
                        outside["docker run logged"] = logged
                    time.sleep(0.3)  # let the last events arrive
                    marks[kind].append({**events.for_run(run_id), **outside})
        finally:
            events.close()
            client.close()

    wrapped, plain = median(totals["wrapped"]), median(totals["plain"])
    print()
    print(f"{'median of ' + str(runs):44} {'wall s':>7}   runs")
    for kind, label in (("plain", "docker run"), ("wrapped", "webid-agent docker run")):
        each = " ".join(f"{v:.2f}" for v in totals[kind])
        print(f"{label:44} {median(totals[kind]):7.2f}   {each}")
    print()
    _phase_table(
        "webid-agent docker run, phases (median):", WRAPPED_PHASES, marks["wrapped"]
    )
    _phase_table("docker run, phases (median):", PLAIN_PHASES, marks["plain"])
    print()
    print_import_times("the wrapper", importtime_log)
    print()
    extra = wrapped - plain
    print(
        f"RESULT docker_run_extra_s={extra:.2f} (wrapped {wrapped:.2f} s, plain"
        f" {plain:.2f} s, ratio {wrapped / plain:.1f}x) target<=+{TARGET_S:.1f}"
        f" {verdict(extra <= TARGET_S)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
