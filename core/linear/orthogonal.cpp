// Hadamard and random orthogonal matrices from splitmix64, and QuaRot's online and residual rotations built on them.
#include "core/linear/orthogonal.h"

#include <bit>

#include <Eigen/Householder>
#include <Eigen/QR>
#include <fmt/format.h>

#include "core/common/error.h"
#include "core/common/gaussian.h"
#include "core/common/splitmix64.h"

namespace serq {

Matrix sylvester_hadamard(int n) {
  SERQ_CHECK(n >= 1 && std::has_single_bit(static_cast<unsigned>(n)),
             "Hadamard size {} is not a power of two; use 1, 2, 4, 8, ...", n);
  Matrix h = Matrix::Ones(1, 1);
  while (h.rows() < n) {
    const Eigen::Index half = h.rows();
    Matrix next(2 * half, 2 * half);
    next << h, h, h, -h;
    h.swap(next);
  }
  return h;
}

Matrix random_orthogonal(int n, std::uint64_t seed) {
  SERQ_CHECK(n >= 1, "random orthogonal matrix of size {}: use a size of 1 or more", n);
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(gaussian_matrix(n, n, seed));
  Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(n, n);
  for (Eigen::Index j = 0; j < n; ++j) {
    if (qr.matrixQR()(j, j) < 0.0) q.col(j) = -q.col(j);
  }
  return q.cast<float>();
}

InputRotation online_rotation(int d, std::uint64_t seed) {
  SERQ_CHECK(d >= 1, "online rotation of {} channels: use 1 or more", d);
  const int power = 1 << std::countr_zero(static_cast<unsigned>(d));
  const int odd = d / power;
  InputRotation rotation;
  rotation.hadamard_size = power;
  if (odd == 1) {
    rotation.description = fmt::format("hadamard({})", power);
    return rotation;
  }
  rotation.factor = random_orthogonal(odd, seed);
  rotation.description = power == 1 ? fmt::format("random-orthogonal({})", odd)
                                    : fmt::format("hadamard({}) x random-orthogonal({})", power, odd);
  return rotation;
}

DenseRotation residual_rotation(int d, std::uint64_t seed) {
  const InputRotation base = online_rotation(d, stream_seed(seed, 1));
  DenseRotation rotation{base.dense(d), "randomized-" + base.description};
  SplitMix64 signs(stream_seed(seed, 0));
  for (Eigen::Index j = 0; j < d; ++j) {
    if (signs.next() >> 63) rotation.matrix.col(j) = -rotation.matrix.col(j);
  }
  return rotation;
}

}  // namespace serq
