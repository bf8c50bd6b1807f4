// chunk_scan_f32.cu: the chunked scan kernel instantiated for f32 inputs (one dtype per file, so
// the instantiations compile in parallel).
#include "backends/cuda/chunk_scan_impl.cuh"

namespace tnl::cuda {
void launch_chunk_scan_f32(const ScanParams& p, const Slopes& sl, bool local_pass,
                           cudaStream_t stream) {
  scan::launch<float>(p, sl, local_pass, stream);
}
}  // namespace tnl::cuda
