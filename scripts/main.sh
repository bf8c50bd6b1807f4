#!/usr/bin/env bash
# main.sh: the main job on a fresh machine: install what is needed, build, then benchmark
# lightning attention on this machine's CPU (validated against the fp64 reference first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/tools/tnl bench attn "$@"
