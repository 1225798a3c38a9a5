// Box–Muller over splitmix64 uniforms (see gaussian.h).
#include "core/common/gaussian.h"

#include <cmath>
#include <numbers>

#include "core/common/splitmix64.h"

namespace serq {
namespace {

// Uniform in (0, 1] from the top 53 bits, so its logarithm is finite.
double uniform_open_zero(SplitMix64& generator) {
  return static_cast<double>((generator.next() >> 11) + 1) * 0x1.0p-53;
}

}  // namespace

Eigen::MatrixXd gaussian_matrix(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed) {
  SplitMix64 generator(seed);
  Eigen::MatrixXd gaussian(rows, cols);
  double* values = gaussian.data();
  const Eigen::Index count = gaussian.size();
  for (Eigen::Index i = 0; i < count; i += 2) {  // two normals from two uniforms
    const double radius = std::sqrt(-2.0 * std::log(uniform_open_zero(generator)));
    const double angle = 2.0 * std::numbers::pi * uniform_open_zero(generator);
    values[i] = radius * std::cos(angle);
    if (i + 1 < count) values[i + 1] = radius * std::sin(angle);
  }
  return gaussian;
}

}  // namespace serq
