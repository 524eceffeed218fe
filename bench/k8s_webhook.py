"""Benchmark of the Kubernetes admission webhook, all numbers from one run.

1. Handling time per AdmissionReview (``Reviewer.handle``: parse, plan, patch,
   encode) next to ``json.loads`` + ``json.dumps`` of the same review, in the
   same process, interleaved: the ratio is the cost of the webhook's logic
   over the bare minimum any JSON webhook pays (target: <= 3x).
2. Over TLS on loopback, against the real server, from a separate load
   process with keep-alive connections: the most reviews per second
   (target: >= 2,000/s), then p50/p99 latency at a paced 500 reviews/s
   (target: p99 <= 10 ms). Latency is measured from each request's scheduled
   send time, so a stall is not hidden by the pacing.

The server logs each decision at INFO to /dev/null, so formatting the log
line is part of the cost. Bounded: a few seconds per phase, loopback only.

    python bench/k8s_webhook.py [--seconds 3] [--rate 500] [--connections 4]
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import logging
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
REVIEW: dict[str, Any] = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {
        "uid": "6d1f4c1e-9a7b-4b8e-8f3e-2a1c0e5b7d90",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "shop",
        "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset"},
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": "web-7f9c-",
                "namespace": "shop",
                "labels": {"app": "web", "pod-template-hash": "7f9c"},
                "annotations": {
                    "webid-agent.io/inject": "true",
                    "webid-agent.io/role-arn": "arn:aws:iam::111122223333:role/web",
                },
            },
            "spec": {
                "serviceAccountName": "web",
                "containers": [
                    {
                        "name": "web",
                        "image": "registry.example/web:1.2.3",
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "env": [{"name": "LOG_LEVEL", "value": "info"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                        "volumeMounts": [
                            {
                                "name": "kube-api-access",
                                "mountPath": SA_DIR,
                                "readOnly": True,
                            }
                        ],
                    }
                ],
                "volumes": [
                    {
                        "name": "kube-api-access",
                        "projected": {
                            "sources": [
                                {"serviceAccountToken": {"path": "token"}},
                                {"configMap": {"name": "kube-root-ca.crt"}},
                            ]
                        },
                    }
                ],
            },
        },
    },
}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- load process -------------------------------------------------------------


def _load(args: argparse.Namespace) -> None:
    """Run in the separate load process: print one JSON result line."""
    context = ssl.create_default_context(cafile=args.ca)
    body = Path(args.body).read_bytes()
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.perf_counter() + args.seconds
    per_connection = args.rate / args.connections if args.rate else 0.0

    def worker(index: int) -> None:
        nonlocal errors
        conn = http.client.HTTPSConnection(
            "127.0.0.1", args.port, context=context, timeout=10
        )
        mine: list[float] = []
        failed = 0
        start = time.perf_counter() + index / max(args.rate, 1)
        sent = 0
        while True:
            scheduled = start + sent / per_connection if per_connection else None
            now = time.perf_counter()
            if now >= stop_at or sent >= args.max_requests:
                break
            if scheduled is not None and scheduled > now:
                time.sleep(scheduled - now)
            t0 = scheduled if scheduled is not None else time.perf_counter()
            conn.request("POST", "/mutate", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - t0)
            if response.status != 200:
                failed += 1
            sent += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += failed

    began = time.perf_counter()
    threads = [
        threading.Thread(target=worker, args=(i,)) for i in range(args.connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "errors": errors,
                "seconds": elapsed,
                "p50_ms": statistics.median(latencies) * 1000,
                "p99_ms": _percentile(latencies, 0.99) * 1000,
            }
        )
    )


# -- the run ----------------------------------------------------------------------


def _handling_ratio(rounds: int) -> tuple[float, float]:
    from injectors.kubernetes.options import InjectorConfig
    from injectors.kubernetes.review import Reviewer

    reviewer = Reviewer(
        InjectorConfig(authority="https://idp.example/t1", audience="sts.amazonaws.com")
    )
    body = json.dumps(REVIEW).encode()
    status, answer, _ = reviewer.handle(body)
    assert status == 200 and b'"patch"' in answer

    handle_best = baseline_best = float("inf")
    batch = 200
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(batch):
            reviewer.handle(body)
        t1 = time.perf_counter()
        for _ in range(batch):
            json.dumps(json.loads(body)).encode()
        t2 = time.perf_counter()
        handle_best = min(handle_best, (t1 - t0) / batch)
        baseline_best = min(baseline_best, (t2 - t1) / batch)
    return handle_best, baseline_best


def _run_load(
    script: Path, port: int, ca: str, body: str, **options: float
) -> dict[str, Any]:
    command = [
        sys.executable,
        str(script),
        "--load",
        "--port",
        str(port),
        "--ca",
        ca,
        "--body",
        body,
    ]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"load process failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--max-requests", type=int, default=50_000)
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        _load(args)
        return

    import trustme

    from injectors.kubernetes.options import InjectorConfig
    from injectors.kubernetes.webhook import ServerSettings, WebhookServer

    # 1. handling time next to json.loads + json.dumps
    handle, baseline = _handling_ratio(rounds=30)
    print(f"handling per review      {handle * 1e6:8.1f} us")
    print(f"json.loads + json.dumps  {baseline * 1e6:8.1f} us")
    print(f"ratio                    {handle / baseline:8.2f} x   (target <= 3)")

    # 2. the real server over TLS, the load from another process
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the run
    handler = logging.StreamHandler(devnull)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as folder:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert_file, key_file = Path(folder, "tls.crt"), Path(folder, "tls.key")
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        ca_file = Path(folder, "ca.pem")
        ca.cert_pem.write_to_path(str(ca_file))
        body_file = Path(folder, "review.json")
        body_file.write_text(json.dumps(copy.deepcopy(REVIEW)))
        server = WebhookServer(
            config=InjectorConfig(
                authority="https://idp.example/t1", audience="sts.amazonaws.com"
            ),
            settings=ServerSettings(
                cert_file=cert_file,
                key_file=key_file,
                listen="127.0.0.1:0",
                metrics_listen="127.0.0.1:0",
            ),
        )
        server.start()
        try:
            script = Path(__file__).resolve()
            common = {"port": server.port, "ca": str(ca_file), "body": str(body_file)}
            peak = _run_load(
                script,
                **common,  # type: ignore[arg-type]
                seconds=args.seconds,
                connections=args.connections,
                rate=0,
                max_requests=args.max_requests,
            )
            paced = _run_load(
                script,
                **common,  # type: ignore[arg-type]
                seconds=args.seconds,
                connections=2,
                rate=args.rate,
                max_requests=args.max_requests,
            )
        finally:
            server.stop()
            devnull.close()

    rate = peak["requests"] / peak["seconds"]
    print(
        f"peak over TLS            {rate:8.0f} reviews/s"
        f"  ({args.connections} keep-alive connections, {peak['requests']} reviews,"
        f" {peak['errors']} errors; target >= 2000)"
    )
    print(
        f"paced {args.rate:.0f}/s              p50 {paced['p50_ms']:.2f} ms"
        f"  p99 {paced['p99_ms']:.2f} ms  ({paced['requests']} reviews,"
        f" {paced['errors']} errors; target p99 <= 10 ms)"
    )


if __name__ == "__main__":
    main()
