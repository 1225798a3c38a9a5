// What the rest of serq needs to know of the CPU backend beyond the op interface (core/backend/backend.h).
#pragma once

namespace serq {

// runtime.threads: the threads of the CPU backend's kernels (OpenBLAS, and the integer GEMM, which follows it).
void set_cpu_threads(int threads);

}  // namespace serq
