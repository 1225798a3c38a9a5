// Fake quantization (quantize, then dequantize, in float) for weights and activations: QuantSpec names a format
// (INT-b here, or MXFP4 from core/quant/mxfp4.h) and fake_quant_rows dispatches on it. What a quantized weight costs
// is measured from its packed form (core/quant/packed_weight.h).
//
// A row of a matrix is cut into groups of `group_size` consecutive columns (input channels); the last group
// is shorter where group_size does not divide the row. group_size = 0 means one group per row: per output
// channel for a weight (d_out × d_in), per token for activations (tokens × d_in).
//
// Symmetric, b bits:  scale = max|x| / (2^(b-1) - 1),  q = clamp(round(x / scale), -2^(b-1), 2^(b-1) - 1).
// Asymmetric, b bits: lo = min(min x, 0), hi = max(max x, 0), scale = (hi - lo) / (2^b - 1),
//                     zero = round(-lo / scale),  q = clamp(round(x / scale) + zero, 0, 2^b - 1),
//                     x̂ = (q - zero) · scale.
// With f16_scales (how weights are quantized: packed weights store IEEE-half scales, as GGUF, GPTQ and Marlin do)
// each group's scale is rounded to the nearest half before use, and zero = round(-lo / scale) on the rounded scale,
// clamped to the code range; a scale beyond the half range is an error. Activations keep float32 scales.
// round() is round-half-to-even (the default FE_TONEAREST mode, which serq never changes). Symmetric never
// reaches -2^(b-1), since |x| <= max|x|. A group whose values are all zero (or -0.0, or so small that the scale
// underflows to 0) has scale 0 and dequantizes to +0. A non-finite value in a group is an error (serq::Error),
// never a silent NaN.
#pragma once

#include <string>

#include "core/common/matrix.h"

namespace serq {

enum class NumberFormat {
  integer,  // INT-b, symmetric or asymmetric, per row or per group (this header)
  mxfp4,    // OCP MX v1.0 E2M1 elements with an E8M0 scale per block of group_size (core/quant/mxfp4.h); bits = 4
};

struct QuantSpec {
  int bits = 16;           // 2..8; 16 means "not quantized"
  bool symmetric = true;   // integer only; MXFP4 is symmetric by construction
  int group_size = 0;      // >= 1, or 0 for one group per row (integer only; MXFP4 needs a block size >= 1)
  NumberFormat format = NumberFormat::integer;
  bool f16_scales = false; // integer only: group scales rounded to IEEE half (weights; see the top of this file)

  bool enabled() const { return bits < 16; }
  bool operator==(const QuantSpec&) const = default;
  std::string describe() const;  // e.g. "int4-sym-g32", "int8-asym-row", "mxfp4-g32", "fp"
};

// Throws serq::Error if bits is not in 2..8 or 16, or group_size < 0, or an MXFP4 spec is not 4 bits with a block
// size >= 1. `what` names the config key (or the quantizer) at the start of the one-line message, e.g.
// "quant.w_bits: 9 bits is out of range; use 2..8, ...".
void validate(const QuantSpec& spec, const std::string& what);

// Fake-quantizes n >= 1 values of one group from x into y (x == y allowed); bits in 2..8. A clip ratio in (0, 1]
// shrinks the range first (max|x| · clip, or lo · clip and hi · clip) and values beyond it saturate at the end
// codes (the KV cache's quant.kv_clip, core/quant/kv_quant.h); 1 leaves the formulas above exactly.
void fake_quant_group(const float* x, float* y, int n, int bits, bool symmetric, bool f16_scale = false,
                      float clip = 1.0f);

// Fake-quantizes every row of m in place, group by group (MXFP4: block by block) along the columns; a spec that is
// not enabled leaves m as it is. Errors name the row and columns of the failing group.
void fake_quant_rows(Matrix& m, const QuantSpec& spec);

}  // namespace serq
