"""``webid-agent docker``: run a container with AWS web identity credentials.

``webid-agent docker [webid options] run [docker run arguments] IMAGE [CMD...]``
starts an agent sidecar that keeps a token in a fresh volume, waits for the
first token, then runs ``docker run`` with the volume mounted read-only and
the standard AWS variables set. Everything after ``run`` goes to docker
unchanged; its exit code is returned.

With ``--mode credentials-endpoint`` the sidecar also serves the role's
credentials on its loopback; the app joins the sidecar's network namespace
(``--network container:SIDECAR``) and gets ``AWS_CONTAINER_CREDENTIALS_FULL_URI``
and ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` instead of the web identity pair.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import click

from agent import (
    AUTH_TOKEN_PATH,
    DEFAULT_CREDENTIALS_LISTEN,
    ENV_ROLE_ARN,
    ENV_SESSION_NAME,
    ENV_TOKEN_FILE,
    ROLE_ARN_PATTERN,
    TOKEN_PATH,
    ConfigError,
    DockerFailure,
    InputError,
    SidecarSpec,
    WorkloadEnv,
    __version__,
    config_default,
    finite,
    idp_options,
    merge_env,
    render_yaml,
    settings_from_options,
    sidecar_env,
    workload_env,
)

__all__ = ["docker_group"]

log = logging.getLogger(__name__)

DEFAULT_IMAGE = f"webid-agent:{__version__}"
MODES = ("web-identity", "credentials-endpoint")


def _client() -> Any:
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerFailure(
            f"cannot reach the Docker engine ({exc}); is dockerd running and is"
            " DOCKER_HOST right?"
        ) from exc
    return client


def _sidecar_spec(options: dict[str, Any]) -> tuple[SidecarSpec, dict[str, Path]]:
    """The agent's settings inside the sidecar, and the files to copy in."""
    from injectors.docker.session import CREDENTIALS_DIR

    settings = settings_from_options({**options, "listen": ""}, default_token_file=None)
    files: dict[str, Path] = {}
    paths: dict[str, Any] = {}
    for field, name, path in (
        ("client_secret_file", "client-secret", settings.client_secret_file),
        ("client_cert_file", "client.crt", settings.client_cert_file),
        ("client_key_file", "client.key", settings.client_key_file),
        ("ca_bundle", "ca.pem", settings.ca_bundle),
    ):
        if path is not None:
            files[name] = path
            paths[field] = f"{CREDENTIALS_DIR}/{name}"
    if settings.client_secret_file is not None:
        settings.client_secret()  # unreadable or empty: say so here, exit 2
    if settings.client_secret_env:
        # the value is copied into the sidecar as a file, never passed as env
        raise ConfigError(
            "the docker wrapper takes the secret from a file only",
            where="--client-secret-env",
        )
    spec = SidecarSpec(
        provider=settings.provider,
        authority=settings.authority,
        client_id=settings.client_id,
        tenant_id=settings.tenant_id,
        auth_method=settings.auth_method,
        scope=settings.scope,
        audience=settings.audience,
        issuer=settings.issuer,
        extra_params=tuple(f"{k}={v}" for k, v in settings.extra_params),
        token_file=TOKEN_PATH,
        refresh_at=settings.refresh_at,
        min_remaining=settings.min_remaining,
        # nothing probes the sidecar, and on a shared host network a fixed
        # health port would collide between two wrapped runs
        listen="off",
        **paths,
    )
    return spec, files


