// Provenance of this binary and the machine it runs on, recorded with every result.
#pragma once

#include <string>

namespace serq {

struct BuildInfo {
  std::string git_commit;  // "<sha>" or "<sha>-dirty"
  std::string compiler;    // e.g. "GNU 12.2.0"
  std::string build_type;  // Release, Debug, ...
  std::string blas;        // OpenBLAS config string and core, e.g. "OpenBLAS 0.3.21 ... (core Zen)"
  int blas_threads = 0;
  std::string host;        // hostname
};

BuildInfo build_info();

// This machine's host name (gethostname), without the build's other facts.
std::string host_name();

}  // namespace serq
