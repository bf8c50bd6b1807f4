// reference_files.h: the PyTorch reference outputs the tests compare against: a generator script
// under tests/ref/ is run at test time (Debian's python3 with python3-torch) into a fresh
// temporary directory, and its raw little-endian arrays are read back.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

namespace tnl::testing {

// Runs `python script DIR` for a new DIR = TempDir()/<prefix><random>; returns DIR, or "" after
// adding a failure that shows the command (the caller ASSERTs on the result).
std::string run_reference_script(const std::string& python, const std::string& script,
                                 const std::string& prefix);

// Prints the seed a reference script drew its random inputs with (DIR/seed.txt, written by
// tests/ref/fixture_util.py), so that TNL_FIXTURE_SEED can reproduce a failing draw.
void print_fixture_seed(const std::string& dir);

// n values of T from a raw file; a short or missing file fails the test, naming it.
template <class T>
std::vector<T> read_raw(const std::string& path, size_t n) {
  std::vector<T> v(n);
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(v.data()), (std::streamsize)(n * sizeof(T)));
  EXPECT_TRUE(f.good()) << path;
  return v;
}

}  // namespace tnl::testing
