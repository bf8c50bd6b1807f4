// args.h: a small command-line flag parser. Unknown flags and bad values are errors that name
// the flag and say what was expected.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tnl::cli {

class Args {
 public:
  // argv after the subcommand words; flags are --name value or --name=value; --flag alone is "1".
  Args(int argc, char** argv, const std::vector<std::string>& known_flags,
       const std::vector<std::string>& boolean_flags);

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string str(const std::string& name, const std::string& fallback) const;
  int64_t integer(const std::string& name, int64_t fallback) const;  // accepts 4k, 1m suffixes
  double real(const std::string& name, double fallback) const;
  bool flag(const std::string& name) const { return has(name); }
  std::vector<int64_t> int_list(const std::string& name, const std::vector<int64_t>& fallback) const;

 private:
  std::map<std::string, std::string> values_;
};

// "4k" -> 4096, "1m" -> 1048576, "300" -> 300. Throws tnl::ArgumentError naming `what`.
int64_t parse_size(const std::string& text, const std::string& what);

}  // namespace tnl::cli
