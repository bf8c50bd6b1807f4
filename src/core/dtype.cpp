// dtype.cpp: dtype names.
#include "tnl/dtype.h"

namespace tnl {

bool parse_dtype(const std::string& name, DType* out) {
  if (name == "f32" || name == "fp32" || name == "float32" || name == "float") {
    *out = DType::f32;
  } else if (name == "f16" || name == "fp16" || name == "float16" || name == "half") {
    *out = DType::f16;
  } else if (name == "bf16" || name == "bfloat16") {
    *out = DType::bf16;
  } else if (name == "f64" || name == "fp64" || name == "float64" || name == "double") {
    *out = DType::f64;
  } else {
    return false;
  }
  return true;
}

}  // namespace tnl
