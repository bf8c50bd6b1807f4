// chunk_scan_f32.cu: the chunked scan kernel instantiated for f32 inputs (fp32 FMA,
// chunk_scan_impl.cuh) (one dtype per file, so
// the instantiations compile in parallel).
#include "backends/cuda/chunk_scan_impl.cuh"

namespace tnl::cuda {
void launch_chunk_scan_f32(const ScanParams& p, const Slopes& sl, bool local_pass,
                           cudaStream_t stream) {
  scan::launch<float>(p, sl, local_pass, stream);
}
size_t chunk_scan_smem_bytes_simt(int dk) { return scan::smem_bytes_for(dk); }
}  // namespace tnl::cuda
