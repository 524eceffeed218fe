#!/usr/bin/env bash
# Set up (see setup.sh), then run the demo: a local OpenID provider issues a
# token, the agent sidecar keeps it in a volume, and an app container using
# only the AWS SDK assumes a role through the local STS stand-in.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec python3 -m devenv.quickstart "$@"
