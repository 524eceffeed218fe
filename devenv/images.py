"""Build the Docker images the tests and the quickstart need, entirely locally.

Nothing here pulls from an image registry. The images are:

``webid-base:bookworm``
    A minimal Debian bookworm root filesystem made with ``debootstrap``
    (python3, python3-venv, ca-certificates) and loaded with ``docker import``.
``webid-app:test``
    The base plus a venv at ``/opt/app`` holding boto3, installed offline from
    wheels downloaded on the host. Its default command runs ``whoami.py``,
    which prints ``ASSUMED <arn>`` from the web identity credentials that
    botocore finds in the environment.
``webid-agent:dev``
    The repository's own ``Dockerfile`` built on the base image from wheels
    made on the host with ``pip wheel``.

Every ``ensure_*`` function is idempotent: it returns at once when the image
already exists (and, for the derived images, when a label records that it was
built from the same inputs), unless ``force=True``. Run this module to build
them by hand::

    python -m devenv.images all            # or: base | app | agent
    python -m devenv.images agent --force
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BASE_TAG = "webid-base:bookworm"
APP_TAG = "webid-app:test"
AGENT_TAG = "webid-agent:dev"

SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
INPUTS_LABEL = "org.webid-agent.devenv.inputs"
STAGE_LABEL = "org.webid-agent.stage=build"

DEVENV_DIR = Path(__file__).resolve().parent
REPO_ROOT = DEVENV_DIR.parent
APP_DIR = DEVENV_DIR / "app"
# Where downloaded wheels for the app image are kept between runs (gitignored).
CACHE_DIR = REPO_ROOT / ".devenv" / "cache"

# Paths hashed to decide whether the agent image is stale.
AGENT_SOURCES = (
    "agent",
    "injectors",
    "templates",
    "setup.cfg",
    "pyproject.toml",
    "Dockerfile",
    ".dockerignore",
)
_SKIP_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}

APT_SOURCES = Path("/etc/apt/sources.list")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")


def _say(message: str) -> None:
    print(f"[images] {message}", flush=True)


def _run(cmd: Sequence[str | Path], **kwargs: Any) -> None:
    args = [str(part) for part in cmd]
    _say("$ " + " ".join(args))
    subprocess.run(args, check=True, **kwargs)


def _docker_env() -> dict[str, str]:
    # The classic builder: it uses images from the local store without trying a
    # registry and needs no buildx plugin. A caller's choice still wins.
    env = dict(os.environ)
    env.setdefault("DOCKER_BUILDKIT", "0")
    return env


def _client() -> Any:
    import docker

    return docker.from_env(timeout=30)


def docker_available() -> bool:
    """Tell whether a Docker daemon answers through the ``docker`` SDK."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _image_attrs(tag: str) -> dict[str, Any] | None:
    from docker.errors import ImageNotFound

    client = _client()
    try:
        return dict(client.images.get(tag).attrs)
    except ImageNotFound:
        return None
    finally:
        client.close()


def _image_label(attrs: dict[str, Any], name: str) -> str | None:
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    value = labels.get(name)
    return str(value) if value is not None else None


def _require_image(tag: str) -> dict[str, Any]:
    attrs = _image_attrs(tag)
    if attrs is None:
        raise RuntimeError(f"image {tag} is missing after it was built")
    return attrs


def _forget_old(old: dict[str, Any] | None, tag: str) -> None:
    """Remove the image that ``tag`` named before a rebuild, if nothing uses it."""
    if old is None or old["Id"] == _require_image(tag)["Id"]:
        return
    from docker.errors import APIError

    client = _client()
    try:
        client.images.remove(old["Id"], noprune=False)
        _say(f"{tag}: removed the previous image {old['Id'][7:19]}")
    except APIError:
        pass  # still used by a container or a child image
    finally:
        client.close()


def _report(tag: str, started: float, old: dict[str, Any] | None = None) -> None:
    _forget_old(old, tag)
    attrs = _require_image(tag)
    size_mb = int(attrs.get("Size", 0)) / 1e6
    _say(f"{tag}: built in {time.monotonic() - started:.1f}s, {size_mb:.0f} MB")


# --- the Debian mirror -----------------------------------------------------


def _one_line_entries(text: str) -> Iterator[tuple[str, str, list[str]]]:
    """Yield (uri, suite, components) from one-line ``deb`` entries."""
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            yield words[0], words[1], words[2:]


def _deb822_entries(text: str) -> Iterator[tuple[str, str, list[str]]]:
    """Yield (uri, suite, components) from deb822 ``.sources`` stanzas."""
    stanzas: list[dict[str, str]] = [{}]
    key = ""
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            stanzas.append({})
            continue
        if raw[0] in " \t" and key:
            stanzas[-1][key] += " " + raw.strip()
            continue
        name, _, value = raw.partition(":")
        key = name.strip().lower()
        stanzas[-1][key] = value.strip()
    for stanza in stanzas:
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        components = stanza.get("components", "").split()
        for uri in stanza.get("uris", "").split():
            for suite in stanza.get("suites", "").split():
                yield uri, suite, components


