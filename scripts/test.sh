#!/usr/bin/env bash
# test.sh: install what is needed, build (CUDA sources too when nvcc is present), and run every
# test that a machine without a GPU can run (ctest label `cpu`), then install the Python package
# into a venv under build/ (offline, reusing build/) and run its tests (pytest, not `gpu`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build -L cpu --output-on-failure --timeout 900 -j "$(nproc)"

# The Python package: Debian's python3 (its python3-torch), a venv that sees the system packages.
venv=build/py-venv
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
TNL_BUILD_DIR="$PWD/build" "$venv/bin/python" -m pip install -q --no-build-isolation --no-index \
  --no-deps .
"$venv/bin/python" -m pytest -p no:cacheprovider -q tests/python -m "not gpu"