@click.group(name="docker")
@click.option(
    "--role-arn",
    envvar="WEBID_ROLE_ARN",
    show_envvar=True,
    default=config_default("role_arn"),
    help="Role the app assumes (AWS_ROLE_ARN).",
)
@click.option(
    "--session-name",
    envvar="WEBID_SESSION_NAME",
    default=config_default("session_name"),
    help="Role session name (AWS_ROLE_SESSION_NAME for the app, or the"
    " sidecar's in credentials-endpoint mode).",
)
@click.option(
    "--region",
    envvar="WEBID_REGION",
    default=config_default("region"),
    help="AWS_REGION and AWS_DEFAULT_REGION for the app (and the sidecar's STS"
    " region in credentials-endpoint mode).",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default=config_default("mode", "web-identity"),
    show_default="web-identity",
    help="web-identity: the app reads the token file. credentials-endpoint: the"
    " sidecar serves the role's credentials on its loopback and the app joins"
    " its network namespace (for SDKs without web identity).",
)
@click.option(
    "--network",
    "sidecar_network",
    default=config_default("network"),
    help="Network of the sidecar [the app's --network, else bridge]. In"
    " credentials-endpoint mode the app shares it.",
)
@click.option(
    "--sts-endpoint-url",
    envvar="WEBID_STS_ENDPOINT_URL",
    default=config_default("sts_endpoint_url"),
    help="STS endpoint the sidecar calls in credentials-endpoint mode"
    " [the regional endpoint].",
)
@click.option(
    "--credentials-listen",
    default=config_default("credentials_listen", DEFAULT_CREDENTIALS_LISTEN),
    show_default=DEFAULT_CREDENTIALS_LISTEN,
    help="Loopback address of the credentials endpoint in the sidecar's network"
    " namespace (change it when two sidecars share the host network).",
)
@click.option(
    "--image",
    envvar="WEBID_IMAGE",
    show_envvar=True,
    default=config_default("image", DEFAULT_IMAGE),
    show_default=DEFAULT_IMAGE,
    help="Agent image for the sidecar.",
)
@click.option(
    "--first-token-timeout",
    type=click.FloatRange(1, 3600),
    callback=finite,
    default=60.0,
    show_default=True,
    help="Seconds to wait for the sidecar's first token.",
)
@click.option(
    "--stop-grace",
    type=click.FloatRange(0, 3600),
    callback=finite,
    default=10.0,
    show_default=True,
    help="Seconds an app may ignore a forwarded signal before it is stopped.",
)
@click.option(
    "--templates",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="WEBID_TEMPLATES",
    help="Folder overriding templates/docker/*.j2.",
)
@idp_options
@click.pass_context
def docker_group(ctx: click.Context, /, **options: Any) -> None:
    """Run containers with AWS credentials from the external IdP.

    \b
    Examples:
      webid-agent docker --role-arn arn:aws:iam::111122223333:role/app \\
          --authority https://idp.example/tenant1 --client-id app \\
          --client-secret-file ./client-secret --audience sts.amazonaws.com \\
          run --rm my-image aws sts get-caller-identity
      webid-agent docker cleanup
    """
    ctx.obj = options


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the group's option ``name`` was given on the command line."""
    group = ctx.parent or ctx
    return group.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE


