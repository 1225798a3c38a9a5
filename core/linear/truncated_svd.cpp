// Exact (BDCSVD) and randomized (sketch, power iterations, small exact SVD) truncated SVDs; see truncated_svd.h.
#include "core/linear/truncated_svd.h"

#include <algorithm>

#include <Eigen/QR>
#include <Eigen/SVD>

#include "core/common/error.h"
#include "core/common/gaussian.h"

namespace serq {
namespace {

TruncatedSvd exact(const Eigen::MatrixXd& a, int rank) {
  const Eigen::BDCSVD<Eigen::MatrixXd> svd(a, Eigen::ComputeThinU | Eigen::ComputeThinV);
  return {svd.matrixU().leftCols(rank), svd.singularValues().head(rank), svd.matrixV().leftCols(rank)};
}

// An orthonormal basis of the columns of y (m × l, m ≥ l): the thin Q of its Householder QR.
Eigen::MatrixXd orthonormal_basis(const Eigen::MatrixXd& y) {
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(y);
  return qr.householderQ() * Eigen::MatrixXd::Identity(y.rows(), y.cols());
}

}  // namespace

TruncatedSvd truncated_svd(const Eigen::MatrixXd& a, int rank, const SvdOptions& options) {
  const Eigen::Index smaller = std::min(a.rows(), a.cols());
  SERQ_CHECK(rank >= 0 && rank <= smaller, "truncated SVD of rank {} of a {} × {} matrix: use a rank of 0..{}", rank,
             a.rows(), a.cols(), smaller);
  SERQ_CHECK(options.oversampling >= 0 && options.power_iterations >= 0,
             "randomized SVD: oversampling {} and power iterations {} must be 0 or more", options.oversampling,
             options.power_iterations);
  if (rank == 0) return {Eigen::MatrixXd(a.rows(), 0), Eigen::VectorXd(0), Eigen::MatrixXd(a.cols(), 0)};
  const Eigen::Index sketch = rank + options.oversampling;
  if (options.algorithm == SvdAlgorithm::exact || sketch >= smaller) return exact(a, rank);

  Eigen::MatrixXd q = orthonormal_basis(a * gaussian_matrix(a.cols(), sketch, options.seed));
  for (int i = 0; i < options.power_iterations; ++i) {
    q = orthonormal_basis(a * orthonormal_basis(a.transpose() * q));
  }
  const Eigen::MatrixXd small = q.transpose() * a;  // sketch × n
  const Eigen::BDCSVD<Eigen::MatrixXd> svd(small, Eigen::ComputeThinU | Eigen::ComputeThinV);
  return {q * svd.matrixU().leftCols(rank), svd.singularValues().head(rank), svd.matrixV().leftCols(rank)};
}

std::string to_string(SvdAlgorithm algorithm) {
  return algorithm == SvdAlgorithm::exact ? "exact" : "randomized";
}

SvdAlgorithm parse_svd_algorithm(const std::string& text) {
  if (text == "exact") return SvdAlgorithm::exact;
  SERQ_CHECK(text == "randomized", "SVD algorithm '{}' is unknown; use exact or randomized", text);
  return SvdAlgorithm::randomized;
}

}  // namespace serq
