"""Benchmark: injecting a Nomad job vs python-hcl2 merely loading it.

Measured side by side in one run (same process, same inputs):

1. a typical job (the two-group case from tests/nomad/data/cases): median
   time of ``inject_hcl`` vs ``hcl2.loads`` of the same text (target <= 1.5x);
2. a batch of 500 generated jobs (1-4 groups, 1-3 tasks, with and without
   env blocks and meta): total time of both;
3. scaling: one job of 100 groups vs one of 800 (best of 2 each), for
   ``inject_hcl`` and ``hcl2.loads``; a time ratio near 8 means linear.

Each is shown twice: with the engine's ``render`` as it is (it builds a Jinja
environment, and so compiles each template, on every call) and with that
environment cached, which is the engine change this benchmark argues for.

Run: python bench/nomad_inject.py [--rounds N] [--skip-scaling]
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import hcl2  # noqa: E402

from injectors.nomad.hclinject import inject_hcl  # noqa: E402
from injectors.nomad.options import IdpConfig, InjectConfig  # noqa: E402
from injectors.nomad.snippets import Snippets  # noqa: E402

TYPICAL = REPO / "tests" / "nomad" / "data" / "cases"
TYPICAL_CASE = TYPICAL / "n01-two-groups-existing-env.nomad.hcl"
BATCH = 500

CONFIG = InjectConfig(
    idp=IdpConfig(
        authority="https://idp.example/tenant1",
        audience="sts.amazonaws.com",
        client_id="webid-app",
    ),
    templates_dir=REPO / "templates",
)


def generated_job(rng: random.Random, index: int) -> str:
    """One plausible job: a few groups and tasks, some with env and meta."""
    lines = [f'job "gen-{index}" {{', '  datacenters = ["dc1"]', ""]
    for g in range(rng.randint(1, 4)):
        lines += [f'  group "g{g}" {{', f"    count = {rng.randint(1, 5)}", ""]
        if rng.random() < 0.7:
            lines += [
                "    meta {",
                f'      webid_role_arn = "arn:aws:iam::111122223333:role/r{g}"',
                "    }",
                "",
            ]
        for t in range(rng.randint(1, 3)):
            lines += [
                f'    task "t{t}" {{',
                '      driver = "docker"',
                "",
                "      config {",
                f'        image = "registry.example/app{t}:1.{index}"',
                '        args  = ["--port", "${NOMAD_PORT_http}"]',
                "      }",
            ]
            if rng.random() < 0.5:
                lines += ["", "      env {", '        LOG_LEVEL = "info"', "      }"]
            lines += ["", "      resources {", "        cpu    = 100", "      }"]
            lines += ["    }", ""]
        lines += ["  }", ""]
    lines += ["}", ""]
    return "\n".join(lines)


def inject(text: str) -> str:
    """One CLI-like run: fresh snippet memo, parse, edit, re-parse check."""
    return inject_hcl(
        text,
        path="bench.hcl",
        config=CONFIG,
        snippets=Snippets(templates_dir=CONFIG.templates_dir),
    ).text


def median_ms(func: Callable[[str], object], text: str, rounds: int) -> float:
    """Median wall time of ``func(text)`` in milliseconds."""
    func(text)  # warm caches shared by both sides (lark parser, imports)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        func(text)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def total_s(func: Callable[[str], object], texts: list[str]) -> float:
    """Total wall time of ``func`` over all ``texts`` in seconds."""
    start = time.perf_counter()
    for text in texts:
        func(text)
    return time.perf_counter() - start


def measure(label: str, rounds: int, batch: list[str], typical: str) -> None:
    """Print the typical-job ratio and the batch totals."""
    load_ms = median_ms(hcl2.loads, typical, rounds)
    inject_ms = median_ms(inject, typical, rounds)
    print(f"[{label}]")
    print(
        f"  typical job: hcl2.loads {load_ms:.2f} ms, inject {inject_ms:.2f} ms, "
        f"ratio {inject_ms / load_ms:.2f}x (target <= 1.5x)"
    )
    load_s, inject_s = total_s(hcl2.loads, batch), total_s(inject, batch)
    print(
        f"  batch of {len(batch)}: hcl2.loads {load_s:.2f} s, inject {inject_s:.2f} s "
        f"({len(batch) / inject_s:.0f} jobs/s), ratio {inject_s / load_s:.2f}x"
    )


def many_groups_job(groups: int) -> str:
    """One job with ``groups`` opted-in groups of one task each."""
    lines = ['job "big" {', '  datacenters = ["dc1"]', ""]
    for g in range(groups):
        lines += [
            f'  group "g{g}" {{',
            "    meta {",
            f'      webid_role_arn = "arn:aws:iam::111122223333:role/r{g}"',
            "    }",
            "",
            '    task "app" {',
            '      driver = "docker"',
            '      config { image = "registry.example/app:1.0" }',
            '      env { LOG_LEVEL = "info" }',
            "    }",
            "  }",
            "",
        ]
    return "\n".join(lines + ["}", ""])


def best_s(func: Callable[[str], object], text: str, rounds: int = 2) -> float:
    """Best wall time of ``func(text)`` over ``rounds`` runs, in seconds."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        func(text)
        samples.append(time.perf_counter() - start)
    return min(samples)


def scaling(small: int = 100, big: int = 800) -> None:
    """Print how inject and hcl2.loads grow from ``small`` to ``big`` groups."""
    texts = {n: many_groups_job(n) for n in (small, big)}
    inject(texts[small])  # warm the parser and templates
    print(f"[scaling: {small} vs {big} groups, {big // small}x the input]")
    for label, func in (("inject_hcl", inject), ("hcl2.loads", hcl2.loads)):
        a, b = best_s(func, texts[small]), best_s(func, texts[big])
        print(
            f"  {label}: {small} groups {a:.2f} s, {big} groups {b:.2f} s, "
            f"ratio {b / a:.1f} ({big // small} = linear)"
        )


def main() -> None:
    """Run both measurements, engine as is and with a cached environment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--skip-scaling", action="store_true")
    args = parser.parse_args()
    rng = random.Random(20240601)
    batch = [generated_job(rng, i) for i in range(BATCH)]
    typical = TYPICAL_CASE.read_text()

    measure("engine render as is", args.rounds, batch, typical)

    # the proposed engine change: build each Jinja environment once
    import agent.templating as templating

    original = templating._environment
    templating._environment = functools.lru_cache(maxsize=16)(original)  # type: ignore[assignment]
    try:
        measure("engine render with a cached environment", args.rounds, batch, typical)
    finally:
        templating._environment = original
    if not args.skip_scaling:
        scaling()


if __name__ == "__main__":
    main()
