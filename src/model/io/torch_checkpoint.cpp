// torch_checkpoint.cpp: see torch_checkpoint.h.
#include "model/io/torch_checkpoint.h"

#include "model/io/torch_pickle.h"
#include "model/io/zip_reader.h"
#include "tnl/error.h"

namespace tnl::io {

TorchCheckpoint::TorchCheckpoint(const std::string& path)
    : file_(std::make_shared<MappedFile>(path)) {
  const ZipReader zip(file_->data(), file_->size(), path);
  const ZipEntry& pkl = zip.find_suffix("/data.pkl");
  const std::string prefix = pkl.name.substr(0, pkl.name.size() - std::string("data.pkl").size());
  for (const PickledTensor& t : unpickle_state_dict(pkl.data, pkl.size, path)) {
    const std::string where = detail::cat(path, ": tensor '", t.name, "'");
    const ZipEntry* storage = zip.find(prefix + "data/" + t.storage_key);
    if (!storage)
      throw Error(detail::cat(where, ": its storage data/", t.storage_key, " is missing from the archive"));
    if (t.storage_numel < 0 || (uint64_t)t.storage_numel * (uint64_t)t.elem_size > storage->size)
      throw Error(detail::cat(where, ": storage data/", t.storage_key, " holds ", storage->size,
                              " bytes, fewer than the ", t.storage_numel, " elements declared"));
    TensorEntry e;
    e.name = t.name;
    e.dtype = t.dtype;
    e.elem_size = t.elem_size;
    e.shape = t.shape;
    int64_t expect_stride = 1;
    for (int i = (int)t.shape.size() - 1; i >= 0; --i) {
      if (t.shape[i] < 0) throw Error(where + ": negative dimension");
      if (t.shape[i] > 1 && t.stride[i] != expect_stride)
        throw Error(where + ": not stored contiguously (row-major); re-save it with .contiguous()");
      expect_stride *= t.shape[i];
    }
    const int64_t numel = e.numel();
    if (t.storage_offset < 0 || t.storage_offset + numel > t.storage_numel)
      throw Error(detail::cat(where, ": elements [", t.storage_offset, ", ", t.storage_offset + numel,
                              ") fall outside its storage of ", t.storage_numel));
    e.data = storage->data + t.storage_offset * t.elem_size;
    e.bytes = numel * t.elem_size;
    if (!tensors_.emplace(e.name, e).second) throw Error(where + ": appears twice");
  }
}

}  // namespace tnl::io
