"""Registration of the Compose injector; imports only click and the public API."""

from __future__ import annotations

from agent import InjectorPlugin
from injectors.compose.command import inject_compose

PLUGIN = InjectorPlugin(
    name="compose",
    summary="add the token sidecar to a Docker Compose file",
    inject=inject_compose,
)
