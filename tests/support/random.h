// Seeded random test data and the error measures the tests compare by.
#pragma once

#include <random>

#include "core/common/matrix.h"

namespace serq::test {

// rows × cols of N(0, sigma²), drawn in storage order from `rng`.
inline Matrix random_matrix(Eigen::Index rows, Eigen::Index cols, std::mt19937& rng, float sigma = 1.0f) {
  std::normal_distribution<float> normal(0.0f, sigma);
  Matrix m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

// The same from a fresh generator seeded with `seed`.
inline Matrix random_matrix(Eigen::Index rows, Eigen::Index cols, unsigned seed, float sigma) {
  std::mt19937 rng(seed);
  return random_matrix(rows, cols, rng, sigma);
}

// ‖got − want‖ / ‖want‖ (Frobenius).
inline double relative_error(const Matrix& got, const Matrix& want) {
  return static_cast<double>((got - want).norm()) / static_cast<double>(want.norm());
}

// max |got − want| / max |want|.
inline double max_relative_error(const Matrix& got, const Matrix& want) {
  return static_cast<double>((got - want).cwiseAbs().maxCoeff()) / static_cast<double>(want.cwiseAbs().maxCoeff());
}

}  // namespace serq::test
