// chunk_scan_bf16.cu: the chunked scan kernel for bf16 inputs, on tensor cores (chunk_scan_tc.cuh);
// one dtype per file, so the instantiations compile in parallel.
#include "backends/cuda/chunk_scan_tc.cuh"
#include "backends/cuda/chunk_scan_tma.cuh"
#include "backends/cuda/chunk_scan_tma_bwd.cuh"
#include "backends/cuda/chunk_scan_wgmma.cuh"
#include "backends/cuda/prepass_tma.cuh"

namespace tnl::cuda {
void launch_chunk_scan_bf16(const ScanParams& p, const Slopes& sl, bool local_pass,
                           cudaStream_t stream) {
  if (tma::serves_prepass(p, local_pass)) return tma::launch_prepass<__nv_bfloat16>(p, sl, stream);
  if (tma::serves_fused(p, local_pass)) return tma::launch_fused<__nv_bfloat16>(p, sl, stream);
  if (tma::serves(p, local_pass)) return tma::launch<__nv_bfloat16>(p, sl, stream);
  if (wg::serves(p, local_pass)) return wg::launch<__nv_bfloat16>(p, sl, stream);
  tc::launch<__nv_bfloat16>(p, sl, local_pass, stream);
}
int chunk_scan_tma_blocks_bf16(const ScanParams& p) {
  if (tma::serves_fused(p, false)) return 1;
  return tma::serves(p, false) ? tma::column_blocks(p) : 0;
}
int chunk_scan_tiles_per_sm_bf16(const ScanParams& p) {
  if (chunk_scan_tma_blocks_bf16(p) > 0) return tma::tiles_per_sm(p);
  return tc::tiles_per_sm<__nv_bfloat16>(p.dk, p.dv, p.compensated);
}
// The GEMM pre-pass's rule where it serves (64 < dk, dv <= 128; the TMA pre-pass runs there on sm_90
// and was measured with this rule), else the TMA pre-pass's own.
int chunk_scan_prepass_split_bf16(const ScanParams& p, int sms) {
  if ((p.dk <= 64 || p.dv <= 64 || p.dk > 128) && tma::prepass_shape_ok(p)) return tma::prepass_split(p, sms);
  return tc::prepass_split<__nv_bfloat16>(p, sms);
}
bool chunk_scan_fused_tma_bf16(const ScanParams& p) { return tma::serves_fused(p, false); }
}  // namespace tnl::cuda
