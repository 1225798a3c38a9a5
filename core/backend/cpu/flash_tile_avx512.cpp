// The AVX-512 kernel of one flash-attention query tile (flash_tile.h): 16 floats a vector. This file alone is
// compiled with -mavx512f (CMakeLists.txt); flash_attention.cpp calls it only where the CPU has AVX-512F.
#include "core/backend/cpu/avx512_intrinsics.h"

#include "core/backend/cpu/flash_tile.h"
#include "core/backend/cpu/flash_tile_kernel.h"

namespace serq {
namespace {

struct Avx512 {
  using V = __m512;
  static constexpr int kWidth = 16;
  static constexpr int kKeyTile = kFlashKeyTileAvx512;
  static constexpr int kScoreRows = 4;     // scores: 4 rows × 4 vectors of keys = 16 accumulators
  static constexpr int kOutRows = 6;       // output: 6 rows × 4 vectors of dims = 24 accumulators
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }  // b where either is NaN
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V round(V x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V pow2(V n) {
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_castsi512_ps(bits);
  }
  static V zero_below(V value, V x, V limit) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, limit, _CMP_NLT_UQ), value);
  }
  // x's first `count` lanes, `fill` in the others (count may lie outside 0 .. 16).
  static V keep_first(V x, int count, V fill) {
    const __mmask16 keep = count <= 0 ? 0 : count >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << count) - 1);
    return _mm512_mask_blend_ps(keep, fill, x);
  }
  static float reduce_max(V v) { return _mm512_reduce_max_ps(v); }
  static float reduce_add(V v) { return _mm512_reduce_add_ps(v); }
};

}  // namespace

void flash_tile_avx512(const FlashTile& tile) { flash_tile<Avx512>(tile); }

}  // namespace serq
