// Scalar INT-b reference quantizer (see int_quant_reference.h).
#include "core/quant/int_quant_reference.h"

#include <algorithm>
#include <cmath>

#include "core/common/half.h"
#include "core/quant/grid.h"

namespace serq {

ReferenceIntGrid ReferenceIntGrid::fit(std::span<const float> group, int bits, bool symmetric, bool f16_scale,
                                       float clip) {
  ReferenceIntGrid grid;
  if (symmetric) {
    float amax = 0.0f;
    for (const float v : group) amax = std::max(amax, std::fabs(v));
    amax = clip_range(amax, clip);
    grid.code_max = static_cast<float>((1 << (bits - 1)) - 1);
    grid.code_min = -grid.code_max - 1.0f;
    grid.scale = amax / grid.code_max;
    if (f16_scale) grid.scale = round_to_f16(grid.scale);
    return grid;
  }
  float lo = 0.0f, hi = 0.0f;
  for (const float v : group) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  lo = clip_range(lo, clip);
  hi = clip_range(hi, clip);
  grid.code_max = static_cast<float>((1 << bits) - 1);
  grid.scale = (hi - lo) / grid.code_max;
  if (f16_scale) grid.scale = round_to_f16(grid.scale);
  if (grid.scale > 0.0f) grid.zero = std::min(std::nearbyint(-lo / grid.scale), grid.code_max);
  return grid;
}

float ReferenceIntGrid::fake_quant(float x) const {
  if (scale == 0.0f) return 0.0f;
  return (std::clamp(std::nearbyint(x / scale) + zero, code_min, code_max) - zero) * scale;
}

Matrix reference_int_fake_quant(const Matrix& m, int bits, bool symmetric, int group_size, bool f16_scale) {
  const Eigen::Index cols = m.cols(), group = group_size > 0 ? group_size : cols;
  Matrix out(m.rows(), cols);
  for (Eigen::Index r = 0; r < m.rows(); ++r) {
    for (Eigen::Index c0 = 0; c0 < cols; c0 += group) {
      const Eigen::Index n = std::min(group, cols - c0);
      const ReferenceIntGrid grid =
          ReferenceIntGrid::fit(std::span<const float>(&m(r, c0), static_cast<std::size_t>(n)), bits, symmetric,
                               f16_scale);
      for (Eigen::Index c = c0; c < c0 + n; ++c) out(r, c) = grid.fake_quant(m(r, c));
    }
  }
  return out;
}

}  // namespace serq
