"""Registration of the Kubernetes injector with the webid-agent command line.

Imports only click and the command definitions: the webhook server, YAML and
JSON Patch libraries load when a command runs.
"""

from __future__ import annotations

from agent import InjectorPlugin
from injectors.kubernetes.cli import inject_k8s, k8s_group, serve_k8s

PLUGIN = InjectorPlugin(
    name="k8s",
    summary="Kubernetes: admission webhook, offline injection, install manifests",
    inject=inject_k8s,
    commands=(serve_k8s, k8s_group),
)
