// tensor_access.h: scalar element loads and stores by runtime dtype (the reference's slow path).
#pragma once

#include <cstdint>

#include "tnl/dtype.h"

namespace tnl::cpu {

inline double load_as_double(const void* base, DType dt, int64_t i) {
  switch (dt) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f16: return f16_bits_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::bf16: return bf16_bits_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::f64: return static_cast<const double*>(base)[i];
  }
  return 0.0;
}

inline void store_from_double(void* base, DType dt, int64_t i, double x) {
  switch (dt) {
    case DType::f32: static_cast<float*>(base)[i] = static_cast<float>(x); break;
    case DType::f16: static_cast<uint16_t*>(base)[i] = f32_to_f16_bits(static_cast<float>(x)); break;
    case DType::bf16: static_cast<uint16_t*>(base)[i] = f32_to_bf16_bits(static_cast<float>(x)); break;
    case DType::f64: static_cast<double*>(base)[i] = x; break;
  }
}

}  // namespace tnl::cpu
