#!/usr/bin/env bash
# Install and start everything webid-agent's demo and tests need on Debian 12:
# Debian packages (Docker engine, debootstrap, Compose v1 for config checks),
# a running dockerd, the Python package with its test extra, the local IdP's
# node packages and the locally built images. Safe to run again: each step
# skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*" >&2; }
PYTHON=${PYTHON:-python3}

# Debian packages
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# a running Docker engine
if ! docker info >/dev/null 2>&1; then
    say "starting dockerd (log: /tmp/webid-dockerd.log)"
    nohup dockerd >/tmp/webid-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { say "dockerd did not start"; tail -20 /tmp/webid-dockerd.log; exit 1; }
fi

# the Python package, editable, with the test tools
say "installing webid-agent with its test extra"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e '.[test]'

# node packages of the local OpenID provider
say "installing the local IdP's node packages"
"$PYTHON" -c 'from devenv.idp import ensure_node_modules; ensure_node_modules()'

# images built here (nothing is pulled from a registry)
say "building the local images (the first time takes about two minutes)"
"$PYTHON" -m devenv.images all
