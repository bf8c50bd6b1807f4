// torch_pickle.h: a restricted unpickler for PyTorch state dicts (the data.pkl of a torch.save
// archive). It understands exactly the opcodes and globals a state dict needs: OrderedDict,
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter, the typed storage classes, and the
// ('storage', type, key, location, numel) persistent ids. Any other global is an error naming
// it: a checkpoint is parsed, never executed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tnl::io {

struct PickledTensor {
  std::string name;          // state-dict key
  std::string dtype;         // safetensors-style: "F32", "F16", "BF16", "F64", "I64", ...
  int64_t elem_size = 0;
  std::string storage_key;   // the archive entry data/<storage_key>
  int64_t storage_numel = 0; // elements in that storage, as the pickle declares
  int64_t storage_offset = 0;  // in elements
  std::vector<int64_t> shape, stride;
};

// Parses `size` bytes of pickle; `source` names them in errors. Returns the tensors of the
// top-level (ordered) dict in file order.
std::vector<PickledTensor> unpickle_state_dict(const unsigned char* data, size_t size,
                                               const std::string& source);

}  // namespace tnl::io
