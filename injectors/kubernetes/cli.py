"""The Kubernetes commands: ``inject k8s``, ``serve-k8s`` and ``k8s manifests``.

The options that decide *what* is injected are shared by the three commands
(``manifests`` forwards them to the webhook's Deployment), so offline
injection and the webhook give the same pods for the same flags. Every option
reads ``WEBID_<NAME>`` and the same key from the global ``--config`` file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from agent import (
    InputError,
    UsageError,
    __version__,
    config_default,
    output_options,
    output_target,
    read_input,
    table_options,
    write_output,
)
from injectors.kubernetes.options import (
    InjectorConfig,
    PodDefaults,
    load_mapping,
    parse_kubernetes_version,
    read_mapping,
)

__all__ = ["inject_k8s", "k8s_group", "serve_k8s"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# (declaration, click attributes): what to inject, shared by every command
_INJECTION_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--authority", {"help": "IdP URL (Entra authority or OIDC issuer), https."}),
    (
        "--provider",
        {"type": click.Choice(["oidc", "entra"]), "help": "IdP kind [oidc]."},
    ),
    ("--tenant-id", {"help": "Entra tenant, appended to the authority."}),
    ("--audience", {"help": "Default token audience (annotation audience wins)."}),
    ("--scope", {"help": "Default scope(s) (annotation scope wins)."}),
    ("--issuer", {"help": "Expected iss claim, if not the discovered issuer."}),
    ("--image", {"help": f"Agent image [webid-agent:{__version__}]."}),
    (
        "--image-pull-policy",
        {"type": click.Choice(["Always", "IfNotPresent", "Never"])},
    ),
    (
        "--client-secret-name",
        {
            "metavar": "SECRET",
            "help": "Default Secret with the IdP client credential, in the pod's "
            "namespace (annotation client-secret wins) [webid-agent-client].",
        },
    ),
    (
        "--client-auth",
        {
            "type": click.Choice(["secret", "certificate"]),
            "help": "Secret keys client-id + client-secret, or client-id + "
            "tls.crt + tls.key [secret].",
        },
    ),
    (
        "--ca-configmap",
        {
            "metavar": "CONFIGMAP",
            "help": "ConfigMap (key ca.crt, in the pod's namespace) with the "
            "IdP's CA bundle.",
        },
    ),
    (
        "--native-sidecar",
        {
            "type": click.Choice(["auto", "always", "never"]),
            "help": "Refresh sidecar as a native sidecar (init container with "
            "restartPolicy Always). auto: when --kubernetes-version is 1.29 or "
            "later, the pod asks (annotation native-sidecar), or the pod already "
            "has one [auto].",
        },
    ),
    (
        "--kubernetes-version",
        {"metavar": "X.Y", "help": "The cluster's version, e.g. 1.29."},
    ),
    (
        "--token-deadline",
        {"type": click.IntRange(5, 3600), "help": "Init container deadline [60]."},
    ),
    (
        "--agent-port",
        {
            "type": click.IntRange(1, 65535),
            "help": "Sidecar health port in the pod [18081].",
        },
    ),
    (
        "--templates",
        {
            "type": click.Path(file_okay=False, path_type=Path),
            "help": "Folder searched first for kubernetes/*.j2 templates.",
        },
    ),
    (
        "--mapping",
        {
            "type": click.Path(dir_okay=False, path_type=Path),
            "help": "YAML file of default annotations per namespace / service "
            "account (see docs/kubernetes.md).",
        },
    ),
]


def _option_name(decl: str) -> str:
    return decl.lstrip("-").replace("-", "_")


def injection_options(func: F) -> F:
    """Add the shared injection options (env ``WEBID_<NAME>``, config file)."""
    return table_options(_INJECTION_OPTIONS)(func)


def config_from_options(options: dict[str, Any]) -> InjectorConfig:
    """Build and check the InjectorConfig from the shared options."""
    opts = {k: v for k, v in options.items() if v not in (None, "")}
    version = (
        parse_kubernetes_version(
            str(opts["kubernetes_version"]), where="--kubernetes-version"
        )
        if "kubernetes_version" in opts
        else None
    )
    defaults = InjectorConfig(authority="")
    return InjectorConfig(
        authority=str(opts.get("authority", "")),
        provider=str(opts.get("provider", defaults.provider)),
        image=str(opts.get("image", defaults.image)),
        image_pull_policy=opts.get("image_pull_policy"),
        tenant_id=opts.get("tenant_id"),
        audience=opts.get("audience"),
        scope=opts.get("scope"),
        issuer=opts.get("issuer"),
        client_secret_name=str(
            opts.get("client_secret_name", defaults.client_secret_name)
        ),
        client_auth=opts.get("client_auth", defaults.client_auth),
        ca_configmap=opts.get("ca_configmap"),
        native_sidecar=opts.get("native_sidecar", defaults.native_sidecar),
        kubernetes_version=version,
        token_deadline=int(opts.get("token_deadline", defaults.token_deadline)),
        agent_port=int(opts.get("agent_port", defaults.agent_port)),
        templates_dir=Path(str(opts["templates"])) if "templates" in opts else None,
    ).validate()


def _split_options(options: dict[str, Any]) -> dict[str, Any]:
    names = {_option_name(decl) for decl, _ in _INJECTION_OPTIONS}
    return {k: options.pop(k) for k in list(options) if k in names}


# -- inject k8s ----------------------------------------------------------------


@click.command("k8s")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@output_options
@click.option(
    "-n",
    "--namespace",
    default="default",
    show_default=True,
    help="Namespace for documents without one (picks mapping defaults).",
)
@injection_options
def inject_k8s(
    file: Path, output: Path | None, in_place: bool, namespace: str, **options: Any
) -> None:
    """Inject webid-agent into every opted-in pod template of FILE ('-': stdin).

    Reads Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and
    CronJobs (multi-document YAML; other documents pass through) and prints
    the result for kubectl. Pods opt in with the annotations of the webhook
    (webid-agent.io/inject: "true", role-arn, ...). Injecting twice gives the
    same output as injecting once.

    The output is re-written YAML: every document, field and key order is
    kept, but comments are dropped, flow style becomes block style and
    anchors are expanded (unlike 'inject compose', which keeps comments and
    layout). Keep the commented source; treat the output as generated.

    \b
    Example:
      webid-agent inject k8s deploy.yaml --authority https://login.example/t1 \\
          --audience sts.amazonaws.com | kubectl apply -f -
    """
    import yaml

    from injectors.kubernetes.offline import inject_documents, load_documents

    # settings and input
    injection = _split_options(options)
    config = config_from_options(injection)
    defaults: PodDefaults | None = (
        load_mapping(Path(injection["mapping"])) if injection.get("mapping") else None
    )
    from_stdin = str(file) == "-"
    target = output_target(
        source=None if from_stdin else file, output=output, in_place=in_place
    )
    source = "<stdin>" if from_stdin else str(file)
    text = read_input(file, where=source, error=InputError)

    # inject and print
    result = inject_documents(
        load_documents(text, source=source),
        config=config,
        defaults=defaults,
        source=source,
        namespace=namespace,
    )
    for warning in result.warnings:
        click.echo(f"webid-agent: warning: {warning}", err=True)

    # libyaml's emitter when PyYAML was built with it (the pure-Python one
    # otherwise); both write the same YAML, the C one ten times faster
    base: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class _Dumper(base):  # type: ignore[valid-type,misc]
        def ignore_aliases(self, data: Any) -> bool:
            return True

    try:
        rendered = yaml.dump_all(
            result.documents,
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            width=4096,
        )
    except RecursionError:
        raise InputError("nested too deeply to write back", where=source) from None
    write_output(rendered, target)
    log.info("injected %d pod template(s) from %s", len(result.injected), source)


# -- serve-k8s -------------------------------------------------------------------


def _required_path(value: Any, option: str) -> Path:
    """A required file option's path.

    click's ``required`` does not see through a default read from the
    ``--config`` file, so the check is here.
    """
    if value is None or str(value) == "":
        name = option.removeprefix("--").replace("-", "_")
        raise UsageError(
            f"required: give {option} (or WEBID_{name.upper()}, or {name} in the"
            " --config file)",
            where=option,
        )
    return Path(value)


@click.command("serve-k8s")
@click.option(
    "--listen",
    default=config_default("webhook_listen", "0.0.0.0:8443"),  # noqa: S104 - in a pod
    envvar="WEBID_WEBHOOK_LISTEN",
    show_default="0.0.0.0:8443",
    help="HTTPS address of the admission endpoint /mutate.",
)
@click.option(
    "--metrics-listen",
    default=config_default("metrics_listen", "0.0.0.0:8080"),  # noqa: S104
    envvar="WEBID_METRICS_LISTEN",
    show_default="0.0.0.0:8080",
    help="Plain HTTP address of /healthz, /readyz and /metrics.",
)
@click.option(
    "--tls-cert-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=config_default("tls_cert_file"),
    envvar="WEBID_TLS_CERT_FILE",
    help="Serving certificate (PEM, chain allowed); reloaded when it changes."
    " Required.",
)
@click.option(
    "--tls-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=config_default("tls_key_file"),
    envvar="WEBID_TLS_KEY_FILE",
    help="Private key of the serving certificate; reloaded with it. Required.",
)
@click.option(
    "--tls-min-version",
    type=click.Choice(["1.2", "1.3"]),
    default=config_default("tls_min_version", "1.2"),
    envvar="WEBID_TLS_MIN_VERSION",
    show_default="1.2",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1024, 64 * 1024 * 1024),
    default=config_default("max_body_bytes", 4 * 1024 * 1024),
    envvar="WEBID_MAX_BODY_BYTES",
    show_default="4 MiB",
    help="Larger AdmissionReviews are refused with 413.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(0.1, 300),
    default=config_default("request_timeout", 10.0),
    envvar="WEBID_REQUEST_TIMEOUT",
    show_default="10",
    help="Seconds a client may take for the TLS handshake and each read.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 10000),
    default=config_default("max_connections", 256),
    envvar="WEBID_MAX_CONNECTIONS",
    show_default="256",
    help="Open connections at most; more are closed at once.",
)
@click.option(
    "--reload-interval",
    type=click.FloatRange(0, 3600),
    default=config_default("reload_interval", 5.0),
    envvar="WEBID_RELOAD_INTERVAL",
    show_default="5",
    help="Seconds between checks of the certificate and mapping files.",
)
@injection_options
def serve_k8s(**options: Any) -> None:
    """Serve the Kubernetes mutating admission webhook over HTTPS.

    POST /mutate takes an AdmissionReview (admission.k8s.io/v1 or v1beta1) and
    answers with a JSON Patch for pods that opt in. The certificate, key and
    mapping file are re-read when they change, without a restart. SIGTERM
    stops it cleanly.

    \b
    Example:
      webid-agent serve-k8s --tls-cert-file tls.crt --tls-key-file tls.key \\
          --authority https://login.example/t1 --audience sts.amazonaws.com
    """
    from injectors.kubernetes.webhook import ServerSettings, serve

    injection = _split_options(options)
    config = config_from_options(injection)
    settings = ServerSettings(
        listen=str(options["listen"]),
        metrics_listen=str(options["metrics_listen"]),
        cert_file=_required_path(options["tls_cert_file"], "--tls-cert-file"),
        key_file=_required_path(options["tls_key_file"], "--tls-key-file"),
        min_tls=str(options["tls_min_version"]),
        max_body=int(options["max_body_bytes"]),
        timeout=float(options["request_timeout"]),
        max_connections=int(options["max_connections"]),
        reload_interval=float(options["reload_interval"]),
        mapping_file=Path(injection["mapping"]) if injection.get("mapping") else None,
    )
    serve(config=config, settings=settings)


# -- k8s manifests -----------------------------------------------------------------


@click.group("k8s")
def k8s_group() -> None:
    """Kubernetes helpers: the webhook's install manifests."""