def debian_mirror(suite: str = SUITE) -> str:
    """Return the Debian mirror URI that the host's apt uses for ``suite``.

    ``WEBID_DEBIAN_MIRROR`` overrides it. Only active ``sources.list`` files
    and ``*.list`` / ``*.sources`` files in ``sources.list.d`` are read.
    """
    override = os.environ.get("WEBID_DEBIAN_MIRROR")
    if override:
        return override
    files = [APT_SOURCES] if APT_SOURCES.is_file() else []
    if APT_SOURCES_DIR.is_dir():
        files += sorted(APT_SOURCES_DIR.glob("*.list"))
        files += sorted(APT_SOURCES_DIR.glob("*.sources"))
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        parse = _deb822_entries if path.suffix == ".sources" else _one_line_entries
        for uri, entry_suite, components in parse(text):
            if entry_suite == suite and "main" in components:
                return uri
    raise RuntimeError(
        f"no apt source for '{suite} main' found in /etc/apt; "
        "set WEBID_DEBIAN_MIRROR to a Debian mirror URI"
    )


# --- base image --------------------------------------------------------------


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    with open("/proc/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts if line.strip()]
    return sorted((p for p in points if p.startswith(prefix)), reverse=True)


def _remove_rootfs(root: Path) -> None:
    # A failed debootstrap can leave /proc or /sys mounted inside the tree.
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=True)


# Like Debian's slim images: no manuals, docs (but copyright notices) or message
# catalogues, now or from packages that derived images install later.
_DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""


def _drop_docs(rootfs: Path) -> None:
    (rootfs / "etc/dpkg/dpkg.cfg.d/webid-slim").write_text(_DPKG_EXCLUDES)
    for top in ("usr/share/doc", "usr/share/man", "usr/share/info"):
        for path in sorted((rootfs / top).rglob("*"), reverse=True):
            if path.is_symlink() or path.is_file():
                if path.name != "copyright":
                    path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    locale = rootfs / "usr/share/locale"
    for path in locale.iterdir() if locale.is_dir() else ():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)


def _slim_rootfs(rootfs: Path) -> None:
    """Drop apt caches, package lists, docs and debootstrap leftovers."""
    _drop_docs(rootfs)
    patterns = (
        "var/cache/apt/*.bin",
        "var/cache/apt/archives/*.deb",
        "var/cache/apt/archives/partial/*",
        "var/lib/apt/lists/*",
        "var/cache/debconf/*-old",
        "var/log/apt/*",
        "var/log/dpkg.log",
        "var/log/bootstrap.log",
        "debootstrap",
    )
    for pattern in patterns:
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.name != "lock":
                path.unlink()


def ensure_base_image(tag: str = BASE_TAG, *, force: bool = False) -> str:
    """Make a minimal Debian bookworm image with python3 and load it as ``tag``.

    Runs ``debootstrap --variant=minbase`` from the host's apt mirror into a
    temporary directory (needs root), cleans apt caches, pipes the tree into
    ``docker import`` and removes the tree.
    """
    old = _image_attrs(tag)
    if not force and old is not None:
        _say(f"{tag}: present, skipping")
        return tag
    if os.geteuid() != 0:
        raise RuntimeError("debootstrap needs root to build the base image")
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install it)")
    mirror = debian_mirror()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="webid-rootfs-", dir="/var/tmp"))
    rootfs = workdir / "rootfs"
    try:
        _say(f"{tag}: debootstrap {SUITE} from {mirror}")
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(BASE_PACKAGES),
                SUITE,
                rootfs,
                mirror,
            ],
            stdout=subprocess.DEVNULL,
        )
        _run(["chroot", rootfs, "apt-get", "clean"])
        _slim_rootfs(rootfs)
        _say(f"{tag}: debootstrap done in {time.monotonic() - started:.1f}s")
        changes = [
            'CMD ["/bin/bash"]',
            "ENV LANG=C.UTF-8",
            f"LABEL {INPUTS_LABEL}=debootstrap-{SUITE}-minbase",
        ]
        import_cmd = ["docker", "import"]
        for change in changes:
            import_cmd += ["--change", change]
        import_cmd += ["-", tag]
        _say(f"$ tar -C {rootfs} -c . | " + " ".join(import_cmd))
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-c", "."],
            stdout=subprocess.PIPE,
        )
        try:
            subprocess.run(
                import_cmd, stdin=tar.stdout, stdout=subprocess.DEVNULL, check=True
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            if tar.wait() != 0:
                raise RuntimeError(f"tar of {rootfs} failed")
    finally:
        _remove_rootfs(workdir)
    _report(tag, started, old)
    return tag


# --- derived images ------------------------------------------------------------


def _hash_paths(root: Path, names: Iterable[str], extra: Iterable[str] = ()) -> str:
    digest = hashlib.sha256()
    for name in names:
        top = root / name
        files = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in files:
            if not path.is_file() or _SKIP_PARTS.intersection(path.parts):
                continue
            if path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    for item in extra:
        digest.update(item.encode() + b"\0")
    return digest.hexdigest()[:16]


def _up_to_date(tag: str, inputs: str, force: bool) -> bool:
    attrs = _image_attrs(tag)
    if force or attrs is None:
        return False
    if _image_label(attrs, INPUTS_LABEL) == inputs:
        _say(f"{tag}: up to date ({inputs}), skipping")
        return True
    _say(f"{tag}: inputs changed, rebuilding")
    return False


def _docker_build(
    context: Path, tag: str, inputs: str, build_args: dict[str, str]
) -> None:
    cmd: list[str | Path] = ["docker", "build", "--rm", "-t", tag]
    cmd += ["--label", f"{INPUTS_LABEL}={inputs}"]
    for name, value in build_args.items():
        cmd += ["--build-arg", f"{name}={value}"]
    cmd.append(context)
    _run(cmd, env=_docker_env())
    # The classic builder keeps each multi-stage build's first stage as an
    # untagged image; drop those (only ours, marked by a label in the stage).
    client = _client()
    try:
        client.images.prune(filters={"dangling": True, "label": STAGE_LABEL})
    finally:
        client.close()


def _base_id(base: str) -> str:
    return str(_require_image(base)["Id"])


@contextmanager
def _scratch_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _download_app_wheels(dest: Path, requirement: str) -> None:
    machine = platform.machine() or "x86_64"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--platform",
            f"manylinux2014_{machine}",
            "--dest",
            dest,
            requirement,
        ]
    )


