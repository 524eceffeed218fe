"""The injector plugin interface and its discovery through entry points.

A plugin is an :class:`InjectorPlugin` object exposed under the entry-point
group ``webid_agent.injectors``; the entry point's name is the platform name.
Plugins are loaded only when one of their commands is invoked, so a command of
the engine never pays for importing an orchestrator's libraries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from agent.errors import ConfigError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["ENTRY_POINT_GROUP", "InjectorPlugin", "available", "load"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "webid_agent.injectors"


@dataclass(frozen=True)
class InjectorPlugin:
    """What a platform plugin contributes to the ``webid-agent`` command line.

    ``inject`` is mounted as ``webid-agent inject NAME``; each of ``commands``
    is mounted at the top level (``serve-k8s``, ``docker``...).
    """

    name: str
    summary: str
    inject: click.Command | None = None
    commands: tuple[click.Command, ...] = field(default_factory=tuple)


def _entry_points() -> dict[str, EntryPoint]:
    # imported here: the engine's own commands never need plugin metadata
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Names of the installed plugins, without importing them."""
    return sorted(_entry_points())


def load(name: str) -> InjectorPlugin:
    """Import one plugin by platform name."""
    eps = _entry_points()
    if name not in eps:
        raise ConfigError(
            f"no injector plugin named {name!r} (installed: {', '.join(sorted(eps))})"
        )
    plugin = eps[name].load()
    if not isinstance(plugin, InjectorPlugin):
        raise ConfigError(
            f"entry point {eps[name].value!r} is not an InjectorPlugin",
            where=f"{ENTRY_POINT_GROUP}:{name}",
        )
    log.debug("loaded injector plugin %s from %s", name, eps[name].value)
    return plugin
