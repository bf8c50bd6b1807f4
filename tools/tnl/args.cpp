// args.cpp: see args.h.
#include "args.h"

#include <algorithm>
#include <cstdlib>

#include "tnl/error.h"

namespace tnl::cli {

Args::Args(int argc, char** argv, const std::vector<std::string>& known,
           const std::vector<std::string>& booleans) {
  auto is_known = [&](const std::string& n) {
    return std::find(known.begin(), known.end(), n) != known.end() ||
           std::find(booleans.begin(), booleans.end(), n) != booleans.end();
  };
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0)
      throw ArgumentError(detail::cat("unexpected argument '", a, "' (flags start with --)"));
    a = a.substr(2);
    std::string value;
    const size_t eq = a.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    if (!is_known(a)) {
      std::string list;
      for (const auto& k : known) list += " --" + k;
      for (const auto& k : booleans) list += " --" + k;
      throw ArgumentError(detail::cat("unknown flag '--", a, "'; expected one of:", list));
    }
    const bool boolean = std::find(booleans.begin(), booleans.end(), a) != booleans.end();
    if (boolean) {
      value = inline_value ? value : "1";
    } else if (!inline_value) {
      if (i + 1 >= argc) throw ArgumentError(detail::cat("flag '--", a, "': expected a value"));
      value = argv[++i];
    }
    values_[a] = value;
  }
}

std::string Args::str(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

int64_t parse_size(const std::string& text, const std::string& what) {
  if (text.empty()) throw ArgumentError(detail::cat(what, ": expected a number, got ''"));
  int64_t mult = 1;
  std::string digits = text;
  const char last = (char)std::tolower((unsigned char)text.back());
  if (last == 'k') mult = 1024;
  if (last == 'm') mult = 1024 * 1024;
  if (mult != 1) digits.pop_back();
  char* end = nullptr;
  const long long v = std::strtoll(digits.c_str(), &end, 10);
  if (digits.empty() || *end != '\0')
    throw ArgumentError(detail::cat(what, ": expected an integer like 300, 4k or 1m, got '", text, "'"));
  return (int64_t)v * mult;
}

int64_t Args::integer(const std::string& name, int64_t fallback) const {
  return has(name) ? parse_size(str(name, ""), "flag '--" + name + "'") : fallback;
}

double Args::real(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  const std::string s = str(name, "");
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0')
    throw ArgumentError(detail::cat("flag '--", name, "': expected a number, got '", s, "'"));
  return v;
}

std::vector<int64_t> Args::int_list(const std::string& name,
                                    const std::vector<int64_t>& fallback) const {
  if (!has(name)) return fallback;
  std::vector<int64_t> out;
  std::string s = str(name, "");
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = std::min(s.find(',', start), s.size());
    out.push_back(parse_size(s.substr(start, comma - start), "flag '--" + name + "'"));
    start = comma + 1;
  }
  return out;
}

}  // namespace tnl::cli
