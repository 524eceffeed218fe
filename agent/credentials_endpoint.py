"""The container-credentials endpoint: role credentials for SDKs without web identity.

With ``webid-agent run --serve-credentials`` the sidecar also trades its token
for role credentials at STS and serves them, on a loopback address only, in
the JSON that every AWS SDK reads from ``AWS_CONTAINER_CREDENTIALS_FULL_URI``::

    {"AccessKeyId": ..., "SecretAccessKey": ..., "Token": ..., "Expiration": ...}

A request must carry an ``Authorization`` header equal to the content of the
authorization token file (the file the workload finds in
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``); anything else gets 401, any
other path 404. The file is generated per workload by whichever of ``token``
(init step) or ``run`` starts first, and its value is never logged.

Credentials are refreshed in a background thread once they have less than the
refresh margin left (more than the 15 minutes after which SDKs ask again),
and on demand if a request finds none fresh.

What an injector sets for this mode (see :func:`workload_env` and
:func:`sidecar_env`):

=========================================  ====================================
workload                                   ``AWS_CONTAINER_CREDENTIALS_FULL_URI``
                                           ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``
agent container                            ``WEBID_SERVE_CREDENTIALS=true``,
                                           ``WEBID_ROLE_ARN``,
                                           ``WEBID_CREDENTIALS_LISTEN``,
                                           ``WEBID_CREDENTIALS_AUTH_TOKEN_FILE``
=========================================  ====================================

The workload must reach the agent's loopback address: same pod (Kubernetes),
same network namespace (Docker ``--network container:``), or a Nomad group
in bridge mode.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import Counter, Gauge

from agent.aws.options import StsSettings
from agent.aws.sts import Credentials
from agent.contract import (
    ENV_CONTAINER_AUTH_TOKEN_FILE,
    ENV_CONTAINER_CREDENTIALS_FULL_URI,
    NOMAD_TOKEN_DIR,
    TOKEN_DIR,
)
from agent.engine import TokenEngine
from agent.errors import ConfigError, StsError, TokenFileError
from agent.logsetup import redact, register_secret
from agent.server import Request, Response, parse_listen
from agent.tokenfile import write_atomic

__all__ = [
    "AUTH_TOKEN_FILENAME",
    "AUTH_TOKEN_PATH",
    "CREDENTIALS_PATH",
    "DEFAULT_CREDENTIALS_LISTEN",
    "NOMAD_AUTH_TOKEN_PATH",
    "CredentialsEndpoint",
    "credentials_uri",
    "ensure_auth_token",
    "generate_auth_token",
    "loopback_listen",
    "sidecar_env",
    "workload_env",
]

log = logging.getLogger(__name__)

DEFAULT_CREDENTIALS_LISTEN = "127.0.0.1:8082"
CREDENTIALS_PATH = "/v1/credentials"
AUTH_TOKEN_FILENAME = "credentials-auth-token"  # noqa: S105 - a file name
AUTH_TOKEN_PATH = f"{TOKEN_DIR}/{AUTH_TOKEN_FILENAME}"
NOMAD_AUTH_TOKEN_PATH = f"{NOMAD_TOKEN_DIR}/{AUTH_TOKEN_FILENAME}"

# A request finding credentials with less than this left waits for new ones.
MIN_SERVE_REMAINING = 60.0

Assume = Callable[[str, StsSettings], Credentials]


# -- helpers for injectors ----------------------------------------------------


def loopback_listen(
    value: str, *, where: str = "--credentials-listen"
) -> tuple[str, int]:
    """``HOST:PORT`` as (host, port); ConfigError unless HOST is loopback.

    ``localhost`` means 127.0.0.1; names are not resolved (a name could
    resolve elsewhere), and wildcard addresses are refused.
    """
    host, port = parse_listen(value, where=where)
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise ConfigError(
            f"must be a loopback IP address (127.0.0.1 or ::1), got {host!r}",
            where=f"{where} {value}",
        ) from exc
    if not address.is_loopback:
        raise ConfigError(
            f"{host} is not a loopback address: the credentials endpoint is served"
            " on 127.0.0.0/8 or ::1 only",
            where=f"{where} {value}",
        )
    return host, port


def credentials_uri(listen: str = DEFAULT_CREDENTIALS_LISTEN) -> str:
    """The ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` for an endpoint on ``listen``."""
    host, port = loopback_listen(listen)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{CREDENTIALS_PATH}"


def workload_env(
    *,
    listen: str = DEFAULT_CREDENTIALS_LISTEN,
    auth_token_file: str = AUTH_TOKEN_PATH,
) -> dict[str, str]:
    """The variables a workload gets in credentials-endpoint mode.

    They replace ``AWS_ROLE_ARN``/``AWS_WEB_IDENTITY_TOKEN_FILE``; region
    variables may still be added. ``auth_token_file`` is the path as seen in
    the workload's container (the shared token folder, read-only).
    """
    return {
        ENV_CONTAINER_CREDENTIALS_FULL_URI: credentials_uri(listen),
        ENV_CONTAINER_AUTH_TOKEN_FILE: auth_token_file,
    }


def sidecar_env(
    *,
    role_arn: str,
    listen: str = DEFAULT_CREDENTIALS_LISTEN,
    auth_token_file: str = AUTH_TOKEN_PATH,
    session_name: str | None = None,
    region: str | None = None,
    sts_endpoint_url: str | None = None,
    duration: int | None = None,
) -> dict[str, str]:
    """``WEBID_*`` variables turning the agent container's ``run`` into this mode.

    Put them in ``SidecarSpec.extra_env``; ``auth_token_file`` is the path as
    seen in the agent's container. Give the init step (``webid-agent token``)
    ``WEBID_CREDENTIALS_AUTH_TOKEN_FILE`` too, so the file exists before the
    workload starts.
    """
    loopback_listen(listen)
    env = {
        "WEBID_SERVE_CREDENTIALS": "true",
        "WEBID_ROLE_ARN": role_arn,
        "WEBID_CREDENTIALS_LISTEN": listen,
        "WEBID_CREDENTIALS_AUTH_TOKEN_FILE": auth_token_file,
    }
    optional = {
        "WEBID_SESSION_NAME": session_name,
        "WEBID_REGION": region,
        "WEBID_STS_ENDPOINT_URL": sts_endpoint_url,
        "WEBID_DURATION": str(duration) if duration else None,
    }
    env.update({key: value for key, value in optional.items() if value})
    return env


def generate_auth_token() -> str:
    """A new random authorization token (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def read_auth_token(path: Path) -> str | None:
    """The token in ``path``, or None when the file is missing or empty."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the authorization token file: {exc.strerror}",
            where=f"--credentials-auth-token-file {path}",
        ) from exc
    if value:
        register_secret(value)
    return value or None


def ensure_auth_token(
    path: Path,
    *,
    mode: int = 0o644,
    uid: int | None = None,
    gid: int | None = None,
) -> str:
    """The token in ``path``; generate one and create the file if there is none.

    An existing token wins, so the init step and the sidecar agree whichever
    starts first; concurrent creators agree too (the file is linked into
    place only if absent). The file needs the workload's read access, like
    the web identity token.
    """
    existing = read_auth_token(path)
    if existing:
        return existing
    value = generate_auth_token()
    register_secret(value)
    where = f"--credentials-auth-token-file {path}"
    try:
        created = write_atomic(path, value, mode=mode, uid=uid, gid=gid, exclusive=True)
        if not read_auth_token(path):
            # an empty file left by someone else is replaced, never served
            created = write_atomic(path, value, mode=mode, uid=uid, gid=gid)
    except TokenFileError as exc:
        raise TokenFileError(
            f"cannot write the authorization token file: {exc.message}", where=where
        ) from exc
    if created:
        log.info("generated the credentials authorization token in %s", path)
    else:
        log.debug("authorization token file appeared meanwhile: %s", path)
    return read_auth_token(path) or value


# -- the endpoint ---------------------------------------------------------------


class CredentialsEndpoint:
    """Serves one role's credentials on loopback to holders of the auth token."""

    def __init__(
        self,
        engine: TokenEngine,
        sts: StsSettings,
        *,
        listen: str = DEFAULT_CREDENTIALS_LISTEN,
        auth_token_file: Path,
        assume: Assume | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.sts = sts
        self.auth_token_file = auth_token_file
        self._assume: Assume = assume or (
            lambda token, settings: settings.assume(
                token, timeout=engine.settings.timeout
            )
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._creds: Credentials | None = None
        self._obtained_at = 0.0
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._metrics(engine)

        # bind on loopback only
        host, port = loopback_listen(listen)
        endpoint = self

        class _Handler(BaseHTTPRequestHandler):
            server_version = "webid-agent"
            sys_version = ""

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                request = Request(
                    "GET",
                    self.path.split("?", 1)[0],
                    {k.lower(): v for k, v in self.headers.items()},
                    self.client_address[0],
                )
                response = endpoint.handle(request)
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(response.body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                # the request line only: headers (the auth token) are never logged
                log.debug("credentials endpoint: " + format, *args)

        server_class = type(
            "_Server",
            (ThreadingHTTPServer,),
            {"address_family": _family(host), "daemon_threads": True},
        )
        try:
            self._server = server_class((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen: {exc.strerror}",
                where=f"--credentials-listen {listen}",
            ) from exc
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever,
                name="credentials-endpoint",
                daemon=True,
            ),
            threading.Thread(
                target=self._refresh_loop, name="credentials-refresh", daemon=True
            ),
        ]

    def _metrics(self, engine: TokenEngine) -> None:
        registry = engine.metrics.registry
        self._expiry = Gauge(
            "webid_credentials_expiry_timestamp_seconds",
            "Expiry of the served role credentials, as a Unix timestamp.",
            registry=registry,
        )
        self._sts_calls = Counter(
            "webid_sts_requests",
            "AssumeRoleWithWebIdentity calls by result.",
            ["result"],
            registry=registry,
        )
        self._served = Counter(
            "webid_credentials_requests",
            "Requests to the credentials endpoint by response status.",
            ["status"],
            registry=registry,
        )
        for result in ("success", "failure"):
            self._sts_calls.labels(result=result)

    # -- state ------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def uri(self) -> str:
        host, port = self.address
        return credentials_uri(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")

    def credentials(self) -> Credentials | None:
        """The credentials being served, if any."""
        with self._lock:
            return self._creds

    def is_ready(self) -> bool:
        creds = self.credentials()
        return creds is not None and creds.remaining(self._clock()) > (
            MIN_SERVE_REMAINING
        )

    def _margin(self, creds: Credentials) -> float:
        with self._lock:
            obtained = self._obtained_at
        return self.sts.margin_for(creds.expiration - obtained)

    # -- refreshing -------------------------------------------------------------

    def refresh(self, *, unless_fresh: bool = False) -> Credentials:
        """Trade the engine's current token for new credentials now.

        With ``unless_fresh``, credentials another thread obtained while this
        one waited for the lock are returned instead (one STS call, not two).
        """
        with self._refresh_lock:
            current = self.credentials()
            if unless_fresh and current is not None:
                keep = max(self._margin(current), MIN_SERVE_REMAINING)
                if current.remaining(self._clock()) > keep:
                    return current
            token = self.engine.token
            if token is None or token.remaining(self._clock()) <= 0:
                raise StsError("no valid web identity token yet", where="IdP token")
            try:
                creds = self._assume(token.value, self.sts)
            except StsError as exc:
                self._sts_calls.labels(result="failure").inc()
                with self._lock:
                    self._last_error = redact(exc.format())
                raise
            self._sts_calls.labels(result="success").inc()
            self._expiry.set(creds.expiration)
            with self._lock:
                self._creds = creds
                self._obtained_at = self._clock()
                self._last_error = None
            if current is None:
                # the first credentials: a wrapper (docker) starts the app on this
                log.info(
                    "credentials endpoint ready on %s",
                    self.uri,
                    extra={"event": "credentials_ready"},
                )
            return creds

    def _refresh_loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            token = self.engine.token
            now = self._clock()
            if token is None or token.remaining(now) <= 0:
                self._stop.wait(0.2)
                continue
            creds = self.credentials()
            if creds is not None:
                due = creds.remaining(now) - self._margin(creds)
                if due > 0:
                    self._stop.wait(min(due, 60.0))
                    continue
            try:
                self.refresh(unless_fresh=True)
                backoff = 1.0
            except StsError as exc:
                log.warning(
                    "STS refresh failed, retrying in %.0fs: %s", backoff, exc.format()
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)

    # -- serving ----------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        expected = read_auth_token(self.auth_token_file)
        given = request.headers.get("authorization", "")
        return bool(expected) and hmac.compare_digest(
            given.strip().encode(), (expected or "").encode()
        )

    def handle(self, request: Request) -> Response:
        """Answer one request: 404 off the path, 401 without the token, else JSON."""
        response = self._answer(request)
        self._served.labels(status=str(response.status)).inc()
        return response

    def _answer(self, request: Request) -> Response:
        if request.path != CREDENTIALS_PATH:
            return Response(404, b'{"error": "not found"}\n')
        if not self._authorized(request):
            log.warning("credentials request without a valid Authorization header")
            return Response(401, b'{"error": "unauthorized"}\n')
        creds = self.credentials()
        if creds is None or creds.remaining(self._clock()) <= MIN_SERVE_REMAINING:
            try:
                creds = self.refresh(unless_fresh=True)
            except StsError as exc:
                log.warning("no credentials to serve: %s", exc.format())
                body = {
                    "error": "credentials unavailable",
                    "detail": redact(exc.format()),
                }
                return Response(503, json.dumps(body).encode() + b"\n")
        return Response(200, json.dumps(creds.container()).encode() + b"\n")

    def readyz(self, request: Request) -> Response:
        """``/readyz`` for the health server: the token and the credentials."""
        status = self.engine.status()
        creds = self.credentials()
        with self._lock:
            error = self._last_error
        ready = status.ready and self.is_ready()
        body = {
            "ready": ready,
            "expires_at": int(status.token.expires_at) if status.token else None,
            "credentials_expire_at": int(creds.expiration) if creds else None,
            "last_error": status.last_error or error,
            "consecutive_failures": status.consecutive_failures,
        }
        return Response(200 if ready else 503, json.dumps(body).encode() + b"\n")

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        log.info("container credentials on %s", self.uri)

    def stop(self) -> None:
        """Stop serving and refreshing; safe before :meth:`start`."""
        self._stop.set()
        if self._threads[0].is_alive():
            self._server.shutdown()
        self._server.server_close()
        for thread in self._threads[1:]:
            if thread.is_alive():
                thread.join(timeout=5)


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
