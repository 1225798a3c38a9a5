// The flash-attention tile kernel, written once over a SIMD traits type S (flash_tile_avx2.cpp, flash_tile_avx512.cpp)
// and compiled in each ISA's file. It has internal linkage and uses no library template, so nothing compiled with one
// ISA's instructions can be shared with code that runs on a CPU without them.
//
// Per key tile of S::kKeyTile keys, a block of rows at a time in registers: scores s = q · kᵀ, keys past each query's
// position set to −∞, the row maximum m, p = exp(s − m_new) (score_block); then the output, rescaled by
// exp(m_old − m_new), plus p · v (add_values).
#pragma once

#include "core/backend/cpu/flash_tile.h"

namespace serq {
namespace {

constexpr float kMinusInfinity = -__builtin_inff();

// exp(x) for x ≤ 0 (Cephes' expf: 2^n · e^r with |r| ≤ ln2/2 and a degree-6 polynomial, about 1 ulp); 0 below
// −87.3, where the result would leave the normal range, and for −∞; NaN stays NaN.
template <class S>
[[gnu::always_inline]] inline typename S::V exp_nonpositive(typename S::V x) {
  using V = typename S::V;
  const V limit = S::set1(-87.3f);
  const V clamped = S::max(limit, x);  // max(a, b) is b where either is NaN: NaN passes
  const V n = S::round(S::mul(clamped, S::set1(1.44269504088896341f)));
  V r = S::fmadd(n, S::set1(-0.693359375f), clamped);
  r = S::fmadd(n, S::set1(2.12194440e-4f), r);
  V p = S::set1(1.9875691500e-4f);
  p = S::fmadd(p, r, S::set1(1.3981999507e-3f));
  p = S::fmadd(p, r, S::set1(8.3334519073e-3f));
  p = S::fmadd(p, r, S::set1(4.1665795894e-2f));
  p = S::fmadd(p, r, S::set1(1.6666665459e-1f));
  p = S::fmadd(p, r, S::set1(5.0000001201e-1f));
  const V e = S::add(S::fmadd(S::mul(p, r), r, r), S::set1(1.0f));
  return S::zero_below(S::mul(e, S::pow2(n)), x, limit);
}

// Rows r0 .. r0 + R − 1 against one key tile, in registers (R rows × the tile's S::kKeyTile / W vectors): the scores
// q · ktᵀ, keys past each row's query (or past the tile's `keys`) set to −∞, then the online-softmax step. The row's
// p = exp(s − m_new) goes to scores, its sum into row_sum, and exp(m_old − m_new) into correction.
template <class S, int R>
void score_block(const FlashTile& t, const float* kt, int j0, int keys, int r0, float* scores, float* row_max,
                 float* row_sum, float* correction) {
  using V = typename S::V;
  constexpr int W = S::kWidth, N = S::kKeyTile / S::kWidth;
  V acc[R][N];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int n = 0; n < N; ++n) acc[i][n] = S::zero();
  for (int k = 0; k < t.d; ++k) {
    V key[N];
#pragma GCC unroll 8
    for (int n = 0; n < N; ++n) key[n] = S::load(kt + k * S::kKeyTile + n * W);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const V qv = S::set1(t.q[(r0 + i) * t.padded_dim + k]);
#pragma GCC unroll 8
      for (int n = 0; n < N; ++n) acc[i][n] = S::fmadd(qv, key[n], acc[i][n]);
    }
  }
  const V minus_infinity = S::set1(kMinusInfinity);
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    const int r = r0 + i;
    float* p = scores + r * S::kKeyTile;
    int visible = t.first_position + r % t.rows + 1 - j0;  // keys of this tile the row's query sees
    visible = visible < 0 ? 0 : visible > keys ? keys : visible;
    if (visible == 0) {  // nothing new for this row: p = 0, and its sum and output stay
#pragma GCC unroll 8
      for (int n = 0; n < N; ++n) S::store(p + n * W, S::zero());
      correction[r] = 1.0f;
      continue;
    }
    V m = minus_infinity;
#pragma GCC unroll 8
    for (int n = 0; n < N; ++n) {
      acc[i][n] = S::keep_first(acc[i][n], visible - n * W, minus_infinity);
      m = S::max(m, acc[i][n]);
    }
    const float tile_max = S::reduce_max(m);
    const float new_max = tile_max > row_max[r] ? tile_max : row_max[r];
    // 0 on the first tile (row_max = −∞); exactly 1 where the maximum stays.
    correction[r] = new_max == row_max[r] ? 1.0f : __builtin_expf(row_max[r] - new_max);
    const V shift = S::set1(new_max);
    V sum = S::zero();
#pragma GCC unroll 8
    for (int n = 0; n < N; ++n) {
      const V e = exp_nonpositive<S>(S::sub(acc[i][n], shift));
      S::store(p + n * W, e);
      sum = S::add(sum, e);
    }
    row_sum[r] = row_sum[r] * correction[r] + S::reduce_add(sum);
    row_max[r] = new_max;
  }
}

