// Which vector ISA the CPU backend's kernels may use: the widest the CPU has, or less where the environment variable
// SERQ_CPU_ISA caps it (avx2 or avx512), so that the AVX2 kernels can be tested and timed on an AVX-512 machine.
#pragma once

namespace serq {

// Whether the kernels may use AVX-512: the CPU has AVX-512F and SERQ_CPU_ISA is unset or avx512. An unknown value of
// SERQ_CPU_ISA is a serq::Error naming it and the values it takes.
bool avx512_allowed();

}  // namespace serq
