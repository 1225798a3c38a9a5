// The AVX2 kernel of the integer GEMM (int_gemm_tile.h), llama.cpp's Q4_0 × Q8_0 way: vpmaddubsw multiplies u8 × s8
// and adds neighbouring pairs into int16, and vpmaddwd by ones adds the two pairs of each row into its int32 lane.
// The int16 pair sums saturate unless 2 · 255 · max|w| ≤ 32767 (int_gemm.cpp checks). The float steps are the VNNI
// kernel's, so both give the same bits. This file alone is compiled with AVX2 and FMA (CMakeLists.txt).
#include <immintrin.h>

#include "core/backend/cpu/int_gemm_kernel.h"
#include "core/backend/cpu/int_gemm_tile.h"

namespace serq {
namespace {

// sums + x as an instruction that adds into the sums' own register: GCC 12 added into a fresh register and copied it
// back on every step (8 register moves a step, and a sum spilled to memory).
inline __m256i add_into(__m256i sums, __m256i x) {
  asm("vpaddd %1, %0, %0" : "+x"(sums) : "x"(x));
  return sums;
}

struct Avx2 {
  static constexpr int kTileTokens = 4;  // 4 tokens × 2 halves: 8 int32 and 8 float accumulators of the 16 registers

  // Tokens t0 .. t0 + T − 1 against the 16 weight rows of `block`. A 64-byte quad of the layout is two registers
  // (rows 0–7, rows 8–15).
  template <int T>
  static void block_tile(const IntGemmTask& task, int t0, int block, GroupRange range) {
    const int groups = task.groups, quads = task.padded_group / 4;
    const __m256i* weights = reinterpret_cast<const __m256i*>(task.blocks) + std::size_t(block) * groups * quads * 2;
    const __m256i ones = _mm256_set1_epi16(1);
    const int row0 = block * kIntGemmLanes;
    const int valid = task.rows - row0 < kIntGemmLanes ? task.rows - row0 : kIntGemmLanes;
    __m256 acc[T][2];
#pragma GCC unroll 8
    for (int i = 0; i < T; ++i) {
      alignas(32) float partial[kIntGemmLanes];
      load_partial_sums(task, range.first, t0 + i, row0, valid, partial, kIntGemmLanes);
      acc[i][0] = _mm256_load_ps(partial);
      acc[i][1] = _mm256_load_ps(partial + 8);
    }
    for (int g = range.g0; g < range.g1; ++g) {
      const int a = activation_group(task, g);
      __m256i dot[T][2];
#pragma GCC unroll 8
      for (int i = 0; i < T; ++i) dot[i][0] = dot[i][1] = _mm256_setzero_si256();
      const __m256i* wg = weights + std::size_t(g) * quads * 2;
      for (int q = 0; q < quads; ++q) {
        const __m256i lo = _mm256_loadu_si256(wg + 2 * q), hi = _mm256_loadu_si256(wg + 2 * q + 1);
#pragma GCC unroll 8
        for (int i = 0; i < T; ++i) {
          const __m256i u = _mm256_set1_epi32(code_quad(task, t0 + i, a, q));
          dot[i][0] = add_into(dot[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(u, lo), ones));
          dot[i][1] = add_into(dot[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(u, hi), ones));
        }
      }
      const std::size_t lanes = int_gemm_lane_index(task.groups, row0, g);
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const __m256 s_w = _mm256_loadu_ps(task.lane_scales + lanes + 8 * h);
        const __m256 sums = _mm256_loadu_ps(task.lane_sums + lanes + 8 * h);
#pragma GCC unroll 8
        for (int i = 0; i < T; ++i) {
          const std::size_t at = std::size_t(t0 + i) * task.act_groups + a;
          const __m256 centered = _mm256_fnmadd_ps(_mm256_set1_ps(static_cast<float>(task.act_offsets[at])), sums,
                                                   _mm256_cvtepi32_ps(dot[i][h]));
          acc[i][h] = _mm256_fmadd_ps(centered, _mm256_mul_ps(s_w, _mm256_set1_ps(task.act_scales[at])), acc[i][h]);
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < T; ++i) {
      alignas(32) float out[kIntGemmLanes];
      _mm256_store_ps(out, acc[i][0]);
      _mm256_store_ps(out + 8, acc[i][1]);
      store_sums(task, range.last, t0 + i, row0, valid, out);
    }
  }

  // A 32-row panel as its two blocks.
  template <int T>
  static void tile(const IntGemmTask& task, int t0, int pair, GroupRange range) {
    block_tile<T>(task, t0, 2 * pair, range);
    block_tile<T>(task, t0, 2 * pair + 1, range);
  }
};

}  // namespace

void int_gemm_pairs_avx2(const IntGemmTask& task, int pair_begin, int pair_end) {
  int_gemm_pairs<Avx2>(task, pair_begin, pair_end);
}

}  // namespace serq
