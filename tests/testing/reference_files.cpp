// reference_files.cpp: see reference_files.h.
#include "testing/reference_files.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>

namespace tnl::testing {

std::string run_reference_script(const std::string& python, const std::string& script,
                                 const std::string& prefix) {
  const std::string dir = ::testing::TempDir() + prefix + std::to_string(std::random_device{}());
  const std::string cmd = python + " " + script + " " + dir + " > /dev/null";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "generating the PyTorch reference failed (needs Debian's python3-torch: "
                     "bash scripts/install-deps.sh): " << cmd;
    return "";
  }
  print_fixture_seed(dir);
  return dir;
}

void print_fixture_seed(const std::string& dir) {
  std::ifstream f(dir + "/seed.txt");
  std::string seed;
  if (f >> seed) std::printf("fixtures in %s drawn with seed %s (TNL_FIXTURE_SEED=%s draws them again)\n",
                             dir.c_str(), seed.c_str(), seed.c_str());
}

}  // namespace tnl::testing
