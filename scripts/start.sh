#!/usr/bin/env bash
# Installs what is missing, builds the release preset and runs the example stack in the foreground
# (Ctrl-C stops it). Arguments go to `cumulo up`, e.g. scripts/start.sh --state-dir /tmp/cumulo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release cumulo cumulo-webapp
exec build/release/cumulo up examples/webapp/stack.yaml "$@"
