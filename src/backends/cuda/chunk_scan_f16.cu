// chunk_scan_f16.cu: the chunked scan kernel for f16 inputs, on tensor cores (chunk_scan_tc.cuh);
// one dtype per file, so the instantiations compile in parallel.
#include "backends/cuda/chunk_scan_tc.cuh"
#include "backends/cuda/chunk_scan_tma.cuh"
#include "backends/cuda/chunk_scan_tma_bwd.cuh"
#include "backends/cuda/chunk_scan_wgmma.cuh"

namespace tnl::cuda {
void launch_chunk_scan_f16(const ScanParams& p, const Slopes& sl, bool local_pass,
                           cudaStream_t stream) {
  if (tma::serves_fused(p, local_pass)) return tma::launch_fused<__half>(p, sl, stream);
  if (tma::serves(p, local_pass)) return tma::launch<__half>(p, sl, stream);
  if (wg::serves(p, local_pass)) return wg::launch<__half>(p, sl, stream);
  tc::launch<__half>(p, sl, local_pass, stream);
}
int chunk_scan_tma_blocks_f16(const ScanParams& p) {
  if (tma::serves_fused(p, false)) return 1;
  return tma::serves(p, false) ? tma::column_blocks(p) : 0;
}
int chunk_scan_tiles_per_sm_f16(const ScanParams& p) {
  if (chunk_scan_tma_blocks_f16(p) > 0) return tma::tiles_per_sm(p);
  return tc::tiles_per_sm<__half>(p.dk, p.dv, p.compensated);
}
bool chunk_scan_fused_tma_f16(const ScanParams& p) { return tma::serves_fused(p, false); }
}  // namespace tnl::cuda
