// What the rest of serq needs to know of the CPU backend beyond the op interface (core/backend/backend.h).
#pragma once

namespace serq {

// Attention takes queries in blocks of this many rows, so that each block multiplies only the keys it can see and
// its scores take kAttentionQueryBlock × keys floats (forward_workspace_bytes counts them).
inline constexpr int kAttentionQueryBlock = 256;

// runtime.threads: the threads of the CPU backend's kernels (OpenBLAS, and the integer GEMM, which follows it).
void set_cpu_threads(int threads);

}  // namespace serq
