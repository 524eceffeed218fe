#!/usr/bin/env bash
# Set up (see setup.sh) and run the whole test suite. Extra arguments go to
# pytest, e.g. scripts/test.sh tests/engine -x
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
python3 -m pytest "$@"
code=$?
if [ "$code" -eq 5 ]; then
    echo "scripts/test.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$code"
