// InputRotation: X·((H_n/√n) ⊗ F) computed as a GEMM by F inside each block, then butterflies across blocks.
#include "core/linear/rotation.h"

#include <cmath>

#include "core/common/error.h"

namespace serq {

void InputRotation::apply(Matrix& x) const {
  const Eigen::Index n = hadamard_size, d = x.cols();
  SERQ_CHECK(n >= 1 && (n & (n - 1)) == 0, "rotation {}: Hadamard size {} is not a power of two", description, n);
  SERQ_CHECK(d % n == 0, "rotation {}: {} channels do not split into {} Hadamard blocks", description, d, n);
  const Eigen::Index m = d / n;
  if (factor.size() > 0) {
    SERQ_CHECK(factor.rows() == m && factor.cols() == m, "rotation {}: factor is {}×{}, blocks are {} wide",
               description, factor.rows(), factor.cols(), m);
    // Rows of x as (rows · n) × m blocks, each multiplied by F on the right.
    Eigen::Map<Matrix> blocks(x.data(), x.rows() * n, m);
    Matrix rotated = blocks * factor;
    blocks = rotated;
  }
  if (n == 1) return;
  const float norm = 1.0f / std::sqrt(static_cast<float>(n));
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    float* row = x.row(r).data();
    for (Eigen::Index half = 1; half < n; half *= 2) {
      for (Eigen::Index a = 0; a < n; a += 2 * half) {
        for (Eigen::Index k = a; k < a + half; ++k) {  // in place: no temporary per pair of blocks
          float* lo = row + k * m;
          float* hi = row + (k + half) * m;
          for (Eigen::Index j = 0; j < m; ++j) {
            const float sum = lo[j] + hi[j];
            hi[j] = lo[j] - hi[j];
            lo[j] = sum;
          }
        }
      }
    }
    Eigen::Map<Eigen::ArrayXf>(row, d) *= norm;
  }
}

Matrix InputRotation::dense(int d) const {
  Matrix identity = Matrix::Identity(d, d);
  apply(identity);  // rows of I·R are the rows of R
  return identity;
}

}  // namespace serq
