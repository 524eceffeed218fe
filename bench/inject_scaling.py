"""How ``inject k8s`` and ``inject compose`` scale with input size, in one run.

Each injector runs in-process through the CLI (``agent.cli.main``, output to a
file) on generated inputs of 100 and of 1000 documents (k8s: Deployments with
an opted-in pod template; compose: opted-in services), and next to it the bare
YAML work any such tool pays with the same library (PyYAML with libyaml for
k8s, ruamel.yaml round-trip for compose): loading the input and dumping the
injected documents. Printed per size: the median milliseconds, the time per
item, the 1000/100 ratio (about 10 when linear) and the share of that bare
YAML work in the injector's time; for k8s also what ruamel.yaml's round trip
(which would keep comments) takes on the same 1000 documents.

    python bench/inject_scaling.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# this checkout's code, not whatever copy is installed
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ROLE = "arn:aws:iam::111122223333:role/app"
AUTHORITY = ["--authority", "https://idp.example/t1"]


def k8s_text(count: int) -> str:
    """``count`` Deployments, each opted in, in one multi-document file."""
    documents = []
    for i in range(count):
        documents.append(
            "apiVersion: apps/v1\nkind: Deployment\n"
            f"metadata:\n  name: app{i}\n  namespace: ns{i % 7}\n"
            "spec:\n  replicas: 2\n"
            f"  selector:\n    matchLabels: {{app: app{i}}}\n"
            "  template:\n    metadata:\n"
            f"      labels: {{app: app{i}}}\n"
            "      annotations:\n"
            '        webid-agent.io/inject: "true"\n'
            f"        webid-agent.io/role-arn: {ROLE}{i % 5}\n"
            "    spec:\n      containers:\n        - name: main\n"
            f"          image: registry.example/app:{i}\n"
            "          env:\n            - name: FOO\n              value: bar\n"
            "          ports:\n            - containerPort: 8080\n"
        )
    return "---\n".join(documents)


def compose_text(count: int) -> str:
    """``count`` opted-in services, each depending on the one before."""
    lines = ["services:"]
    for i in range(count):
        lines += [
            f"  svc{i}:",
            f"    image: registry.example/app:{i}",
            "    environment:",
            "      - FOO=bar",
            "    depends_on:",
            f"      - svc{i - 1}" if i else "      - db",
            f"    x-webid: {{role-arn: {ROLE}}}  # a comment",
        ]
    lines += ["  db:", "    image: postgres"]
    return "\n".join(lines) + "\n"


def run_cli(args: list[str]) -> None:
    """One in-process CLI run; fails loudly on a non-zero exit."""
    from agent.cli import main

    assert Path(sys.modules["agent"].__file__ or "").is_relative_to(REPO)
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            main(args)
        except SystemExit as exc:
            if exc.code:
                raise RuntimeError(err.getvalue()) from None


def paired_ms(
    first: Callable[[], object], second: Callable[[], object], rounds: int
) -> tuple[float, float]:
    """Median milliseconds of two functions run alternately (after a warm-up),
    so a change in machine load hits both alike."""
    first()
    second()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for func, times in ((first, samples[0]), (second, samples[1])):
            start = time.perf_counter()
            func()
            times.append(time.perf_counter() - start)
    return statistics.median(samples[0]) * 1000, statistics.median(samples[1]) * 1000


def pyyaml_work(text: str, output: str) -> Callable[[], object]:
    """Load ``text`` and dump the (pre-parsed) ``output`` documents."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    injected = list(yaml.load_all(output, Loader=loader))

    def work() -> object:
        list(yaml.load_all(text, Loader=loader))
        return yaml.dump_all(injected, Dumper=dumper, sort_keys=False)

    return work


def ruamel_work(text: str, output: str) -> Callable[[], object]:
    """Load ``text`` and dump the (pre-parsed) ``output`` document."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    injected = yaml.load(output)

    def work() -> object:
        yaml.load(text)
        yaml.dump(injected, io.StringIO())
        return None

    return work


def ruamel_all_work(text: str, output: str) -> Callable[[], object]:
    """``ruamel_work`` for a multi-document file."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    injected = list(yaml.load_all(output))

    def work() -> object:
        list(yaml.load_all(text))
        yaml.dump_all(injected, io.StringIO())
        return None

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        secret = folder / "client-secret"
        secret.write_text("not-a-real-secret\n")
        out = str(folder / "out.yaml")
        cases = [
            (
                "inject k8s",
                k8s_text,
                ["inject", "k8s"],
                [*AUTHORITY, "-o", out],
                pyyaml_work,
            ),
            (
                "inject compose",
                compose_text,
                ["inject", "compose"],
                [*AUTHORITY, "--client-id", "a", "--client-secret-file", str(secret)],
                ruamel_work,
            ),
        ]
        header = f"{'command':<15} {'items':>6} {'ms':>9} {'ms/item':>8} {'yaml %':>7}"
        print(header)
        for label, make, command, options, bare in cases:
            times = {}
            for count in (100, 1000):
                text = make(count)
                source = folder / f"in-{count}.yml"
                source.write_text(text)
                args = ["--log-level", "warning", *command, str(source), *options]
                if "compose" in command:
                    args += ["-o", out]
                run_cli(args)
                ms, yaml_ms = paired_ms(
                    lambda args=args: run_cli(args),
                    bare(text, Path(out).read_text()),
                    rounds,
                )
                times[count] = ms
                print(
                    f"{label:<15} {count:>6} {ms:>9.0f} {ms / count:>8.2f}"
                    f" {100 * yaml_ms / ms:>6.0f}%"
                )
            print(f"{label:<15} 1000/100 time ratio: {times[1000] / times[100]:.1f}")
            if label == "inject k8s":
                # what keeping comments would cost: ruamel's round trip alone
                ruamel_ms, _ = paired_ms(
                    ruamel_all_work(text, Path(out).read_text()), lambda: None, 1
                )
                print(
                    f"{label:<15} ruamel round trip of the same 1000 documents:"
                    f" {ruamel_ms:.0f} ms ({ruamel_ms / times[1000]:.1f}x the injector)"
                )


if __name__ == "__main__":
    main()
