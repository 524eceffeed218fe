"""Benchmark: ``webid-agent aws credential-process`` warm and cold, vs a bare Python.

Starts the local IdP and STS stand-in (``devenv``), then times, interleaved in
one run so machine noise hits all sides alike:

* ``python -c pass`` (the floor: interpreter start-up);
* a warm call (fresh credentials in the cache: no IdP, no STS);
* a cold call (empty cache: IdP token + STS AssumeRoleWithWebIdentity).

Prints medians and the warm call's cost over the bare start (target: at most
+150 ms). Loopback only; bounded by ``--rounds``.

    python bench/credential_process.py --rounds 15
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devenv.idp import start_idp  # noqa: E402
from devenv.sts import create_role, idp_token_validator, start_sts  # noqa: E402

TARGET_MS = 150.0
# the console script does exactly this; -c keeps the run on this checkout
ENTRY = "from agent.cli import main; main()"


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Seconds one run of ``argv`` takes; raises if it fails."""
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--cold-rounds", type=int, default=5)
    args = parser.parse_args()
    rounds = max(3, min(args.rounds, 200))
    cold_rounds = max(1, min(args.cold_rounds, 50))

    work = Path(tempfile.mkdtemp(prefix="webid-bench-"))
    idp = start_idp(work / "idp")
    sts = start_sts(token_validator=idp_token_validator(idp))
    try:
        # one profile's worth of settings
        client = idp.client("webid-secret")
        secret_file = work / "client.secret"
        secret_file.write_text(client.secret or "")
        secret_file.chmod(0o600)
        role_arn = create_role(sts, "bench-role", issuer=idp.issuer)
        config = work / "webid.yaml"
        config.write_text(
            f"authority: {idp.issuer}\n"
            f"client-id: {client.client_id}\n"
            f"client-secret-file: {secret_file}\n"
            f"ca-bundle: {idp.ca_file}\n"
            f"audience: {idp.audience}\n"
            f"role-arn: {role_arn}\n"
            f"sts-endpoint-url: {sts.endpoint_url}\n"
        )
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("WEBID_", "AWS_"))
        }
        env["PYTHONPATH"] = str(ROOT)
        command = [
            sys.executable,
            "-c",
            ENTRY,
            "--config",
            str(config),
            "aws",
            "credential-process",
        ]
        bare = [sys.executable, "-c", "pass"]

        # cold calls: an empty cache folder each time
        cold: list[float] = []
        for n in range(cold_rounds):
            env["XDG_CACHE_HOME"] = str(work / f"cold-{n}")
            cold.append(timed(command, env))

        # warm calls and bare starts, interleaved
        env["XDG_CACHE_HOME"] = str(work / "warm")
        timed(command, env)  # fill the cache
        warm: list[float] = []
        floor: list[float] = []
        for _ in range(rounds):
            floor.append(timed(bare, env))
            warm.append(timed(command, env))
    finally:
        sts.stop()
        idp.stop()
        shutil.rmtree(work, ignore_errors=True)

    # report
    def ms(values: list[float]) -> str:
        return (
            f"median {statistics.median(values) * 1000:7.1f} ms"
            f"  min {min(values) * 1000:7.1f} ms  (n={len(values)})"
        )

    extra = (statistics.median(warm) - statistics.median(floor)) * 1000
    print(f"python -c pass          {ms(floor)}")
    print(f"credential-process warm {ms(warm)}")
    print(f"credential-process cold {ms(cold)}")
    print(
        f"warm - bare: {extra:+.1f} ms (target <= +{TARGET_MS:.0f} ms:"
        f" {'met' if extra <= TARGET_MS else 'MISSED'});"
        f" warm/bare {statistics.median(warm) / statistics.median(floor):.2f}x;"
        f" cold/warm {statistics.median(cold) / statistics.median(warm):.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
