// The grids of serq's number formats, each formula written once: the INT code range, the MXFP4 shared scale and
// the E2M1 rounding. Used by fake quantization (int_quant.cpp, mxfp4.cpp), which fits and rounds one group at a
// time, and by GPTQ (gptq.cpp), which fits a group once and then rounds it column by column. The formats
// themselves are specified in int_quant.h and mxfp4.h. Rounding is rint(): half to even in FE_TONEAREST.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>

#include "core/common/half.h"

namespace serq {

// The codes of INT-b: symmetric [-2^(b-1), 2^(b-1) - 1], asymmetric [0, 2^b - 1].
struct IntCodeRange {
  float min = 0.0f;
  float max = 0.0f;
};

inline IntCodeRange int_code_range(int bits, bool symmetric) {
  if (symmetric) {
    const auto half = static_cast<float>(1 << (bits - 1));
    return {-half, half - 1.0f};
  }
  return {0.0f, static_cast<float>((1 << bits) - 1)};
}

// A range end scaled by a clip ratio (the KV cache's quant.kv_clip), rounded on its own: an explicit fma with +0 is
// one rounded product that the compiler cannot fuse into the scale's hi − lo, so every kernel and the reference get
// the same scale. Clip 1 returns v (a zero range end is +0, which is how every grid treats it).
inline float clip_range(float v, float clip) { return std::fma(v, clip, 0.0f); }

// A group's INT scale as it is used: rounded to the nearest IEEE half for weights (QuantSpec::f16_scales, the
// packed form), as computed otherwise. A weight scale beyond the half range becomes infinity; callers refuse it.
inline float int_scale(float computed, bool f16_scales) { return f16_scales ? round_to_f16(computed) : computed; }

// The zero point of an asymmetric group, round(-lo / scale) clamped to the codes (a scale rounded down to a half can
// put -lo / scale a hair above the top code).
inline float int_zero(float lo, float scale, const IntCodeRange& codes) {
  return std::clamp(std::nearbyint(-lo / scale), codes.min, codes.max);
}

// MXFP4's shared E8M0 scale of a block with max |x| = amax > 0: 2^(floor(log2 amax) - 2), the exponent clamped to
// E8M0's [-127, 127] (2 is the largest E2M1 exponent, 6 = 1.5 · 2^2). amax = 0 gives 0.
inline float mxfp4_scale(float amax) {
  if (amax == 0.0f) return 0.0f;
  int exponent = 0;
  std::frexp(amax, &exponent);  // amax = m · 2^exponent with m in [0.5, 1): floor(log2 amax) = exponent - 1
  return std::ldexp(1.0f, std::clamp(exponent - 3, -127, 127));
}

// x / X rounded to the nearest E2M1 value {0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6}, ties to the even mantissa,
// saturating at ±6. The grid spacing is 0.5 below 2, 1 in [2, 4) and 2 from 4; dividing by it and rounding half to
// even lands on the even mantissa at every tie (the mantissa bit is the low bit of the rounded multiple).
// Returns a lazy Eigen expression (no allocation); evaluate it within the caller's statement.
template <class Derived>
auto e2m1_round(const Eigen::ArrayBase<Derived>& scaled) {
  const Derived& x = scaled.derived();
  const auto step = 0.5f + 0.5f * (x.abs() >= 2.0f).template cast<float>() + (x.abs() >= 4.0f).template cast<float>();
  return ((x / step).rint() * step).max(-6.0f).min(6.0f);
}

}  // namespace serq
