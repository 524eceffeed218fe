"""Registration of the Docker injector with the webid-agent command line."""

from __future__ import annotations

from agent.plugins import InjectorPlugin

PLUGIN = InjectorPlugin(name="docker", summary="wrap docker run with a token sidecar")
