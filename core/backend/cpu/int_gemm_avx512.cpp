// The AVX-512 VNNI kernel of the integer GEMM (int_gemm_tile.h): vpdpbusd adds four u8 × s8 products into each int32
// lane. This file alone is compiled with the AVX-512 F/BW/VNNI flags (CMakeLists.txt); int_gemm.cpp calls it only
// where the CPU has them.
#include "core/backend/cpu/avx512_intrinsics.h"

#include "core/backend/cpu/int_gemm_kernel.h"
#include "core/backend/cpu/int_gemm_tile.h"

namespace serq {
namespace {

// vpdpbusd as an instruction whose sums may sit in any of the 32 registers. GCC 12's pattern for the intrinsic
// prefers zmm0–15 for the sums, and with this tile's 12 sums it copied each one to and from a high register on every
// step (24 register moves a step), which halved the kernel's rate.
inline __m512i dpbusd(__m512i sums, __m512i u, __m512i w) {
  asm("vpdpbusd %2, %1, %0" : "+v"(sums) : "v"(u), "v"(w));
  return sums;
}

struct Vnni {
  static constexpr int kTileTokens = 6;  // 6 tokens × 2 blocks: 12 int32 and 12 float accumulators of the 32 registers

  // Tokens t0 .. t0 + T − 1 against weight rows 32 · pair .. + 31, the groups of `range`.
  template <int T>
  static void tile(const IntGemmTask& task, int t0, int pair, GroupRange range) {
    const int groups = task.groups, quads = task.padded_group / 4;
    const __m512i* block0 = reinterpret_cast<const __m512i*>(task.blocks) + std::size_t(2 * pair) * groups * quads;
    const __m512i* block1 = block0 + std::size_t(groups) * quads;
    const int row0 = pair * kIntGemmTileRows;
    const int valid = task.rows - row0 < kIntGemmTileRows ? task.rows - row0 : kIntGemmTileRows;
    __m512 acc[T][2];
#pragma GCC unroll 8
    for (int i = 0; i < T; ++i) {
      alignas(64) float partial[kIntGemmTileRows];
      load_partial_sums(task, range.first, t0 + i, row0, valid, partial, kIntGemmTileRows);
      acc[i][0] = _mm512_load_ps(partial);
      acc[i][1] = _mm512_load_ps(partial + kIntGemmLanes);
    }
    for (int g = range.g0; g < range.g1; ++g) {
      const int a = activation_group(task, g);
      __m512i dot[T][2];
#pragma GCC unroll 8
      for (int i = 0; i < T; ++i) dot[i][0] = dot[i][1] = _mm512_setzero_si512();
      const __m512i* w0 = block0 + std::size_t(g) * quads;
      const __m512i* w1 = block1 + std::size_t(g) * quads;
      for (int q = 0; q < quads; ++q) {
        const __m512i a0 = _mm512_loadu_si512(w0 + q), a1 = _mm512_loadu_si512(w1 + q);
#pragma GCC unroll 8
        for (int i = 0; i < T; ++i) {
          const __m512i u = _mm512_set1_epi32(code_quad(task, t0 + i, a, q));
          dot[i][0] = dpbusd(dot[i][0], u, a0);
          dot[i][1] = dpbusd(dot[i][1], u, a1);
        }
      }
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const std::size_t lanes = int_gemm_lane_index(task.groups, row0 + h * kIntGemmLanes, g);
        const __m512 s_w = _mm512_loadu_ps(task.lane_scales + lanes);
        const __m512 sums = _mm512_loadu_ps(task.lane_sums + lanes);
#pragma GCC unroll 8
        for (int i = 0; i < T; ++i) {
          const std::size_t at = std::size_t(t0 + i) * task.act_groups + a;
          // dot − c · Σw in float: exact while both stay below 2^24 (groups up to 512 of 8-bit codes)
          const __m512 centered = _mm512_fnmadd_ps(_mm512_set1_ps(static_cast<float>(task.act_offsets[at])), sums,
                                                   _mm512_cvtepi32_ps(dot[i][h]));
          acc[i][h] = _mm512_fmadd_ps(centered, _mm512_mul_ps(s_w, _mm512_set1_ps(task.act_scales[at])), acc[i][h]);
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < T; ++i) {
      alignas(64) float out[kIntGemmTileRows];
      _mm512_store_ps(out, acc[i][0]);
      _mm512_store_ps(out + kIntGemmLanes, acc[i][1]);
      store_sums(task, range.last, t0 + i, row0, valid, out);
    }
  }
};

}  // namespace

void int_gemm_pairs_avx512_vnni(const IntGemmTask& task, int pair_begin, int pair_end) {
  int_gemm_pairs<Vnni>(task, pair_begin, pair_end);
}

}  // namespace serq
