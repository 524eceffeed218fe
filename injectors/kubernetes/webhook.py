"""The admission webhook server: HTTPS ``/mutate`` and a plain metrics port.

- TLS: the certificate and key are re-read when their files change (checked
  at most every ``reload_interval`` seconds, on a new connection), so a
  rotated certificate (cert-manager, a re-applied Secret) is served to new
  connections without a restart. A half-written or mismatched pair keeps the
  last good one in use. The handshake runs in the connection's own thread,
  bounded by the request timeout, so a slow client never blocks ``accept``.
- Bounds: at most ``max_connections`` open connections (more are closed at
  once), bodies over ``max_body`` bytes get 413, and every read (handshake,
  headers, body) has a deadline.
- ``/healthz``, ``/readyz`` and ``/metrics`` (requests by code, decisions,
  latency, reloads) on a separate plain-HTTP port.
- One structured log line per decision, naming namespace, pod (or its
  generateName) and the decision.

Known limit: the stdlib server reads headers with a per-read timeout rather
than a total one; the connection cap bounds what slow clients can hold.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from agent import ConfigError, RuntimeFailure
from injectors.kubernetes.options import InjectorConfig, MappingStore, PodDefaults
from injectors.kubernetes.review import Outcome, Reviewer

__all__ = [
    "CertificateStore",
    "ServerSettings",
    "WebhookMetrics",
    "WebhookServer",
    "serve",
]

log = logging.getLogger(__name__)

DECISIONS = (
    "injected",
    "unchanged",
    "not-opted-in",
    "skipped",
    "denied",
    "bad-request",
    "error",
)


@dataclass(frozen=True)
class ServerSettings:
    """How the webhook listens; see ``serve-k8s --help``."""

    cert_file: Path
    key_file: Path
    listen: str = "0.0.0.0:8443"  # noqa: S104 - inside a pod
    metrics_listen: str = "0.0.0.0:8080"  # noqa: S104
    min_tls: str = "1.2"
    max_body: int = 4 * 1024 * 1024
    timeout: float = 10.0
    max_connections: int = 256
    reload_interval: float = 5.0
    mapping_file: Path | None = None


def parse_address(value: str, *, where: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) into ``(host, port)``."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"expected HOST:PORT, got {value!r}", where=where)
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104


def _listen_failure(exc: OSError, address: str, option: str) -> RuntimeFailure:
    """The one-line error for a socket that cannot be bound."""
    reason = exc.strerror or str(exc)
    return RuntimeFailure(f"cannot listen on {address}: {reason}", where=option)


class WebhookMetrics:
    """Prometheus metrics of the webhook, on a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "webid_webhook_requests",
            "Admission HTTP requests by status code.",
            ["code"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "webid_webhook_decisions",
            "Admission decisions: injected, unchanged (already injected), "
            "not-opted-in, skipped (not a pod creation), denied, bad-request, error.",
            ["decision"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "webid_webhook_review_duration_seconds",
            "Time to answer one AdmissionReview, body read to response ready.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
            registry=self.registry,
        )
        self.reloads = Counter(
            "webid_webhook_reloads",
            "Reloads of the certificate and mapping files by result.",
            ["file", "result"],
            registry=self.registry,
        )
        self.rejected_connections = Counter(
            "webid_webhook_rejected_connections",
            "Connections closed at once: over the cap or failed TLS handshake.",
            ["reason"],
            registry=self.registry,
        )
        for decision in DECISIONS:
            self.decisions.labels(decision=decision)


class CertificateStore:
    """The serving SSLContext, rebuilt when the certificate or key file changes."""

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        *,
        min_tls: str = "1.2",
        check_every: float = 5.0,
        metrics: WebhookMetrics | None = None,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.min_tls = min_tls
        self.check_every = check_every
        self.metrics = metrics
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._checked = time.monotonic()
        self._context = self._load()  # a bad pair at start-up is a ConfigError

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for path in (self.cert_file, self.key_file):
            try:
                st = os.stat(path)
            except OSError:
                stamps.append((0, 0, 0))
            else:
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = (
            ssl.TLSVersion.TLSv1_3 if self.min_tls == "1.3" else ssl.TLSVersion.TLSv1_2
        )
        context.set_alpn_protocols(["http/1.1"])
        files = (("certificate", "cert", self.cert_file), ("key", "key", self.key_file))
        for what, option, path in files:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the serving {what} (--tls-{option}-file):"
                    f" {exc.strerror}",
                    where=str(path),
                ) from exc
        try:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the serving certificate and key: {exc}",
                where=f"{self.cert_file} / {self.key_file}",
            ) from exc
        return context

    def context(self) -> ssl.SSLContext:
        """The current context, reloaded first if a file changed."""
        now = time.monotonic()
        if now - self._checked < self.check_every:
            return self._context
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if stamp == self._stamp:
                return self._context
            try:
                self._context = self._load()
            except ConfigError as exc:
                # likely mid-rotation (new cert, old key): retry on the next check
                log.error("keeping the previous certificate: %s", exc.format())
                self._record("error")
            else:
                self._stamp = stamp
                log.info("serving certificate reloaded from %s", self.cert_file)
                self._record("success")
        return self._context

    def _record(self, result: str) -> None:
        if self.metrics:
            self.metrics.reloads.labels(file="certificate", result=result).inc()


