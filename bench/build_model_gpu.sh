#!/usr/bin/env bash
# build_model_gpu.sh: sourced by the GPU model scripts (decode_env_ab.sh, generate_check.sh):
# configures and builds BUILD (with CUDA for sm_90a unless TNL_CUDA_GENCODE says otherwise,
# warnings as errors) with the tnl tool and the GPU model's tests (and the GPU sampler's); exits with a message naming
# the calling script when the build fails.
#   usage (in a script at the repository root): source bench/build_model_gpu.sh "$BUILD"
source scripts/deps-env.sh
_build=${1:?usage: source bench/build_model_gpu.sh BUILD}
_who=$(basename "$0" .sh)
SECONDS=0
cmake -S . -B "$_build" -G Ninja -DTNL_CUDA=ON -DTNL_WERROR=ON \
  "-DTNL_CUDA_GENCODE=${TNL_CUDA_GENCODE:--gencode=arch=compute_90a,code=sm_90a}" >/dev/null &&
  ninja -C "$_build" -j16 tnl_cli model_test_transnormer_cuda model_test_sample_cuda >/dev/null 2>&1 || { echo "$_who: build failed"; exit 1; }
echo "$_who: built in ${SECONDS}s"
