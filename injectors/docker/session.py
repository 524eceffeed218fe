"""One wrapped ``docker run``: token volume, sidecar, app, and their cleanup.

Every object the wrapper creates carries the label ``io.webid-agent.session``
so that whatever an interrupted run leaves behind can be found and removed by
``webid-agent docker cleanup``.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import TOKEN_DIR, ConfigError, DockerFailure, SidecarSpec, render_yaml

__all__ = ["CREDENTIALS_DIR", "LABEL_MANAGED", "LABEL_SESSION", "Session"]

log = logging.getLogger(__name__)

LABEL_MANAGED = "io.webid-agent.managed"
LABEL_SESSION = "io.webid-agent.session"
LABEL_ROLE = "io.webid-agent.role"
CREDENTIALS_DIR = "/run/webid-client"


@dataclass
class Session:
    """The Docker objects of one wrapped run."""

    client: Any
    image: str
    spec: SidecarSpec
    credentials: dict[str, Path]
    network_mode: str
    templates_dir: Path | None = None
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    sidecar: Any = None
    volumes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_SESSION: self.session_id}

    @property
    def token_volume(self) -> str:
        return f"webid-token-{self.session_id}"

    @property
    def credentials_volume(self) -> str:
        return f"webid-client-{self.session_id}"

    @property
    def sidecar_name(self) -> str:
        return f"webid-sidecar-{self.session_id}"

    def _render(self, template: str, **context: Any) -> Any:
        return render_yaml(
            "docker", template, context, templates_dir=self.templates_dir
        )

    # -- set up ---------------------------------------------------------------

    def start_sidecar(self) -> None:
        """Create the volumes, stage the credentials, start the agent."""
        import docker.errors

        try:
            # the image must be here; a registry pull is the user's decision
            self.client.images.get(self.image)
        except docker.errors.ImageNotFound as exc:
            raise DockerFailure(
                f"agent image {self.image!r} not found locally; build it"
                " (pip wheel . -w dist/wheels && docker build -t IMAGE .) or pull it,"
                " or pass --image",
                where="--image",
            ) from exc
        except docker.errors.APIError as exc:
            if exc.status_code == 400:
                raise ConfigError(
                    f"not a valid image reference: {self.image!r}", where="--image"
                ) from exc
            raise DockerFailure(f"the Docker engine failed: {exc}") from exc
        except docker.errors.DockerException as exc:
            raise DockerFailure(f"cannot reach the Docker engine: {exc}") from exc

        try:
            # one volume for the token (shared read-only with the app), one for
            # the client credential (the sidecar's alone)
            for volume in (self.token_volume, self.credentials_volume):
                kwargs = self._render(
                    "volume.yaml.j2", volume=volume, labels=self.labels
                )
                self.client.volumes.create(**kwargs)
                self.volumes.append(volume)

            kwargs = self._render(
                "sidecar.yaml.j2",
                name=self.sidecar_name,
                image=self.image,
                network_mode=self.network_mode,
                volume=self.token_volume,
                token_dir=TOKEN_DIR,
                env=self.spec.env(),
                labels={**self.labels, LABEL_ROLE: "sidecar"},
                user=None,
            )
            kwargs["volumes"][self.credentials_volume] = {
                "bind": CREDENTIALS_DIR,
                "mode": "rw",
            }
            kwargs.pop("detach", None)
            self.sidecar = self.client.containers.create(**kwargs)

            # copy the credential files in before the agent starts
            self.sidecar.put_archive(
                CREDENTIALS_DIR, _credentials_tar(self.credentials)
            )
            self.sidecar.start()
        except docker.errors.APIError as exc:
            raise DockerFailure(
                f"cannot start the sidecar: {exc.explanation or exc}",
                where=self.sidecar_name,
            ) from exc
        log.debug("sidecar %s started", self.sidecar_name)

    def wait_first_token(
        self,
        timeout: float,
        progress: Callable[[float], None] | None = None,
        *,
        events: tuple[str, ...] = ("token_written",),
    ) -> None:
        """Block until the sidecar has logged every one of ``events``.

        ``token_written``: the first token is in the volume;
        ``credentials_ready``: the credentials endpoint holds its first
        credentials (credentials-endpoint mode).
        """
        deadline = time.monotonic() + timeout
        missing = set(events)
        what = "credentials" if "credentials_ready" in events else "a token"
        seen = 0
        while time.monotonic() < deadline:
            self.sidecar.reload()
            logs = self.sidecar.logs(stdout=False, stderr=True).decode(errors="replace")
            for line in logs.splitlines()[seen:]:
                seen += 1
                missing.discard(_event(line) or "")
            if not missing:
                return
            if self.sidecar.status in ("exited", "dead"):
                raise DockerFailure(
                    f"the sidecar stopped before {_doing(what)}; its log:\n"
                    + _tail(logs),
                    where=self.sidecar_name,
                )
            if progress:
                progress(deadline - time.monotonic())
            time.sleep(0.05)
        logs = self.sidecar.logs(stdout=False, stderr=True).decode(errors="replace")
        raise DockerFailure(
            f"no {what.removeprefix('a ')} within {timeout:.0f}s"
            " (--first-token-timeout); the sidecar's log:\n" + _tail(logs),
            where=self.sidecar_name,
        )

    # -- tear down ------------------------------------------------------------

    def remove(self) -> None:
        """Stop and remove the sidecar and the volumes; never raises."""
        remove_session(self.client, self.session_id)


def _doing(what: str) -> str:
    return "serving credentials" if what == "credentials" else "writing a token"


def _event(line: str) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record.get("event") if isinstance(record, dict) else None


def _tail(logs: str, lines: int = 20) -> str:
    return "\n".join(logs.strip().splitlines()[-lines:]) or "(empty)"


def _credentials_tar(files: dict[str, Path]) -> bytes:
    """A tar of the credential files, readable inside the sidecar only.

    The volume holding them is mounted into the sidecar alone, so the files
    are world-readable there: the agent's uid need not match the owner the
    Docker engine gives them.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in files.items():
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise DockerFailure(
                    f"cannot read credential file: {exc.strerror}", where=str(path)
                ) from exc
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o444
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def remove_session(client: Any, session_id: str) -> list[str]:
    """Remove every container and volume labelled with ``session_id``."""
    import docker.errors

    removed = []
    selector = {"label": f"{LABEL_SESSION}={session_id}"}
    for container in client.containers.list(all=True, filters=selector):
        if container.labels.get(LABEL_ROLE) != "sidecar":
            continue  # the app's container is the user's to keep or remove
        try:
            if container.status == "running":
                container.stop(timeout=5)
            container.remove(force=True)
            removed.append(container.name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            log.warning("could not remove container %s: %s", container.name, exc)
    for volume in client.volumes.list(filters=selector):
        try:
            volume.remove()
            removed.append(volume.name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            log.info(
                "volume %s is still in use by a container (an app kept without"
                " --rm, or one still running); `webid-agent docker cleanup`"
                " removes it once that container is gone",
                volume.name,
            )
    return removed
