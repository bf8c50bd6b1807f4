// reference_files.cpp: see reference_files.h.
#include "testing/reference_files.h"

#include <cstdlib>
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
  return dir;
}

}  // namespace tnl::testing
