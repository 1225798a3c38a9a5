// The truncated SVD: the randomized one against the exact reference (Eigen's JacobiSVD here, not the BDCSVD the
// library uses) on matrices with a decaying and with a flat spectrum, the shape of its factors, determinism by seed,
// and the cases it hands to the exact SVD.
#include <catch2/catch.hpp>

#include <Eigen/QR>
#include <Eigen/SVD>

#include "core/common/error.h"
#include "core/common/gaussian.h"
#include "core/linear/truncated_svd.h"

using namespace serq;

namespace {

// m × n with singular values `sigma` (descending) on random orthonormal bases.
Eigen::MatrixXd with_spectrum(Eigen::Index m, Eigen::Index n, const Eigen::VectorXd& sigma, std::uint64_t seed) {
  const Eigen::MatrixXd u = Eigen::HouseholderQR<Eigen::MatrixXd>(gaussian_matrix(m, sigma.size(), seed))
                                .householderQ() * Eigen::MatrixXd::Identity(m, sigma.size());
  const Eigen::MatrixXd v = Eigen::HouseholderQR<Eigen::MatrixXd>(gaussian_matrix(n, sigma.size(), seed + 1))
                                .householderQ() * Eigen::MatrixXd::Identity(n, sigma.size());
  return u * sigma.asDiagonal() * v.transpose();
}

double reconstruction_error(const Eigen::MatrixXd& a, const TruncatedSvd& svd) {
  return (a - svd.u * svd.sigma.asDiagonal() * svd.v.transpose()).norm();
}

// ||A − A_k||_F of the best rank-k approximation: the norm of the singular values after the k-th.
double optimal_error(const Eigen::MatrixXd& a, int rank) {
  const Eigen::VectorXd sigma = Eigen::JacobiSVD<Eigen::MatrixXd>(a).singularValues();
  return sigma.tail(sigma.size() - rank).norm();
}

void check_orthonormal(const Eigen::MatrixXd& q) {
  CHECK((q.transpose() * q - Eigen::MatrixXd::Identity(q.cols(), q.cols())).norm() < 1e-10);
}

}  // namespace

TEST_CASE("randomized SVD recovers the leading singular triplets of a matrix with a decaying spectrum") {
  Eigen::VectorXd sigma(120);
  for (int i = 0; i < sigma.size(); ++i) sigma[i] = std::pow(0.8, i);
  const Eigen::MatrixXd a = with_spectrum(300, 200, sigma, 11);
  const int rank = 10;
  const TruncatedSvd svd = truncated_svd(a, rank, {.seed = 3});
  REQUIRE(svd.u.rows() == 300);
  REQUIRE(svd.u.cols() == rank);
  REQUIRE(svd.v.rows() == 200);
  REQUIRE(svd.v.cols() == rank);
  for (int i = 0; i < rank; ++i) CHECK(svd.sigma[i] == Approx(sigma[i]).epsilon(1e-9));
  check_orthonormal(svd.u);
  check_orthonormal(svd.v);
  CHECK(reconstruction_error(a, svd) == Approx(optimal_error(a, rank)).epsilon(1e-9));
}

TEST_CASE("randomized SVD of a flat-spectrum error matrix comes within 1% of the optimal rank-k error") {
  // A quantization error looks like noise: its spectrum decays slowly, where a sketch is least accurate.
  const Eigen::MatrixXd a = gaussian_matrix(256, 640, 5) * 0.01;
  for (const int rank : {8, 32}) {
    const TruncatedSvd svd = truncated_svd(a, rank, {.seed = 9});
    const double optimal = optimal_error(a, rank), found = reconstruction_error(a, svd);
    INFO("rank " << rank << ": optimal " << optimal << ", randomized " << found);
    CHECK(found >= optimal * (1 - 1e-12));
    CHECK(found <= optimal * 1.01);
    const TruncatedSvd exact = truncated_svd(a, rank, {.algorithm = SvdAlgorithm::exact});
    CHECK(reconstruction_error(a, exact) == Approx(optimal).epsilon(1e-10));
    // Single values of a flat spectrum are found less precisely than the subspace they span (here within 2.1%).
    CHECK((svd.sigma - exact.sigma).cwiseAbs().maxCoeff() < 0.05 * exact.sigma[0]);
  }
}

TEST_CASE("randomized SVD is a function of its seed") {
  const Eigen::MatrixXd a = gaussian_matrix(80, 120, 1);
  const TruncatedSvd first = truncated_svd(a, 5, {.seed = 4}), again = truncated_svd(a, 5, {.seed = 4});
  const TruncatedSvd other = truncated_svd(a, 5, {.seed = 5});
  CHECK(first.sigma == again.sigma);
  CHECK(first.u == again.u);
  CHECK(first.v == again.v);
  CHECK(first.sigma != other.sigma);
}

TEST_CASE("truncated SVD: rank 0, a sketch as large as the matrix, and a bad rank") {
  const Eigen::MatrixXd a = gaussian_matrix(30, 20, 2);
  const TruncatedSvd none = truncated_svd(a, 0);
  CHECK(none.sigma.size() == 0);
  CHECK(none.u.rows() == 30);
  CHECK(none.v.rows() == 20);
  // rank + oversampling ≥ min(m, n): the exact SVD runs, so every rank up to min(m, n) is exact.
  for (const int rank : {4, 20}) {
    const TruncatedSvd svd = truncated_svd(a, rank);
    CHECK(reconstruction_error(a, svd) == Approx(optimal_error(a, rank)).margin(1e-10));
  }
  CHECK_THROWS_WITH(truncated_svd(a, 21), Catch::Contains("rank 21") && Catch::Contains("0..20"));
  CHECK_THROWS_WITH(truncated_svd(a, -1), Catch::Contains("0..20"));
  CHECK(parse_svd_algorithm("exact") == SvdAlgorithm::exact);
  CHECK(to_string(parse_svd_algorithm("randomized")) == "randomized");
  CHECK_THROWS_WITH(parse_svd_algorithm("lanczos"), Catch::Contains("'lanczos'") && Catch::Contains("exact"));
}
