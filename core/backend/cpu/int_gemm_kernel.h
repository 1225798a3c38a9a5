// The integer GEMM's cache blocking, written once over an ISA's tile kernel K (int_gemm_avx2.cpp,
// int_gemm_avx512.cpp) and compiled in each ISA's file. It has internal linkage and uses no library template, so
// nothing compiled with one ISA's instructions can be shared with code that runs on a CPU without them.
//
// Groups (of K) are blocked outermost, then tokens, then the 32-row weight panels: a panel of a group block (32 × 16 ·
// 64 bytes at groups of 64) stays in L1 while every token tile of the token block reads it, and the token block's
// codes (256 × 1024 bytes) stay in L2 while every panel of the thread reads them.
#pragma once

#include "core/backend/cpu/int_gemm_tile.h"

namespace serq {
namespace {

constexpr int kGroupBlock = 16;
constexpr int kTokenBlock = 256;

// Which part of the product a tile call computes: groups [g0, g1) of the weight. The first block starts its sums
// at zero, the others continue the partial sums held in y, and the last divides by the row divisors; the float sums
// run over the groups in the same order as without blocking, so the result has the same bits.
struct GroupRange {
  int g0 = 0, g1 = 0;
  bool first = true, last = true;
};

// The activation group a weight group reads: R's groups (past the main ones) read the first activation groups.
inline int activation_group(const IntGemmTask& task, int group) {
  return group < task.main_groups ? group : group - task.main_groups;
}

// Token t's four codes 4q .. 4q + 3 of activation group a, as one int32.
inline std::int32_t code_quad(const IntGemmTask& task, int t, int a, int q) {
  const std::uint8_t* p = task.codes + t * task.code_stride + static_cast<std::size_t>(a) * task.padded_group + 4 * q;
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
                                   static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24);
}

// Token t's partial sums of weight rows row0 .. row0 + valid − 1 into `partial` (`width` floats): zero at the first
// group block, else from y; zero past the weight's rows (valid may be ≤ 0 for a block wholly past them).
inline void load_partial_sums(const IntGemmTask& task, bool first, int t, int row0, int valid, float* partial,
                              int width) {
  const float* y_row = task.y + t * task.y_stride + row0;
  for (int r = 0; r < width; ++r) partial[r] = !first && r < valid ? y_row[r] : 0.0f;
}

// Token t's sums of weight rows row0 .. row0 + valid − 1 into y, divided by the row divisors after the last block.
inline void store_sums(const IntGemmTask& task, bool last, int t, int row0, int valid, const float* sums) {
  float* y_row = task.y + t * task.y_stride + row0;
  for (int r = 0; r < valid; ++r) {
    y_row[r] = last && task.divisors ? sums[r] / task.divisors[row0 + r] : sums[r];
  }
}

// Weight rows 32 · pair_begin .. 32 · pair_end − 1 for every token: K::tile<T>(task, t0, pair, range) computes T
// tokens from t0 against one 32-row panel.
template <class K>
void int_gemm_pairs(const IntGemmTask& task, int pair_begin, int pair_end) {
  for (int g0 = 0; g0 < task.groups; g0 += kGroupBlock) {
    const int g1 = g0 + kGroupBlock < task.groups ? g0 + kGroupBlock : task.groups;
    const GroupRange range{g0, g1, g0 == 0, g1 == task.groups};
    for (int t0 = 0; t0 < task.tokens; t0 += kTokenBlock) {
      const int t1 = t0 + kTokenBlock < task.tokens ? t0 + kTokenBlock : task.tokens;
      for (int pair = pair_begin; pair < pair_end; ++pair) {
        int t = t0;
        for (; t + K::kTileTokens <= t1; t += K::kTileTokens) K::template tile<K::kTileTokens>(task, t, pair, range);
        for (; t < t1; ++t) K::template tile<1>(task, t, pair, range);
      }
    }
  }
}

}  // namespace
}  // namespace serq
