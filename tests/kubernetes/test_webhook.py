"""The webhook over real HTTPS (trustme CA): answers, bounds, rotation, metrics."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent import ConfigError
from injectors.kubernetes.webhook import WebhookServer

Start = Callable[..., WebhookServer]
Post = Callable[..., tuple[int, bytes]]


def metrics_text(server: WebhookServer) -> str:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        return str(response.read().decode())


def test_review_over_https(
    start_webhook: Start,
    https_post: Post,
    tls_files: Any,
    load_case: Callable[[str], dict[str, Any]],
) -> None:
    server = start_webhook()
    review = load_case("k04-review-v1beta1.json")
    status, body = https_post(
        server, json.dumps(review).encode(), tls_files.client_context()
    )
    assert status == 200
    answer = json.loads(body)
    assert answer["apiVersion"] == "admission.k8s.io/v1beta1"
    assert answer["response"]["uid"] == review["request"]["uid"]
    ops = json.loads(base64.b64decode(answer["response"]["patch"]))
    assert any(op["path"] == "/spec/initContainers" for op in ops)
    text = metrics_text(server)
    assert 'webid_webhook_decisions_total{decision="injected"} 1.0' in text
    assert 'webid_webhook_requests_total{code="200"} 1.0' in text
    assert "webid_webhook_review_duration_seconds_count 1.0" in text


def test_keep_alive_connection_serves_many_reviews(
    start_webhook: Start, tls_files: Any, load_case: Callable[[str], dict[str, Any]]
) -> None:
    import http.client

    server = start_webhook()
    body = json.dumps(load_case("k04-review-v1beta1.json")).encode()
    connection = http.client.HTTPSConnection(
        "127.0.0.1", server.port, context=tls_files.client_context(), timeout=5
    )
    try:
        for _ in range(5):
            connection.request("POST", "/mutate", body=body)
            response = connection.getresponse()
            assert response.status == 200
            response.read()
    finally:
        connection.close()
    assert 'webid_webhook_requests_total{code="200"} 5.0' in metrics_text(server)


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/other", b"{}", {}, 404),
        ("/mutate", b"x" * 5000, {}, 413),
        ("/mutate", b"{not json", {}, 400),
    ],
    ids=["wrong-path", "too-large", "not-json"],
)
def test_bad_requests_get_4xx(
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    start_webhook: Start,
    https_post: Post,
    tls_files: Any,
) -> None:
    server = start_webhook(max_body=4096)
    got, answer = https_post(
        server, body, tls_files.client_context(), path=path, headers=headers
    )
    assert got == status
    assert json.loads(answer)["error"]


def test_slow_body_is_cut_off_and_server_lives_on(
    start_webhook: Start,
    https_post: Post,
    tls_files: Any,
    load_case: Callable[[str], dict[str, Any]],
) -> None:
    server = start_webhook(timeout=0.5)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    tls = tls_files.client_context().wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        tls.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        reply = tls.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408")
    finally:
        tls.close()
    # a well-behaved client is still served
    body = json.dumps(load_case("k04-review-v1beta1.json")).encode()
    assert https_post(server, body, tls_files.client_context())[0] == 200


def test_connection_cap(start_webhook: Start, tls_files: Any) -> None:
    server = start_webhook(max_connections=1, timeout=2.0)
    context = tls_files.client_context()
    first = context.wrap_socket(
        socket.create_connection(("127.0.0.1", server.port), timeout=5),
        server_hostname="127.0.0.1",
    )
    try:
        with pytest.raises((ssl.SSLError, OSError)):
            second = context.wrap_socket(
                socket.create_connection(("127.0.0.1", server.port), timeout=5),
                server_hostname="127.0.0.1",
            )
            second.sendall(b"GET / HTTP/1.1\r\n\r\n")
            if not second.recv(10):
                raise OSError("closed")
    finally:
        first.close()
    assert 'webid_webhook_rejected_connections_total{reason="over-cap"} 1.0' in (
        metrics_text(server)
    )


def test_certificate_rotation_is_picked_up_by_new_connections(
    start_webhook: Start,
    https_post: Post,
    tls_files: Any,
    load_case: Callable[[str], dict[str, Any]],
) -> None:
    server = start_webhook()
    body = json.dumps(load_case("k04-review-v1beta1.json")).encode()
    old = tls_files.client_context()
    assert https_post(server, body, old)[0] == 200

    # rotate to a certificate from a new CA, on disk only
    new_ca = tls_files.issue()
    new = tls_files.client_context(new_ca)
    assert https_post(server, body, new)[0] == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        https_post(server, body, old)
    assert (
        'webid_webhook_reloads_total{file="certificate",result="success"} 1.0'
        in metrics_text(server)
    )


def test_broken_certificate_on_disk_keeps_the_last_good(
    start_webhook: Start,
    https_post: Post,
    tls_files: Any,
    load_case: Callable[[str], dict[str, Any]],
) -> None:
    server = start_webhook()
    tls_files.key_file.write_text("not a key")
    body = json.dumps(load_case("k04-review-v1beta1.json")).encode()
    assert https_post(server, body, tls_files.client_context())[0] == 200
    assert 'file="certificate",result="error"' in metrics_text(server)


def test_minimum_tls_version(
    start_webhook: Start, https_post: Post, tls_files: Any
) -> None:
    server = start_webhook(min_tls="1.3")
    context = tls_files.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        https_post(server, b"{}", context)


def test_health_and_readiness(start_webhook: Start) -> None:
    server = start_webhook()
    for path, expected in (("/healthz", b"ok\n"), ("/readyz", b"ready\n")):
        url = f"http://127.0.0.1:{server.metrics_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            assert response.status == 200
            assert response.read() == expected


def test_missing_certificate_fails_at_start(
    start_webhook: Start, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        start_webhook(cert_file=tmp_path / "missing.crt")
    assert "missing.crt" in caught.value.format()


def test_mapping_file_reload_over_https(
    start_webhook: Start,
    https_post: Post,
    tls_files: Any,
    review_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("namespaces: {}\n")
    server = start_webhook(mapping_file=mapping)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "team"},
        "spec": {"containers": [{"name": "app", "image": "x"}]},
    }
    body = json.dumps(review_for(pod)).encode()
    context = tls_files.client_context()
    assert "patch" not in json.loads(https_post(server, body, context)[1])["response"]
    mapping.write_text(
        "namespaces:\n  team:\n    inject: true\n"
        "    role-arn: arn:aws:iam::111122223333:role/team\n"
    )
    response = json.loads(https_post(server, body, context)[1])["response"]
    assert response["patchType"] == "JSONPatch"


def test_structured_log_names_namespace_pod_and_decision(
    start_webhook: Start,
    https_post: Post,
    tls_files: Any,
    load_case: Callable[[str], dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = start_webhook()
    body = json.dumps(load_case("k04-review-v1beta1.json")).encode()
    with caplog.at_level("INFO", logger="injectors.kubernetes.webhook"):
        https_post(server, body, tls_files.client_context())
    records = [r for r in caplog.records if getattr(r, "decision", None)]
    assert records, caplog.text
    record = records[0]
    assert (record.namespace, record.pod, record.decision) == (  # type: ignore[attr-defined]
        "legacy",
        "report-",
        "injected",
    )
    assert "namespace=legacy pod=report- decision=injected" in record.getMessage()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_k8s_command_end_to_end(
    tls_files: Any, load_case: Callable[[str], dict[str, Any]]
) -> None:
    import http.client
    import signal
    import subprocess
    import sys
    import time

    port, metrics = _free_port(), _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "--log-format",
            "json",
            "serve-k8s",
            "--listen",
            f"127.0.0.1:{port}",
            "--metrics-listen",
            f"127.0.0.1:{metrics}",
            "--tls-cert-file",
            str(tls_files.cert_file),
            "--tls-key-file",
            str(tls_files.key_file),
            "--authority",
            "https://idp.example/t1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # ready within a few seconds
        deadline = time.monotonic() + 20
        while True:
            try:
                url = f"http://127.0.0.1:{metrics}/readyz"
                with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "serve-k8s never became ready"
                time.sleep(0.1)

        # one review over HTTPS
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port, context=tls_files.client_context(), timeout=5
        )
        body = json.dumps(load_case("k04-review-v1beta1.json"))
        connection.request("POST", "/mutate", body=body)
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["response"]["allowed"] is True
        connection.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    decisions = [line for line in lines if line.get("decision")]
    assert decisions and decisions[0]["namespace"] == "legacy"
    assert decisions[0]["pod"] == "report-"
    assert decisions[0]["decision"] == "injected"


def _serve(*args: str) -> Any:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "agent", "serve-k8s", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("drop", "option"),
    [("cert", "--tls-cert-file"), ("key", "--tls-key-file")],
)
def test_serve_k8s_without_a_tls_file_is_a_usage_error(
    drop: str, option: str, tls_files: Any
) -> None:
    files = {"cert": tls_files.cert_file, "key": tls_files.key_file}
    args = ["--authority", "https://idp.example/t1", "--listen", "127.0.0.1:0"]
    for name, path in files.items():
        if name != drop:
            args += [f"--tls-{name}-file", str(path)]
    proc = _serve(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert option in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("which", ["cert", "key"])
def test_serve_k8s_names_an_unreadable_tls_file(
    which: str, tls_files: Any, tmp_path: Path
) -> None:
    files = {"cert": tls_files.cert_file, "key": tls_files.key_file}
    files[which] = tmp_path / "gone" / f"{which}.pem"
    proc = _serve(
        "--authority",
        "https://idp.example/t1",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--tls-cert-file",
        str(files["cert"]),
        "--tls-key-file",
        str(files["key"]),
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(files[which]) in proc.stderr
    assert f"--tls-{which}-file" in proc.stderr


@pytest.mark.parametrize("busy", ["--listen", "--metrics-listen"])
def test_serve_k8s_names_an_address_in_use(busy: str, tls_files: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        listen = {"--listen": "127.0.0.1:0", "--metrics-listen": "127.0.0.1:0"}
        listen[busy] = address
        proc = _serve(
            "--authority",
            "https://idp.example/t1",
            *(item for pair in listen.items() for item in pair),
            "--tls-cert-file",
            str(tls_files.cert_file),
            "--tls-key-file",
            str(tls_files.key_file),
        )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"cannot listen on {address}" in proc.stderr
    assert busy in proc.stderr