// out[r][o .. o + N·W) = out[r][…] · correction[r] + p[r] · v for rows r0 .. r0 + R − 1 and keys 0 .. keys − 1.
template <class S, int R, int N>
void add_values(const float* p, const float* v, int value_stride, int padded_dim, int keys, const float* correction,
                float* out, int r0, int o) {
  using V = typename S::V;
  constexpr int W = S::kWidth;
  V acc[R][N];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int n = 0; n < N; ++n) acc[i][n] = S::zero();
  for (int j = 0; j < keys; ++j) {
    V x[N];
#pragma GCC unroll 4
    for (int n = 0; n < N; ++n) x[n] = S::load(v + static_cast<long>(j) * value_stride + o + n * W);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const V pj = S::set1(p[(r0 + i) * S::kKeyTile + j]);
#pragma GCC unroll 4
      for (int n = 0; n < N; ++n) acc[i][n] = S::fmadd(pj, x[n], acc[i][n]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    const V c = S::set1(correction[r0 + i]);
    float* row = out + (r0 + i) * padded_dim + o;
#pragma GCC unroll 4
    for (int n = 0; n < N; ++n) S::store(row + n * W, S::fmadd(S::load(row + n * W), c, acc[i][n]));
  }
}

// Rows r0 .. r0 + R − 1 of the output, over every vector of dims: 4 at a time, then one at a time.
template <class S, int R>
void add_values_rows(const float* p, const float* v, int value_stride, int padded_dim, int keys,
                     const float* correction, float* out, int r0) {
  constexpr int W = S::kWidth;
  int o = 0;
  for (; o + 4 * W <= padded_dim; o += 4 * W)
    add_values<S, R, 4>(p, v, value_stride, padded_dim, keys, correction, out, r0, o);
  for (; o < padded_dim; o += W) add_values<S, R, 1>(p, v, value_stride, padded_dim, keys, correction, out, r0, o);
}

template <class S>
void flash_tile(const FlashTile& t) {
  const int stacked = t.group * t.rows, pd = t.padded_dim;
  float* scores = t.scratch;                                     // stacked × S::kKeyTile
  float* out = scores + stacked * S::kKeyTile;                 // stacked × padded_dim, unnormalized
  float* row_max = out + stacked * pd;                           // stacked
  float* row_sum = row_max + stacked;                            // stacked
  float* correction = row_sum + stacked;                         // stacked
  for (int i = 0; i < stacked * pd; ++i) out[i] = 0.0f;
  for (int r = 0; r < stacked; ++r) {
    row_max[r] = kMinusInfinity;
    row_sum[r] = 0.0f;
  }

  const int key_end = t.first_position + t.rows;  // the last query sees keys 0 .. key_end − 1
  for (int j0 = 0; j0 < key_end; j0 += S::kKeyTile) {
    const int keys = key_end - j0 < S::kKeyTile ? key_end - j0 : S::kKeyTile;
    const float* kt = t.key_tiles + static_cast<long>(j0) * pd;
    const float* v = t.values + static_cast<long>(j0) * t.value_stride;
    int r = 0;
    for (; r + S::kScoreRows <= stacked; r += S::kScoreRows)
      score_block<S, S::kScoreRows>(t, kt, j0, keys, r, scores, row_max, row_sum, correction);
    for (; r < stacked; ++r) score_block<S, 1>(t, kt, j0, keys, r, scores, row_max, row_sum, correction);

    for (r = 0; r + S::kOutRows <= stacked; r += S::kOutRows)
      add_values_rows<S, S::kOutRows>(scores, v, t.value_stride, pd, keys, correction, out, r);
    for (; r < stacked; ++r) add_values_rows<S, 1>(scores, v, t.value_stride, pd, keys, correction, out, r);
  }

  for (int h = 0; h < t.group; ++h) {
    for (int r = 0; r < t.rows; ++r) {
      const float inverse = 1.0f / row_sum[h * t.rows + r];
      const float* from = out + (h * t.rows + r) * pd;
      float* to = t.out + r * static_cast<long>(t.out_stride) + h * t.d;
      for (int k = 0; k < t.d; ++k) to[k] = from[k] * inverse;
    }
  }
}

}  // namespace
}  // namespace serq
