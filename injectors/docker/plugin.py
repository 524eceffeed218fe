"""Registration of the Docker injector with the webid-agent command line."""

from __future__ import annotations

from agent import InjectorPlugin
from injectors.docker.cli import docker_group

PLUGIN = InjectorPlugin(
    name="docker",
    summary="wrap docker run with a token sidecar",
    commands=(docker_group,),
)
