"""Command line for the local dev environment: ``python -m devenv up``.

``up`` starts the local IdP and the STS stand-in in the foreground, writes
``<dir>/env.json`` describing them (written atomically once both are ready,
removed again on exit) and runs until SIGTERM or Ctrl-C. Client secrets are
written to ``<dir>/<client_id>.secret`` (mode 0600), never into env.json.

Example::

    python -m devenv up --dir .devenv &
    until [ -f .devenv/env.json ]; do sleep 0.2; done
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from devenv.idp import (
    DEFAULT_AUDIENCE,
    DEFAULT_SCOPE,
    Idp,
    start_idp,
    write_private_file,
)
from devenv.sts import REGION, Sts, create_role, idp_token_validator, start_sts


def build_env(idp: Idp, sts: Sts, role_arn: str, directory: Path) -> dict[str, Any]:
    """Describe the running services; writes the client secret files."""
    clients: dict[str, Any] = {}
    for client in idp.clients.values():
        entry: dict[str, Any] = {"auth_method": client.auth_method}
        if client.ttl is not None:
            entry["ttl"] = client.ttl
        if client.secret is not None:
            secret_file = directory / f"{client.client_id}.secret"
            write_private_file(secret_file, client.secret.encode())
            entry["secret_file"] = str(secret_file)
        if client.cert_file is not None and client.key_file is not None:
            entry["cert_file"] = str(client.cert_file)
            entry["key_file"] = str(client.key_file)
            entry["thumbprint_sha1"] = client.thumbprint_sha1
        clients[client.client_id] = entry
    return {
        "issuer": idp.issuer,
        "ca_file": str(idp.ca_file),
        "discovery_url": idp.discovery_url,
        "token_endpoint": idp.token_endpoint,
        "jwks_uri": idp.jwks_uri,
        "audience": idp.audience,
        "scope": DEFAULT_SCOPE,
        "clients": clients,
        "sts_endpoint": sts.endpoint_url,
        "region": REGION,
        "role_arn": role_arn,
    }


def cmd_up(args: argparse.Namespace) -> int:
    """Run IdP + STS until signalled; returns the process exit status."""
    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    env_file = directory / "env.json"
    env_file.unlink(missing_ok=True)

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        print(f"devenv: got {signal.Signals(signum).name}, stopping", flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    idp = start_idp(directory, audience=args.audience, ttl=args.ttl, port=args.idp_port)
    sts: Sts | None = None
    try:
        validator = None if args.no_token_check else idp_token_validator(idp)
        sts = start_sts(args.sts_port, token_validator=validator)
        role_arn = create_role(
            sts, args.role_name, issuer=idp.issuer, audience=idp.audience
        )
        env = build_env(idp, sts, role_arn, directory)
        tmp = env_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(env, indent=2) + "\n")
        os.replace(tmp, env_file)

        print(f"devenv: IdP   {idp.issuer}  (CA {idp.ca_file})")
        print(f"devenv: STS   {sts.endpoint_url}  role {role_arn}")
        check = "off" if args.no_token_check else "on"
        print(f"devenv: STS token check {check}; clients: {', '.join(idp.clients)}")
        print(f"devenv: ready; wrote {env_file}", flush=True)

        while not stop.wait(0.5):
            if idp.process is None or idp.process.poll() is not None:
                print(f"devenv: IdP exited; see {idp.log_file}", file=sys.stderr)
                return 1
        return 0
    finally:
        env_file.unlink(missing_ok=True)
        if sts is not None:
            sts.stop()
        idp.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m devenv``."""
    parser = argparse.ArgumentParser(prog="python -m devenv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start IdP + STS in the foreground")
    up.add_argument("--dir", default=".devenv", help="state directory")
    up.add_argument("--idp-port", type=int, default=0, help="IdP port (0 = free)")
    up.add_argument("--sts-port", type=int, default=0, help="STS port (0 = free)")
    up.add_argument("--audience", default=DEFAULT_AUDIENCE)
    up.add_argument("--ttl", type=int, default=300, help="token lifetime, seconds")
    up.add_argument("--role-name", default="webid-agent-dev")
    up.add_argument(
        "--no-token-check",
        action="store_true",
        help="let STS accept any token (plain moto behaviour)",
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        return cmd_up(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
