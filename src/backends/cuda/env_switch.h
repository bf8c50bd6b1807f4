// env_switch.h: the CUDA backend's A/B switches (bench/cuda/NOTES.md lists them), environment
// variables read once per process by the function-local statics that call env_is.
#pragma once

#include <cstdlib>

namespace tnl::cuda {

// Whether the environment variable `name` is set and starts with `value`.
inline bool env_is(const char* name, char value) {
  const char* e = std::getenv(name);
  return e && e[0] == value;
}

}  // namespace tnl::cuda
