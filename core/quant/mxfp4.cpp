// MXFP4 fake quantization: the spec is in mxfp4.h. Each block takes two vectorized passes (amax, then
// quantize-dequantize) through Eigen array maps over the caller's memory: no allocation, no per-element branches.
#include "core/quant/mxfp4.h"

#include <algorithm>
#include <cassert>
#include <cfenv>
#include <cmath>

#include "core/common/error.h"
#include "core/quant/grid.h"
#include "core/quant/row_groups.h"

namespace serq {
namespace {

using ConstBlock = Eigen::Map<const Eigen::ArrayXf>;
using Block = Eigen::Map<Eigen::ArrayXf>;

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
  const float scale = mxfp4_scale(amax);
  const float inv_scale = 1.0f / scale;  // powers of two: scaling by either is exact
  out = e2m1_round(in * inv_scale) * scale;
}

void mxfp4_fake_quant_rows(Matrix& m, int block_size) {
  SERQ_CHECK(block_size >= 1, "mxfp4: block size {} is not positive; use 32, the OCP MX block size", block_size);
  for_each_row_group(m, std::min<Eigen::Index>(block_size, m.cols()),
                     [](float* values, int n) { mxfp4_fake_quant_block(values, values, n); });
}

}  // namespace serq
