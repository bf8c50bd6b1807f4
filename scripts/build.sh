#!/usr/bin/env bash
# build.sh: configures and builds tnl into build/ (Release, warnings as errors).
# Extra arguments go to cmake's configure step, e.g. -DTNL_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTNL_WERROR=ON "$@" >/dev/null
cmake --build build --parallel "$(nproc)"
