"""Rendering of the Jinja templates that hold every piece of injected text.

Built-in templates live in ``templates/<platform>/`` (installed as the package
``webid_agent_templates``). A user directory given with ``--templates`` is
searched first, so it may override one template and inherit the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2

from agent.errors import ConfigError

__all__ = ["builtin_templates_dir", "render", "render_json", "render_yaml"]


def builtin_templates_dir() -> Path:
    """The folder of the templates shipped with webid-agent.

    In a source checkout that is ``templates/`` beside ``agent/``, so several
    checkouts installed in turn each render their own templates.
    """
    checkout = Path(__file__).resolve().parent.parent / "templates"
    if (checkout / "__init__.py").is_file():
        return checkout
    return Path(str(files("webid_agent_templates")))


def _environment(platform: str, templates_dir: Path | None) -> jinja2.Environment:
    if templates_dir is not None and not templates_dir.is_dir():
        raise ConfigError("templates folder not found", where=str(templates_dir))
    return _cached_environment(platform, templates_dir)


@lru_cache(maxsize=32)
def _cached_environment(
    platform: str, templates_dir: Path | None
) -> jinja2.Environment:
    # Jinja checks template files for changes itself (auto_reload), so one
    # environment per folder serves every render and compiles each template once.
    search = []
    if templates_dir is not None:
        search.append(str(templates_dir / platform))
    search.append(str(builtin_templates_dir() / platform))
    env = jinja2.Environment(  # noqa: S701 - renders YAML/HCL/JSON, never HTML
        loader=jinja2.FileSystemLoader(search),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tojson"] = lambda value: json.dumps(value)
    return env


def render(
    platform: str,
    name: str,
    context: dict[str, Any],
    *,
    templates_dir: Path | None = None,
) -> str:
    """Render ``templates/<platform>/<name>`` with ``context``."""
    env = _environment(platform, templates_dir)
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(f"template {platform}/{name} not found") from exc
    except jinja2.UndefinedError as exc:
        raise ConfigError(
            f"{exc.message}", where=f"template {platform}/{name}"
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            exc.message or "syntax error", where=f"{exc.filename}:{exc.lineno}"
        ) from exc


def _render_parsed(
    platform: str,
    name: str,
    context: dict[str, Any],
    *,
    templates_dir: Path | None,
    kind: str,
) -> Any:
    text = render(platform, name, context, templates_dir=templates_dir)
    parse: Callable[[str], Any]
    errors: tuple[type[Exception], ...]
    if kind == "JSON":
        parse, errors = json.loads, (json.JSONDecodeError,)
    else:
        import yaml

        parse, errors = yaml.safe_load, (yaml.YAMLError,)
    try:
        return parse(text)
    except errors as exc:
        raise ConfigError(
            f"rendered template is not valid {kind}: {exc}", where=f"{platform}/{name}"
        ) from exc


def render_yaml(
    platform: str,
    name: str,
    context: dict[str, Any],
    *,
    templates_dir: Path | None = None,
) -> Any:
    """Render a template and parse the result as YAML."""
    return _render_parsed(
        platform, name, context, templates_dir=templates_dir, kind="YAML"
    )


def render_json(
    platform: str,
    name: str,
    context: dict[str, Any],
    *,
    templates_dir: Path | None = None,
) -> Any:
    """Render a template and parse the result as JSON."""
    return _render_parsed(
        platform, name, context, templates_dir=templates_dir, kind="JSON"
    )
