// Integer fake quantization: the spec is in int_quant.h. Each group takes two vectorized passes (range, then
// quantize-dequantize) through Eigen array maps over the caller's memory: no allocation, no per-element branches.
#include "core/quant/int_quant.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cfenv>
#include <cmath>

#include "core/common/error.h"
#include "core/quant/grid.h"
#include "core/quant/mxfp4.h"
#include "core/quant/row_groups.h"

namespace serq {
namespace {

using ConstGroup = Eigen::Map<const Eigen::ArrayXf>;
using Group = Eigen::Map<Eigen::ArrayXf>;

// Rounding: Eigen's rint() (_mm256_round_ps, current direction) and std::nearbyint round in the current mode,
// which serq never changes from the default FE_TONEAREST: round half to even. fake_quant_group asserts it.

[[noreturn]] void fail_non_finite() {
  fail("non-finite value in a quantization group; the input has NaN/Inf — check the weights/activations");
}

void check_half_range(float scale, float lo, float hi) {
  SERQ_CHECK(std::isfinite(scale), "a weight group spans [{}, {}], so its scale exceeds the IEEE half range of packed "
             "weights; the weights are corrupt or need rescaling — check the checkpoint", lo, hi);
}

void fake_quant_symmetric(ConstGroup in, Group out, int bits, bool f16_scale, float clip) {
  const float amax = clip_range(in.abs().maxCoeff<Eigen::PropagateNaN>(), clip);
  if (!std::isfinite(amax)) fail_non_finite();
  const IntCodeRange codes = int_code_range(bits, true);  // codes.min = -2^(b-1): unreachable, as |x| <= amax
  const float scale = int_scale(amax / codes.max, f16_scale);
  check_half_range(scale, -amax, amax);
  if (scale == 0.0f) {  // all zeros (or -0.0), or values so small that the scale underflows: dequantize to +0
    out.setZero();
    return;
  }
  out = (in / scale).rint().max(codes.min).min(codes.max) * scale;
}

void fake_quant_asymmetric(ConstGroup in, Group out, int bits, bool f16_scale, float clip) {
  const float lo = clip_range(std::min(in.minCoeff<Eigen::PropagateNaN>(), 0.0f), clip);
  const float hi = clip_range(std::max(in.maxCoeff<Eigen::PropagateNaN>(), 0.0f), clip);
  if (!std::isfinite(lo) || !std::isfinite(hi)) fail_non_finite();
  const IntCodeRange codes = int_code_range(bits, false);
  SERQ_CHECK(std::isfinite((hi - lo) / codes.max),
             "a quantization group spans [{}, {}], wider than float32 can scale; the input is corrupt — check the "
             "weights/activations", lo, hi);
  const float scale = int_scale((hi - lo) / codes.max, f16_scale);
  check_half_range(scale, lo, hi);
  if (scale == 0.0f) {
    out.setZero();
    return;
  }
  const float zero = int_zero(lo, scale, codes);
  out = (((in / scale).rint() + zero).max(codes.min).min(codes.max) - zero) * scale;
}

}  // namespace

std::string QuantSpec::describe() const {
  if (!enabled()) return "fp";
  if (format == NumberFormat::mxfp4) return fmt::format("mxfp4-g{}", group_size);
  return fmt::format("int{}-{}-{}", bits, symmetric ? "sym" : "asym",
                     group_size > 0 ? fmt::format("g{}", group_size) : std::string("row"));
}

void validate(const QuantSpec& spec, const std::string& what) {
  SERQ_CHECK((spec.bits >= 2 && spec.bits <= 8) || spec.bits == 16,
             "{}: {} bits is out of range; use 2..8, or 16 for full precision", what, spec.bits);
  SERQ_CHECK(spec.group_size >= 0, "{}: group size {} is negative; use a group size >= 1, or 0 for one group per row",
             what, spec.group_size);
  if (spec.format == NumberFormat::mxfp4 && spec.enabled()) {
    SERQ_CHECK(spec.bits == 4, "{}: MXFP4 elements are 4 bits (E2M1), not {}; use 4 bits with quant.format: mxfp4",
               what, spec.bits);
    SERQ_CHECK(spec.group_size >= 1, "{}: MXFP4 shares one scale per block of channels; set a block size (32 in the "
               "OCP spec) instead of one group per row", what);
  }
}

void fake_quant_group(const float* x, float* y, int n, int bits, bool symmetric, bool f16_scale, float clip) {
  assert(bits >= 2 && bits <= 8);
  assert(clip > 0.0f && clip <= 1.0f);
  assert(n >= 1);
  assert(std::fegetround() == FE_TONEAREST);
  const ConstGroup in(x, n);
  const Group out(y, n);
  if (symmetric)
    fake_quant_symmetric(in, out, bits, f16_scale, clip);
  else
    fake_quant_asymmetric(in, out, bits, f16_scale, clip);
}

void fake_quant_rows(Matrix& m, const QuantSpec& spec) {
  if (!spec.enabled()) return;
  if (spec.format == NumberFormat::mxfp4) {
    mxfp4_fake_quant_rows(m, spec.group_size);
    return;
  }
  const Eigen::Index cols = m.cols();
  const Eigen::Index group = spec.group_size > 0 ? std::min<Eigen::Index>(spec.group_size, cols) : cols;
  for_each_row_group(m, group, [&](float* values, int n) {
    fake_quant_group(values, values, n, spec.bits, spec.symmetric, spec.f16_scales);
  });
}

}  // namespace serq
