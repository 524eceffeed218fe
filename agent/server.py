"""The health and metrics HTTP server: ``/healthz``, ``/readyz``, ``/metrics``.

It runs in a daemon thread next to the engine loop. Other routes (such as the
container-credentials endpoint) can be added with :meth:`HealthServer.route`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent.engine import TokenEngine
from agent.errors import ConfigError

__all__ = ["HealthServer", "Request", "Response", "parse_listen"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    client: str


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


def parse_listen(value: str, *, where: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) into a (host, port) pair."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"expected HOST:PORT, got {value!r}", where=where)
    return host.strip("[]") or "127.0.0.1", int(port)


class HealthServer:
    """Serves the engine's health, readiness and metrics."""

    def __init__(self, engine: TokenEngine, listen: str) -> None:
        self.engine = engine
        self._routes: dict[str, Handler] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
        }
        host, port = parse_listen(listen)
        self._alive: Callable[[], bool] = lambda: True
        server = self

        class _Handler(BaseHTTPRequestHandler):
            server_version = "webid-agent"
            sys_version = ""

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                path = self.path.split("?", 1)[0]
                handler = server._routes.get(path)
                request = Request(
                    "GET",
                    path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.client_address[0],
                )
                response = (
                    handler(request)
                    if handler
                    else Response(404, b'{"error": "not found"}\n')
                )
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(response.body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug("health server: " + format, *args)

        try:
            self._server = ThreadingHTTPServer((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen: {exc.strerror}", where=f"--listen {listen}"
            ) from exc
        self._server.daemon_threads = True
        # No poll interval: the server sleeps until a request comes, and
        # stop() wakes it with a connection of its own.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": None},
            name="health-server",
            daemon=True,
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def route(self, path: str, handler: Handler) -> None:
        self._routes[path] = handler

    def set_liveness(self, alive: Callable[[], bool]) -> None:
        self._alive = alive

    def start(self) -> None:
        self._thread.start()
        log.info("health and metrics on http://%s:%d", *self.address)

    def stop(self) -> None:
        if self._thread.is_alive():
            stopper = threading.Thread(target=self._server.shutdown, daemon=True)
            stopper.start()
            while stopper.is_alive():
                with contextlib.suppress(OSError):
                    socket.create_connection(self.address, timeout=0.2).close()
                stopper.join(0.05)
        self._server.server_close()

    # -- routes ---------------------------------------------------------------

    def _healthz(self, request: Request) -> Response:
        alive = self._alive()
        return Response(
            200 if alive else 503, b"ok\n" if alive else b"stopped\n", "text/plain"
        )

    def _readyz(self, request: Request) -> Response:
        status = self.engine.status()
        body = {
            "ready": status.ready,
            "expires_at": int(status.token.expires_at) if status.token else None,
            "last_error": status.last_error,  # redacted where it is recorded
            "consecutive_failures": status.consecutive_failures,
        }
        return Response(200 if status.ready else 503, json.dumps(body).encode() + b"\n")

    def _metrics(self, request: Request) -> Response:
        self.engine.is_ready()
        return Response(
            200, generate_latest(self.engine.metrics.registry), CONTENT_TYPE_LATEST
        )
