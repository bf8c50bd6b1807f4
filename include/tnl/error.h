// tnl/error.h: the one error family of the library.
//
// Every failure is a tnl::Error (a std::runtime_error) whose message says what went wrong.
// Argument errors name the argument and what was expected; internal checks carry statement,
// file and line. CUDA calls are checked with TNL_CUDA_CHECK (src/backends/cuda/cuda_check.h).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace tnl {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A user-facing argument error: "tnl::attention_forward: argument 'q': expected ..., got ...".
class ArgumentError : public Error {
 public:
  explicit ArgumentError(const std::string& what) : Error(what) {}
};

// For messages the caller builds, naming the argument, setting or file itself.
inline void require_argument(bool ok, const std::string& message) {
  if (!ok) throw ArgumentError(message);
}
inline void require(bool ok, const std::string& message) {
  if (!ok) throw Error(message);
}

namespace detail {
template <class... Ts>
std::string cat(const Ts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
}  // namespace detail

}  // namespace tnl

// Internal invariant: throws tnl::Error with the statement, file and line.
#define TNL_CHECK(cond, ...)                                                              \
  do {                                                                                    \
    if (!(cond))                                                                          \
      throw ::tnl::Error(::tnl::detail::cat("tnl: check failed: ", #cond, " at ", __FILE__, \
                                            ":", __LINE__, " ", ##__VA_ARGS__));          \
  } while (0)

// Argument validation: `fn` is the entry point, `arg` the argument's name, the rest says what
// was expected and what was given.
#define TNL_ARG_CHECK(cond, fn, arg, ...)                                                      \
  do {                                                                                         \
    if (!(cond))                                                                               \
      throw ::tnl::ArgumentError(                                                              \
          ::tnl::detail::cat(fn, ": argument '", arg, "': ", ##__VA_ARGS__));                  \
  } while (0)
