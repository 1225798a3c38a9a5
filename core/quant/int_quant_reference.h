// The plain reference of INT-b fake quantization (the formulas of int_quant.h), one scalar at a time with
// std::nearbyint (half to even). It is slow and obviously correct: the vectorized fake_quant_rows and GPTQ's
// column-by-column rounding are tested against it, and tests that need an independent quantizer use it.
#pragma once

#include <span>

#include "core/common/matrix.h"

namespace serq {

// One group's INT-b grid: symmetric scale = max|x| / (2^(b-1) - 1), zero 0, codes [-2^(b-1), 2^(b-1) - 1];
// asymmetric lo = min(min x, 0), hi = max(max x, 0), scale = (hi - lo) / (2^b - 1), zero = round(-lo / scale),
// codes [0, 2^b - 1]. Scale 0 (an all-zero group) dequantizes everything to +0. With f16_scale the scale is rounded
// to the nearest IEEE half first, and the zero point clamped to the codes. A clip ratio (0, 1] multiplies max|x|, or
// lo and hi, before the scale is taken (int_quant.h's fake_quant_group).
struct ReferenceIntGrid {
  float scale = 0.0f, zero = 0.0f, code_min = 0.0f, code_max = 0.0f;

  static ReferenceIntGrid fit(std::span<const float> group, int bits, bool symmetric, bool f16_scale = false,
                              float clip = 1.0f);
  float fake_quant(float x) const;  // (clamp(round(x / scale) + zero, code_min, code_max) - zero) · scale
};

// Every row of m in groups of group_size consecutive columns (0: the whole row; the last group may be shorter).
Matrix reference_int_fake_quant(const Matrix& m, int bits, bool symmetric, int group_size, bool f16_scale = false);

}  // namespace serq
