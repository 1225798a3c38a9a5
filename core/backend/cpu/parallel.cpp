// The CPU backend's thread count (see parallel.h).
#include "core/backend/cpu/parallel.h"

extern "C" int openblas_get_num_threads(void);

namespace serq {

int cpu_workers(int threads) { return threads > 0 ? threads : openblas_get_num_threads(); }

}  // namespace serq
