// The flash-attention tile kernel, written once over a SIMD traits type S (flash_tile_avx2.cpp, flash_tile_avx512.cpp)
// and compiled in each ISA's file. It has internal linkage and uses no library template, so nothing compiled with one
// ISA's instructions can be shared with code that runs on a CPU without them.
//
// Per key tile of kFlashKeyTile keys: scores s = q · kᵀ, keys past each query's position set to −∞, the row maximum m,
// p = exp(s − m_new), and the running sum and output rescaled by exp(m_old − m_new) before p · v is added.
#pragma once

#include "core/backend/cpu/flash_tile.h"

namespace serq {
namespace {

constexpr float kMinusInfinity = -__builtin_inff();

// exp(x) for x ≤ 0 (Cephes' expf: 2^n · e^r with |r| ≤ ln2/2 and a degree-6 polynomial, about 1 ulp); 0 below
// −87.3, where the result would leave the normal range, and for −∞; NaN stays NaN.
template <class S>
typename S::V exp_nonpositive(typename S::V x) {
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

// scores[r][0 .. columns) = q[r] · ktᵀ for rows r0 .. r0 + R − 1: R rows × N vectors of keys in registers.
template <class S, int R, int N>
void score_rows(const FlashTile& t, const float* kt, float* scores, int r0, int columns) {
  using V = typename S::V;
  constexpr int W = S::kWidth;
  for (int c0 = 0; c0 < columns; c0 += N * W) {
    V acc[R][N];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int n = 0; n < N; ++n) acc[i][n] = S::zero();
    for (int k = 0; k < t.d; ++k) {
      V key[N];
#pragma GCC unroll 4
      for (int n = 0; n < N; ++n) key[n] = S::load(kt + k * kFlashKeyTile + c0 + n * W);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const V qv = S::set1(t.q[(r0 + i) * t.padded_dim + k]);
#pragma GCC unroll 4
        for (int n = 0; n < N; ++n) acc[i][n] = S::fmadd(qv, key[n], acc[i][n]);
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int n = 0; n < N; ++n) S::store(scores + (r0 + i) * kFlashKeyTile + c0 + n * W, acc[i][n]);
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
      const V pj = S::set1(p[(r0 + i) * kFlashKeyTile + j]);
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
  using V = typename S::V;
  constexpr int W = S::kWidth;
  const int stacked = t.group * t.rows, pd = t.padded_dim;
  float* scores = t.scratch;                                     // stacked × kFlashKeyTile
  float* out = scores + stacked * kFlashKeyTile;                 // stacked × padded_dim, unnormalized
  float* row_max = out + stacked * pd;                           // stacked
  float* row_sum = row_max + stacked;                            // stacked
  float* correction = row_sum + stacked;                         // stacked
  for (int i = 0; i < stacked * pd; ++i) out[i] = 0.0f;
  for (int r = 0; r < stacked; ++r) {
    row_max[r] = kMinusInfinity;
    row_sum[r] = 0.0f;
  }

  const int key_end = t.first_position + t.rows;  // the last query sees keys 0 .. key_end − 1
  for (int j0 = 0; j0 < key_end; j0 += kFlashKeyTile) {
    const int keys = key_end - j0 < kFlashKeyTile ? key_end - j0 : kFlashKeyTile;
    const float* kt = t.key_tiles + static_cast<long>(j0) * pd;
    const float* v = t.values + static_cast<long>(j0) * t.value_stride;
    // Score columns in blocks of kScoreVectors vectors; the ones past `keys` are set to −∞ below.
    constexpr int kBlock = S::kScoreVectors * W;
    const int columns = (keys + kBlock - 1) / kBlock * kBlock;
    int r = 0;
    for (; r + S::kScoreRows <= stacked; r += S::kScoreRows)
      score_rows<S, S::kScoreRows, S::kScoreVectors>(t, kt, scores, r, columns);
    for (; r < stacked; ++r) score_rows<S, 1, S::kScoreVectors>(t, kt, scores, r, columns);

    for (r = 0; r < stacked; ++r) {
      float* s = scores + r * kFlashKeyTile;
      int visible = t.first_position + r % t.rows + 1 - j0;  // keys of this tile the row's query sees
      visible = visible < 0 ? 0 : visible > keys ? keys : visible;
      if (visible == 0) {  // nothing new for this row: p = 0, and its sum and output stay
        for (int j = 0; j < kFlashKeyTile; ++j) s[j] = 0.0f;
        correction[r] = 1.0f;
        continue;
      }
      for (int j = visible; j < kFlashKeyTile; ++j) s[j] = kMinusInfinity;
      V m = S::load(s);
      for (int j = W; j < kFlashKeyTile; j += W) m = S::max(m, S::load(s + j));
      const float tile_max = S::reduce_max(m);
      const float new_max = tile_max > row_max[r] ? tile_max : row_max[r];
      correction[r] = __builtin_expf(row_max[r] - new_max);  // 0 on the first tile (row_max = −∞)
      const V shift = S::set1(new_max);
      V sum = S::zero();
      for (int j = 0; j < kFlashKeyTile; j += W) {
        const V p = exp_nonpositive<S>(S::sub(S::load(s + j), shift));
        S::store(s + j, p);
        sum = S::add(sum, p);
      }
      row_sum[r] = row_sum[r] * correction[r] + S::reduce_add(sum);
      row_max[r] = new_max;
    }

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
