// module.cpp: tnl._C, the thin pybind11 binding of the public C++ API (include/tnl/tnl.h).
//
// No framework types cross this boundary: Python passes raw addresses (ints), sizes and element
// strides, exactly the fields of the C++ parameter structs; python/tnl/ turns PyTorch tensors and
// NumPy arrays into those. C++ errors become Python exceptions with the C++ message:
// tnl::ArgumentError -> tnl.ArgumentError (a ValueError), tnl::Error -> tnl.Error (a RuntimeError).
// The GIL is released while a kernel runs.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>
#include <tuple>

#include "tnl/tnl.h"

namespace py = pybind11;

namespace {

// (data address, stride_batch, stride_seq, stride_head), strides in elements.
using View = std::tuple<uintptr_t, int64_t, int64_t, int64_t>;
using Shape = std::array<int64_t, 5>;  // (B, N, H, D, E)

template <class Ptr>
tnl::SeqTensorT<Ptr> view(const View& v) {
  return {reinterpret_cast<Ptr>(std::get<0>(v)), std::get<1>(v), std::get<2>(v), std::get<3>(v)};
}

tnl::DType parse_dtype(const std::string& name) {
  tnl::DType t;
  TNL_ARG_CHECK(tnl::parse_dtype(name, &t), "tnl._C", "dtype",
                "expected f32, f16, bf16 or f64, got '", name, "'");
  return t;
}

tnl::Device parse_device(const std::string& name) {
  if (name == "cpu") return tnl::Device::cpu;
  if (name == "cuda") return tnl::Device::cuda;
  throw tnl::ArgumentError("tnl._C: argument 'device': expected cpu or cuda, got '" + name + "'");
}

tnl::Intermediates parse_intermediates(const std::string& name) {
  if (name == "compensated") return tnl::Intermediates::compensated;
  if (name == "rounded") return tnl::Intermediates::rounded;
  throw tnl::ArgumentError(
      "tnl._C: argument 'intermediates': expected compensated or rounded, got '" + name + "'");
}

template <class T>
T* ptr(uintptr_t a) { return reinterpret_cast<T*>(a); }

tnl::AttnForwardParams forward_params(const std::string& dtype, const std::string& device, const Shape& shape,
                                      const View& q, const View& k, const View& v, const View& o,
                                      uintptr_t slopes, float scale, uintptr_t cu_seqlens, int64_t num_seqs,
                                      uintptr_t initial_state, uintptr_t final_state, int num_threads,
                                      uintptr_t stream, const std::string& intermediates, int64_t max_seqlen) {
  tnl::AttnForwardParams p;
  p.dtype = parse_dtype(dtype);
  p.device = parse_device(device);
  p.shape = {shape[0], shape[1], shape[2], shape[3], shape[4]};
  p.q = view<const void*>(q);
  p.k = view<const void*>(k);
  p.v = view<const void*>(v);
  p.o = view<void*>(o);
  p.slopes = ptr<const float>(slopes);
  p.scale = scale;
  p.cu_seqlens = ptr<const int32_t>(cu_seqlens);
  p.num_seqs = num_seqs;
  p.max_seqlen = max_seqlen;
  p.initial_state = ptr<const void>(initial_state);
  p.final_state = ptr<void>(final_state);
  p.num_threads = num_threads;
  p.stream = ptr<void>(stream);
  p.intermediates = parse_intermediates(intermediates);
  return p;
}

void forward(const std::string& dtype, const std::string& device, const Shape& shape,
             const View& q, const View& k, const View& v, const View& o, uintptr_t slopes,
             float scale, uintptr_t cu_seqlens, int64_t num_seqs, uintptr_t initial_state,
             uintptr_t final_state, int num_threads, uintptr_t stream, bool reference,
             const std::string& intermediates, int64_t max_seqlen, uintptr_t segment_starts,
             size_t segment_starts_bytes) {
  tnl::AttnForwardParams p = forward_params(dtype, device, shape, q, k, v, o, slopes, scale, cu_seqlens, num_seqs,
                                            initial_state, final_state, num_threads, stream, intermediates,
                                            max_seqlen);
  p.segment_starts = ptr<void>(segment_starts);
  p.segment_starts_bytes = segment_starts_bytes;
  if (reference) tnl::reference::attention_forward(p);
  else tnl::attention_forward(p);
}

size_t segment_starts_bytes(const std::string& dtype, const std::string& device, const Shape& shape,
                            const View& q, const View& k, const View& v, const View& o, uintptr_t slopes,
                            float scale, uintptr_t cu_seqlens, int64_t num_seqs, uintptr_t initial_state,
                            uintptr_t final_state, const std::string& intermediates, int64_t max_seqlen) {
  return tnl::attention_segment_starts_bytes(forward_params(dtype, device, shape, q, k, v, o, slopes, scale,
                                                            cu_seqlens, num_seqs, initial_state, final_state, 0,
                                                            0, intermediates, max_seqlen));
}

void backward(const std::string& dtype, const std::string& device, const Shape& shape,
              const View& q, const View& k, const View& v, const View& d_o, const View& dq,
              const View& dk, const View& dv, uintptr_t slopes, float scale, uintptr_t cu_seqlens,
              int64_t num_seqs, uintptr_t initial_state, uintptr_t d_final_state,
              uintptr_t d_initial_state, int num_threads, uintptr_t stream, bool reference,
              const std::string& intermediates, int64_t max_seqlen, uintptr_t segment_starts,
              size_t segment_starts_bytes) {
  // The forward's fields (its o and final state are not a backward's: none given), then the
  // backward's own.
  tnl::AttnBackwardParams p = tnl::attention_backward_params(
      forward_params(dtype, device, shape, q, k, v, View{}, slopes, scale, cu_seqlens, num_seqs, initial_state, 0,
                     num_threads, stream, intermediates, max_seqlen));
  p.d_o = view<const void*>(d_o);
  p.dq = view<void*>(dq);
  p.dk = view<void*>(dk);
  p.dv = view<void*>(dv);
  p.d_final_state = ptr<const void>(d_final_state);
  p.d_initial_state = ptr<void>(d_initial_state);
  p.segment_starts = ptr<const void>(segment_starts);
  p.segment_starts_bytes = segment_starts_bytes;
  if (reference) tnl::reference::attention_backward(p);
  else tnl::attention_backward(p);
}

void decode(const std::string& dtype, const std::string& device,
            const std::array<int64_t, 4>& sizes, const View& q, const View& k, const View& v,
            const View& o, uintptr_t state, uintptr_t slopes, float scale, int num_threads,
            uintptr_t stream, bool reference) {
  tnl::AttnDecodeParams p;
  p.dtype = parse_dtype(dtype);
  p.device = parse_device(device);
  p.batch = sizes[0];
  p.heads = sizes[1];
  p.dim_qk = sizes[2];
  p.dim_v = sizes[3];
  p.q = view<const void*>(q);
  p.k = view<const void*>(k);
  p.v = view<const void*>(v);
  p.o = view<void*>(o);
  p.state = ptr<void>(state);
  p.slopes = ptr<const float>(slopes);
  p.scale = scale;
  p.num_threads = num_threads;
  p.stream = ptr<void>(stream);
  if (reference) tnl::reference::attention_decode(p);
  else tnl::attention_decode(p);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "tnl._C: thin binding of the tnl C++ library (use the `tnl` package instead)";
  m.attr("__version__") = TNL_VERSION;
  m.attr("max_head_dim") = tnl::kMaxHeadDim;

  // Translators run newest first: register the base class before the derived one.
  auto& error = py::register_exception<tnl::Error>(m, "Error", PyExc_RuntimeError);
  py::register_exception<tnl::ArgumentError>(m, "ArgumentError",
                                             py::make_tuple(error, py::handle(PyExc_ValueError)));

  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("forward", &forward, nogil, py::arg("dtype"), py::arg("device"), py::arg("shape"),
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("o"), py::arg("slopes"),
        py::arg("scale"), py::arg("cu_seqlens"), py::arg("num_seqs"), py::arg("initial_state"),
        py::arg("final_state"), py::arg("num_threads"), py::arg("stream"), py::arg("reference"),
        py::arg("intermediates") = "compensated", py::arg("max_seqlen") = 0,
        py::arg("segment_starts") = 0, py::arg("segment_starts_bytes") = 0,
        "tnl::attention_forward (or tnl::reference::attention_forward when reference=True)");
  m.def("segment_starts_bytes", &segment_starts_bytes, nogil, py::arg("dtype"), py::arg("device"),
        py::arg("shape"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("o"), py::arg("slopes"),
        py::arg("scale"), py::arg("cu_seqlens"), py::arg("num_seqs"), py::arg("initial_state"),
        py::arg("final_state"), py::arg("intermediates") = "compensated", py::arg("max_seqlen") = 0,
        "tnl::attention_segment_starts_bytes of the forward with these arguments");
  m.def("backward", &backward, nogil, py::arg("dtype"), py::arg("device"), py::arg("shape"),
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("d_o"), py::arg("dq"), py::arg("dk"),
        py::arg("dv"), py::arg("slopes"), py::arg("scale"), py::arg("cu_seqlens"),
        py::arg("num_seqs"), py::arg("initial_state"), py::arg("d_final_state"),
        py::arg("d_initial_state"), py::arg("num_threads"), py::arg("stream"),
        py::arg("reference"), py::arg("intermediates") = "compensated", py::arg("max_seqlen") = 0,
        py::arg("segment_starts") = 0, py::arg("segment_starts_bytes") = 0,
        "tnl::attention_backward (or the reference's when reference=True)");
  m.def("decode", &decode, nogil, py::arg("dtype"), py::arg("device"), py::arg("sizes"),
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("o"), py::arg("state"),
        py::arg("slopes"), py::arg("scale"), py::arg("num_threads"), py::arg("stream"),
        py::arg("reference"), "tnl::attention_decode (or the reference's when reference=True)");

  m.def("slopes_transnormer", &tnl::slopes_transnormer, py::arg("heads"), py::arg("layer"),
        py::arg("num_layers"));
  m.def("slopes_minimax", &tnl::slopes_minimax, py::arg("heads"), py::arg("layer"),
        py::arg("num_layers"));
  m.def("alibi_slopes", &tnl::alibi_slopes, py::arg("heads"));
  m.def("cuda_built", &tnl::cuda_built);
  m.def("cuda_device_count", &tnl::cuda_device_count);
  m.def("cpu_thread_count", &tnl::cpu_thread_count);
}