@k8s_group.command("manifests")
@click.option(
    "--failure-policy",
    type=click.Choice(["Fail", "Ignore"]),
    required=True,
    help="When the webhook cannot answer: Fail refuses pod creation in the "
    "selected namespaces; Ignore creates pods without credentials. Required: "
    "see docs/kubernetes.md for the trade-off.",
)
@click.option("--namespace", default="webid-system", show_default=True)
@click.option("--name", default="webid-agent-webhook", show_default=True)
@click.option("--replicas", type=click.IntRange(1, 20), default=2, show_default=True)
@click.option(
    "--timeout-seconds",
    type=click.IntRange(1, 30),
    default=5,
    show_default=True,
    help="How long the API server waits for the webhook.",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CA of the serving certificate, for the caBundle; the certificate "
    "itself comes from the Secret --tls-secret (e.g. made by cert-manager).",
)
@click.option(
    "--tls-secret",
    default=None,
    help="Secret (kubernetes.io/tls) with the serving certificate [NAME-tls].",
)
@click.option(
    "--cert-days",
    type=click.IntRange(1, 3650),
    default=365,
    show_default=True,
    help="Validity of a generated certificate (without --ca-file).",
)
@click.option(
    "--namespace-label",
    metavar="KEY=VALUE",
    help="Only send pods of namespaces with this label to the webhook.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here (atomically) instead of standard output.",
)
@injection_options
def manifests(**options: Any) -> None:
    """Print the YAML that installs the webhook (pipe it to kubectl apply -f -).

    Namespace, ServiceAccount, ConfigMap (mapping file), Deployment, Service,
    PodDisruptionBudget and MutatingWebhookConfiguration. Without --ca-file a
    CA and serving certificate are generated into a Secret: the output then
    holds a private key, and the certificate must be renewed by re-running
    this command before it expires.

    \b
    Example:
      webid-agent k8s manifests --failure-policy Ignore \\
          --authority https://login.example/t1 --audience sts.amazonaws.com \\
          | kubectl apply -f -
    """
    from injectors.kubernetes.manifests import ManifestSettings, build_manifests

    injection = _split_options(options)
    config = config_from_options(injection)
    mapping_text = None
    if injection.get("mapping"):
        path = Path(injection["mapping"])
        mapping_text = read_mapping(path)
        load_mapping(path, mapping_text)  # refuse a bad mapping now, not later
    settings = ManifestSettings(
        namespace=options["namespace"],
        name=options["name"],
        replicas=options["replicas"],
        failure_policy=options["failure_policy"],
        timeout_seconds=options["timeout_seconds"],
        ca_file=options["ca_file"],
        tls_secret=options["tls_secret"] or f"{options['name']}-tls",
        cert_days=options["cert_days"],
        namespace_label=options["namespace_label"],
        mapping_text=mapping_text,
        forwarded={k: v for k, v in injection.items() if v not in (None, "")},
    )
    text, warnings = build_manifests(config=config, settings=settings)
    for warning in warnings:
        click.echo(f"webid-agent: warning: {warning}", err=True)
    write_output(text, options["output"])
