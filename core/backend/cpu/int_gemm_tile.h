// The integer GEMM's work as the per-ISA kernels see it (int_gemm.h): plain pointers to the activation codes, the
// weight's kernel layout (Int8Weight) and the output. Each ISA's kernel lives in its own file (int_gemm_avx2.cpp,
// int_gemm_avx512.cpp), compiled with that ISA's flags; int_gemm.cpp picks one at run time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace serq {

inline constexpr int kIntGemmLanes = 16;     // int32 lanes of a 512-bit register: 16 weight rows per block
inline constexpr int kIntGemmTileRows = 32;  // weight rows a kernel tile covers (two blocks): a "pair"

namespace {  // internal linkage: each file compiles its own copy, with its own ISA's flags

// Where the scales and sums of (row, group) of a weight of `groups` groups sit in its kernel layout: the 16 rows of a
// block side by side for each group (Int8Weight::lane_index).
constexpr std::size_t int_gemm_lane_index(int groups, int row, int group) {
  return (static_cast<std::size_t>(row / kIntGemmLanes) * groups + group) * kIntGemmLanes + row % kIntGemmLanes;
}

}  // namespace

struct IntGemmTask {
  // Activations (IntActivations): token t's codes of group a at codes + t · code_stride + a · padded_group, its
  // scale and offset at t · act_groups + a.
  const std::uint8_t* codes = nullptr;
  std::size_t code_stride = 0;
  const float* act_scales = nullptr;
  const std::int32_t* act_offsets = nullptr;
  int tokens = 0, act_groups = 0;
  // The weight (Int8Weight's kernel layout): blocks, lane scales and sums, row divisors (null: all 1).
  const std::int8_t* blocks = nullptr;
  const float* lane_scales = nullptr;
  const float* lane_sums = nullptr;
  const float* divisors = nullptr;
  int rows = 0, groups = 0, main_groups = 0, padded_group = 0;
  // Output: y[t, n] at y + t · y_stride + n.
  float* y = nullptr;
  std::size_t y_stride = 0;
};

// y for weight rows 32 · pair_begin .. 32 · pair_end − 1 and every token.
void int_gemm_pairs_avx2(const IntGemmTask& task, int pair_begin, int pair_end);
void int_gemm_pairs_avx512_vnni(const IntGemmTask& task, int pair_begin, int pair_end);

}  // namespace serq
