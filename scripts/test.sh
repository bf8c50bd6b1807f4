#!/usr/bin/env bash
# test.sh: install what is needed, build (CUDA sources too when nvcc is present), and run every
# test that a machine without a GPU can run (ctest label `cpu`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build -L cpu --output-on-failure --timeout 900 -j "$(nproc)"
