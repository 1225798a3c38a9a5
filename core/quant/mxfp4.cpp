// MXFP4 fake quantization: the spec is in mxfp4.h. Each block takes two vectorized passes (amax, then
// quantize-dequantize) through Eigen array maps over the caller's memory: no allocation, no per-element branches.
#include "core/quant/mxfp4.h"

#include <algorithm>
#include <cassert>
#include <cfenv>
#include <cmath>

#include "core/common/error.h"
#include "core/quant/row_groups.h"

namespace serq {
namespace {

using ConstBlock = Eigen::Map<const Eigen::ArrayXf>;
using Block = Eigen::Map<Eigen::ArrayXf>;

constexpr int kE2M1MaxExponent = 2;  // the largest E2M1 magnitude, 6 = 1.5 · 2^2
constexpr float kE2M1Max = 6.0f;
constexpr int kE8M0MinExponent = -127;  // E8M0 encodes 2^-127 .. 2^127 (0xFF is NaN)
constexpr int kE8M0MaxExponent = 127;
constexpr int kE2M1Bits = 4;
constexpr int kE8M0Bits = 8;

}  // namespace

void mxfp4_fake_quant_block(const float* x, float* y, int n) {
  assert(n >= 1);
  assert(std::fegetround() == FE_TONEAREST);  // rint(): round half to even
  const ConstBlock in(x, n);
  Block out(y, n);
  const float amax = in.abs().maxCoeff<Eigen::PropagateNaN>();
  SERQ_CHECK(std::isfinite(amax),
             "non-finite value in an MXFP4 block; the input has NaN/Inf — check the weights/activations");
  if (amax == 0.0f) {  // all zeros (or -0.0): dequantize to +0
    out.setZero();
    return;
  }
  int exponent = 0;
  std::frexp(amax, &exponent);  // amax = m · 2^exponent with m in [0.5, 1), so floor(log2 amax) = exponent - 1
  const int shared = std::clamp(exponent - 1 - kE2M1MaxExponent, kE8M0MinExponent, kE8M0MaxExponent);
  const float scale = std::ldexp(1.0f, shared);
  const float inv_scale = std::ldexp(1.0f, -shared);  // powers of two: scaling by either is exact
  out = in * inv_scale;
  // The E2M1 grid spacing is 0.5 below 2, 1 in [2, 4) and 2 from 4 up. Dividing by that spacing and rounding half
  // to even lands on the even mantissa at every tie (the mantissa bit is the low bit of the rounded multiple).
  const auto magnitude = out.abs();
  const auto step = 0.5f + 0.5f * (magnitude >= 2.0f).cast<float>() + (magnitude >= 4.0f).cast<float>();
  out = ((out / step).rint() * step).max(-kE2M1Max).min(kE2M1Max) * scale;
}

void mxfp4_fake_quant_rows(Matrix& m, int block_size) {
  SERQ_CHECK(block_size >= 1, "mxfp4: block size {} is not positive; use 32, the OCP MX block size", block_size);
  for_each_row_group(m, std::min<Eigen::Index>(block_size, m.cols()),
                     [](float* values, int n) { mxfp4_fake_quant_block(values, values, n); });
}

double mxfp4_bits_per_weight(std::int64_t rows, std::int64_t cols, int block_size) {
  assert(rows > 0 && cols > 0 && block_size >= 1);
  const std::int64_t blocks_per_row = (cols + block_size - 1) / block_size;
  const double total = static_cast<double>(rows) * static_cast<double>(cols * kE2M1Bits + blocks_per_row * kE8M0Bits);
  return total / (static_cast<double>(rows) * static_cast<double>(cols));
}

}  // namespace serq
