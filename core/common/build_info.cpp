// Build and runtime provenance: git commit and compiler baked in at build time, BLAS core read at run time.
#include "core/common/build_info.h"

#include <unistd.h>

#include "build_info_values.h"

extern "C" {
char* openblas_get_config(void);
char* openblas_get_corename(void);
int openblas_get_num_threads(void);
}

namespace serq {

BuildInfo build_info() {
  BuildInfo info;
  info.git_commit = SERQ_GIT_COMMIT;
  info.compiler = SERQ_COMPILER;
  info.build_type = SERQ_BUILD_TYPE;
  info.blas = std::string(openblas_get_config()) + " (core " + openblas_get_corename() + ")";
  info.blas_threads = openblas_get_num_threads();
  info.host = host_name();
  return info;
}

std::string host_name() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

}  // namespace serq
