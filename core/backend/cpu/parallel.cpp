// The CPU backend's thread count and OpenBLAS's (see parallel.h).
#include "core/backend/cpu/parallel.h"

extern "C" int openblas_get_num_threads(void);
extern "C" void openblas_set_num_threads(int threads);

namespace serq {

int cpu_workers(int threads) { return threads > 0 ? threads : openblas_get_num_threads(); }

BlasOnCallingThread::BlasOnCallingThread() : saved_threads_(openblas_get_num_threads()) {
  openblas_set_num_threads(1);
}

BlasOnCallingThread::~BlasOnCallingThread() { openblas_set_num_threads(saved_threads_); }

}  // namespace serq