class _AdmissionHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; only ``POST /mutate``."""

    protocol_version = "HTTP/1.1"
    server: _AdmissionServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s " + format, self.address_string(), *args)

    def _reply(self, status: int, body: bytes) -> None:
        # one write: status line, headers and body in one TLS record
        reason = self.responses.get(status, ("",))[0]
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
        if self.close_connection:
            head += "Connection: close\r\n"
        # account before answering, so a client that reads the metrics right
        # after its answer sees its own request counted
        self.server.metrics.requests.labels(code=str(status)).inc()
        self.wfile.write(head.encode("latin-1") + b"\r\n" + body)

    def _fail(self, status: int, message: str) -> None:
        self.close_connection = True
        self.server.metrics.decisions.labels(decision="bad-request").inc()
        self._reply(status, json.dumps({"error": message}).encode())

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        self._fail(405, "use POST /mutate")

    def do_POST(self) -> None:  # noqa: N802
        started = time.perf_counter()

        # read a bounded body within the deadline (also before a 404, so the
        # client is not reset with its request unread)
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._fail(411, "Content-Length required")
            return
        length = int(length_header)
        if length > self.server.settings.max_body:
            self._fail(413, "AdmissionReview too large")
            self._read(min(length, self.server.settings.max_body), keep=False)
            return
        body = self._read(length)
        if body is None:
            self._fail(408, "request body not received in time")
            return
        if self.path.split("?", 1)[0] != "/mutate":
            self._fail(404, "not found; the admission endpoint is /mutate")
            return

        # review, answer, account
        status, answer, outcome = self.server.reviewer.handle(body)
        elapsed = time.perf_counter() - started
        self.server.metrics.latency.observe(elapsed)
        self.server.metrics.decisions.labels(decision=outcome.decision).inc()
        _log_outcome(outcome, elapsed)
        self._reply(status, answer)

    def _read(self, length: int, *, keep: bool = True) -> bytes | None:
        """``length`` bytes of body, or None when not received in time."""
        deadline = time.monotonic() + self.server.settings.timeout
        chunks: list[bytes] = []
        left = length
        try:
            while left > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.connection.settimeout(remaining)
                chunk = self.rfile.read1(min(left, 1 << 16))
                if not chunk:
                    return None
                if keep:
                    chunks.append(chunk)
                left -= len(chunk)
        except (TimeoutError, OSError):
            return None
        finally:
            self.connection.settimeout(self.server.settings.timeout)
        return b"".join(chunks)


def _log_outcome(outcome: Outcome, elapsed: float) -> None:
    level = logging.DEBUG if outcome.decision == "not-opted-in" else logging.INFO
    if outcome.decision in ("denied", "error", "bad-request"):
        level = logging.WARNING
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        "admission namespace=%s pod=%s decision=%s ops=%d%s",
        outcome.namespace or "-",
        outcome.pod or "-",
        outcome.decision,
        outcome.ops,
        f" message={outcome.message!r}" if outcome.message else "",
        extra={
            "namespace": outcome.namespace,
            "pod": outcome.pod,
            "decision": outcome.decision,
            "uid": outcome.uid,
            "ops": outcome.ops,
            "warnings": outcome.warnings,
            "duration_ms": round(elapsed * 1000, 3),
        },
    )


class _AdmissionServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        *,
        settings: ServerSettings,
        certificates: CertificateStore,
        reviewer: Reviewer,
        metrics: WebhookMetrics,
    ) -> None:
        self.settings = settings
        self.certificates = certificates
        self.reviewer = reviewer
        self.metrics = metrics
        self._slots = threading.BoundedSemaphore(settings.max_connections)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _AdmissionHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.metrics.rejected_connections.labels(reason="over-cap").inc()
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # the TLS handshake, in this connection's thread and within the timeout
        request.settimeout(self.settings.timeout)
        try:
            tls = self.certificates.context().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            self.metrics.rejected_connections.labels(reason="tls-handshake").inc()
            return
        try:
            _AdmissionHandler(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


class _MetricsHandler(BaseHTTPRequestHandler):
    server: _MetricsServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        path = self.path.split("?", 1)[0]
        content_type = "text/plain; charset=utf-8"
        if path == "/healthz":
            status, body = 200, b"ok\n"
        elif path == "/readyz":
            ready = self.server.owner.ready.is_set()
            status, body = (200, b"ready\n") if ready else (503, b"not ready\n")
        elif path == "/metrics":
            status, body = 200, generate_latest(self.server.owner.metrics.registry)
            content_type = CONTENT_TYPE_LATEST
        else:
            status, body = 404, b"not found\n"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: WebhookServer) -> None:
        self.owner = owner
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _MetricsHandler)


class WebhookServer:
    """Both servers in background threads; :meth:`start` then :meth:`stop`."""

    def __init__(self, *, config: InjectorConfig, settings: ServerSettings) -> None:
        self.settings = settings
        self.metrics = WebhookMetrics()
        self.ready = threading.Event()

        # files: certificate pair and mapping, both reloaded on change
        self.certificates = CertificateStore(
            settings.cert_file,
            settings.key_file,
            min_tls=settings.min_tls,
            check_every=settings.reload_interval,
            metrics=self.metrics,
        )
        self.mapping: MappingStore | None = None
        if settings.mapping_file is not None:
            self.mapping = MappingStore(
                settings.mapping_file,
                check_every=settings.reload_interval,
                on_error=lambda _: self.metrics.reloads.labels(
                    file="mapping", result="error"
                ).inc(),
            )
        self.reviewer = Reviewer(config, defaults=self._defaults)

        # sockets: bound now so a taken port fails at start-up, naming it
        address = parse_address(settings.listen, where="--listen")
        metrics_address = parse_address(
            settings.metrics_listen, where="--metrics-listen"
        )
        try:
            self._https = _AdmissionServer(
                address,
                settings=settings,
                certificates=self.certificates,
                reviewer=self.reviewer,
                metrics=self.metrics,
            )
        except OSError as exc:
            raise _listen_failure(exc, settings.listen, "--listen") from exc
        try:
            self._http = _MetricsServer(metrics_address, self)
        except OSError as exc:
            self._https.server_close()
            raise _listen_failure(
                exc, settings.metrics_listen, "--metrics-listen"
            ) from exc
        self._threads: list[threading.Thread] = []

    def _defaults(self) -> PodDefaults | None:
        return self.mapping.get() if self.mapping else None

    @property
    def port(self) -> int:
        """The HTTPS port actually bound (useful with port 0)."""
        return int(self._https.server_address[1])

    @property
    def metrics_port(self) -> int:
        """The metrics port actually bound."""
        return int(self._http.server_address[1])

    def start(self) -> None:
        """Serve in daemon threads; ready once both sockets accept."""
        for name, server in (("webhook", self._https), ("metrics", self._http)):
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"k8s-{name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        self.ready.set()
        log.info(
            "admission webhook on https://%s/mutate, metrics on http://%s",
            self.settings.listen,
            self.settings.metrics_listen,
        )

    def stop(self) -> None:
        """Stop accepting, then close both sockets."""
        self.ready.clear()
        for server in (self._https, self._http):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)


def serve(*, config: InjectorConfig, settings: ServerSettings) -> None:
    """Run the webhook until SIGTERM or SIGINT."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    server = WebhookServer(config=config, settings=settings)
    server.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