@docker_group.command(
    name="run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("docker_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run_command(ctx: click.Context, docker_args: tuple[str, ...]) -> None:
    """Run IMAGE like `docker run`, with a token sidecar wired in.

    Every argument goes to `docker run` unchanged. The app gets the token
    volume read-only at /var/run/secrets/webid, AWS_ROLE_ARN and
    AWS_WEB_IDENTITY_TOKEN_FILE (variables you set with -e win, with a warning).
    With --mode credentials-endpoint it gets AWS_CONTAINER_CREDENTIALS_FULL_URI
    and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE instead and runs in the
    sidecar's network namespace, so docker's network options (--network, -p,
    --hostname, --dns, ...) are refused.

    \b
    Examples:
      webid-agent docker --role-arn ARN ... run --rm -it --user 1000 my-image
      webid-agent docker --mode credentials-endpoint --role-arn ARN ... \\
          run --rm -e AWS_DEFAULT_REGION=eu-west-1 legacy-image
    """
    options: dict[str, Any] = dict(ctx.obj)
    import re

    from injectors.docker.args import NETWORK_OPTIONS, parse_run_args
    from injectors.docker.session import LABEL_ROLE, LABEL_SESSION, Session

    # check everything before creating anything
    role_arn = options.pop("role_arn")
    if not role_arn:
        raise ConfigError("missing role to assume", where="--role-arn")
    if not re.match(ROLE_ARN_PATTERN, role_arn):
        raise ConfigError(
            f"not an IAM role ARN: {role_arn!r} (arn:aws:iam::ACCOUNT:role/NAME)",
            where="--role-arn",
        )
    image = options.pop("image")
    timeout = options.pop("first_token_timeout")
    grace = options.pop("stop_grace")
    templates = options.pop("templates")
    mode = options.pop("mode")
    endpoint = mode == "credentials-endpoint"
    sidecar_network = options.pop("sidecar_network")
    sts_endpoint_url = options.pop("sts_endpoint_url")
    credentials_listen = options.pop("credentials_listen")
    session_name = options.pop("session_name")
    region = options.pop("region")
    spec, files = _sidecar_spec(options)
    run_args = parse_run_args(list(docker_args))

    # the app's env: the web identity pair, or the endpoint's two variables
    wanted = WorkloadEnv(
        role_arn=role_arn, session_name=session_name, region=region
    ).as_env()
    if endpoint:
        conflicts = [name for name in run_args.given if name in NETWORK_OPTIONS]
        if conflicts:
            raise InputError(
                f"{conflicts[0]} cannot be used with --mode credentials-endpoint:"
                " the app joins the sidecar's network namespace (--network"
                " container:SIDECAR) to reach its loopback, so it has no network"
                " settings of its own; give the network as webid-agent docker"
                " --network NET (before run)",
                where=f"docker run {conflicts[0]}",
            )
        serve = sidecar_env(
            role_arn=role_arn,
            listen=credentials_listen,
            auth_token_file=AUTH_TOKEN_PATH,
            session_name=session_name,
            region=region,
            sts_endpoint_url=sts_endpoint_url,
        )
        spec = dataclasses.replace(spec, extra_env={**spec.extra_env, **serve})
        agent_only = (ENV_ROLE_ARN, ENV_TOKEN_FILE, ENV_SESSION_NAME)
        wanted = {
            **workload_env(listen=credentials_listen, auth_token_file=AUTH_TOKEN_PATH),
            **{k: v for k, v in wanted.items() if k not in agent_only},
        }
    elif sts_endpoint_url and _given(ctx, "sts_endpoint_url"):
        click.echo(
            "webid-agent: warning: --sts-endpoint-url only applies with --mode"
            " credentials-endpoint; the app's SDK calls STS itself (-e"
            " AWS_ENDPOINT_URL_STS=URL)",
            err=True,
        )
    merged = merge_env(dict.fromkeys(run_args.env_names, ""), wanted)
    for warning in merged.warnings("docker run"):
        click.echo(f"webid-agent: warning: {warning}", err=True)
    if not sidecar_network:
        network = run_args.network or "default"
        sidecar_network = "bridge" if network in ("none", "default") else network

    # start the sidecar and wait for its first token
    client = _client()
    session = Session(
        client=client,
        image=image,
        spec=spec,
        credentials=files,
        network_mode=sidecar_network,
        templates_dir=templates,
    )
    interrupted: list[int] = []

    def stop_app() -> None:
        selector = {
            "label": [f"{LABEL_SESSION}={session.session_id}", f"{LABEL_ROLE}=app"]
        }
        for container in client.containers.list(filters=selector):
            log.warning("the app ignored the signal; stopping %s", container.name)
            container.stop(timeout=5)

    with _forwarded_signals(interrupted, stop_app=stop_app, grace=grace) as forward:
        try:
            session.start_sidecar()
            click.echo(
                "webid-agent: waiting for the first "
                + ("credentials..." if endpoint else "token..."),
                err=True,
            )
            countdown = _Countdown(timeout) if sys.stderr.isatty() else None
            try:
                session.wait_first_token(
                    timeout,
                    events=("token_written", "credentials_ready")
                    if endpoint
                    else ("token_written",),
                    progress=countdown,
                )
            finally:
                if countdown:
                    countdown.finish()
            if interrupted:
                raise click.exceptions.Exit(128 + interrupted[0])

            # run the app through the docker CLI, which owns TTYs and attach
            wiring = render_yaml(
                "docker",
                "app-args.yaml.j2",
                {
                    "volume": session.token_volume,
                    "token_dir": os.path.dirname(TOKEN_PATH),
                    "env": merged.added,
                    "labels": {LABEL_SESSION: session.session_id, LABEL_ROLE: "app"},
                    "network": f"container:{session.sidecar_name}"
                    if endpoint
                    else None,
                },
                templates_dir=templates,
            )
            argv = ["docker", "run", *wiring, *docker_args]
            log.debug("running %s", " ".join(argv[:2] + wiring))
            try:
                process = subprocess.Popen(argv)  # noqa: S603 - argv, no shell
            except FileNotFoundError as exc:
                raise DockerFailure("the docker CLI is not on PATH") from exc
            forward.append(process)
            code = process.wait()
        finally:
            if not run_args.detach:
                session.remove()
    if run_args.detach and code == 0:
        _start_reaper(session.session_id)
    if code:
        raise click.exceptions.Exit(code)


class _Countdown:
    """On a terminal, show the seconds waited for the sidecar, once a second."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.shown = 0

    def __call__(self, left: float) -> None:
        waited = int(self.timeout - left)
        if waited > self.shown:
            self.shown = waited
            click.echo(f"\r  ... {waited}s of {self.timeout:.0f}s", nl=False, err=True)

    def finish(self) -> None:
        if self.shown:
            click.echo("", err=True)


class _forwarded_signals:  # noqa: N801 - used as a context manager
    """Forward SIGTERM/SIGINT/SIGHUP to the docker CLI once it runs.

    An app that ignores the signal (a shell or sleep as PID 1 without --init)
    is stopped through the engine after ``grace`` seconds, as `docker stop`
    would, so the wrapper always ends.
    """

    def __init__(
        self, received: list[int], *, stop_app: Callable[[], None], grace: float = 10.0
    ) -> None:
        self.received = received
        self.targets: list[subprocess.Popen[bytes]] = []
        self.previous: dict[int, Any] = {}
        self.stop_app = stop_app
        self.grace = grace
        self.timer: threading.Timer | None = None

    def __enter__(self) -> list[subprocess.Popen[bytes]]:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.received.append(signum)
            for process in self.targets:
                if process.poll() is None:
                    process.send_signal(signum)
            if not self.targets:
                raise KeyboardInterrupt
            if self.timer is None:
                self.timer = threading.Timer(self.grace, self.stop_app)
                self.timer.daemon = True
                self.timer.start()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.previous[signum] = signal.signal(signum, handler)
        return self.targets

    def __exit__(self, *exc: object) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)


def _start_reaper(session_id: str) -> None:
    """Watch a detached app in the background; remove its sidecar when it ends."""
    subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "agent", "docker", "reap", session_id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@docker_group.command(name="reap", hidden=True)
@click.argument("session_id")
def reap_command(session_id: str) -> None:
    """Wait for a detached app to end, then remove its sidecar and volumes."""
    from injectors.docker.session import LABEL_ROLE, LABEL_SESSION, remove_session

    client = _client()
    selector = {"label": [f"{LABEL_SESSION}={session_id}", f"{LABEL_ROLE}=app"]}
    for container in client.containers.list(all=True, filters=selector):
        try:
            container.wait()
        except Exception:  # noqa: BLE001, S110 - gone already: clean up anyway
            pass
    remove_session(client, session_id)


@docker_group.command(name="cleanup")
@click.option("--dry-run", is_flag=True, help="List what would be removed.")
def cleanup_command(dry_run: bool) -> None:
    """Remove sidecars and volumes whose app is no longer running.

    \b
    Example:
      webid-agent docker cleanup --dry-run
    """
    from injectors.docker.session import (
        LABEL_MANAGED,
        LABEL_ROLE,
        LABEL_SESSION,
        remove_session,
    )

    client = _client()
    sessions: set[str] = set()
    running: set[str] = set()
    managed = {"label": f"{LABEL_MANAGED}=true"}
    # apps carry the session label but not the managed one: they are the user's
    for container in client.containers.list(all=True, filters={"label": LABEL_SESSION}):
        session = container.labels.get(LABEL_SESSION, "")
        sessions.add(session)
        if container.labels.get(LABEL_ROLE) == "app" and container.status in (
            "running",
            "created",
            "restarting",
            "paused",
        ):
            running.add(session)
    for volume in client.volumes.list(filters=managed):
        sessions.add((volume.attrs.get("Labels") or {}).get(LABEL_SESSION, ""))
    for session in sorted(sessions - running - {""}):
        if dry_run:
            click.echo(f"would remove session {session}")
        else:
            for name in remove_session(client, session):
                click.echo(f"removed {name}")