def ensure_app_image(
    tag: str = APP_TAG,
    *,
    base: str = BASE_TAG,
    requirement: str = "boto3",
    force: bool = False,
) -> str:
    """Make the test app image: the base plus boto3 and ``whoami.py``.

    boto3 and its dependencies are downloaded as wheels on the host and
    installed in the image with ``pip install --no-index``.
    """
    ensure_base_image(base)
    inputs = _hash_paths(
        APP_DIR, ("Dockerfile", "whoami.py"), [requirement, _base_id(base)]
    )
    if _up_to_date(tag, inputs, force):
        return tag
    old = _image_attrs(tag)
    started = time.monotonic()
    wheels = CACHE_DIR / "app-wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    _download_app_wheels(wheels, requirement)
    with _scratch_dir("webid-app-") as context:
        shutil.copy2(APP_DIR / "Dockerfile", context / "Dockerfile")
        shutil.copy2(APP_DIR / "whoami.py", context / "whoami.py")
        shutil.copytree(wheels, context / "wheels")
        _docker_build(
            context,
            tag,
            inputs,
            {"BASE_IMAGE": base, "REQUIREMENT": requirement},
        )
    _report(tag, started, old)
    return tag


def agent_inputs_hash(repo: Path, base_id: str = "") -> str:
    """Hash the agent image's inputs: its sources, packaging and base image."""
    return _hash_paths(repo, AGENT_SOURCES, [base_id])


def _release_tag(tag: str) -> str:
    """Also name the dev agent image as the release the CLI defaults to.

    ``webid-agent docker`` and the injectors default to ``webid-agent:VERSION``;
    after the quickstart that image exists locally, so the README's examples
    run as written.
    """
    if tag == AGENT_TAG:
        from agent import __version__

        client = _client()
        try:
            client.images.get(tag).tag("webid-agent", __version__)
        finally:
            client.close()
    return tag


def ensure_agent_image(
    repo: Path = REPO_ROOT,
    tag: str = AGENT_TAG,
    base: str = BASE_TAG,
    *,
    force: bool = False,
) -> str:
    """Build ``repo``'s Dockerfile on ``base`` from freshly made wheels.

    The image carries a label with a hash of agent/, injectors/, templates/,
    the packaging files, the Dockerfile and the base image id; a change to any
    of them rebuilds it, so tests never run a stale agent.
    """
    repo = Path(repo).resolve()
    ensure_base_image(base)
    inputs = agent_inputs_hash(repo, _base_id(base))
    if _up_to_date(tag, inputs, force):
        return _release_tag(tag)
    old = _image_attrs(tag)
    started = time.monotonic()
    wheels = repo / "dist" / "wheels"
    if wheels.exists():
        shutil.rmtree(wheels)
    wheels.mkdir(parents=True)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", repo, "-w", wheels])
    _say(f"{tag}: wheels ready in {time.monotonic() - started:.1f}s")
    _docker_build(repo, tag, inputs, {"BASE_IMAGE": base})
    _report(tag, started, old)
    return _release_tag(tag)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=("base", "app", "agent", "all"))
    parser.add_argument("--force", action="store_true", help="rebuild anyway")
    args = parser.parse_args(argv)
    if not docker_available():
        print("the Docker daemon is not reachable", file=sys.stderr)
        return 1
    if args.which in ("base", "all"):
        ensure_base_image(force=args.force)
    if args.which in ("app", "all"):
        ensure_app_image(force=args.force)
    if args.which in ("agent", "all"):
        ensure_agent_image(force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
