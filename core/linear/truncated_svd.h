// Rank-k truncated SVD A ≈ U_k Σ_k V_kᵀ, exact or randomized, in double.
//
// - exact: Eigen's BDCSVD of the whole matrix, truncated. It is the reference the randomized one is tested against.
// - randomized (Halko, Martinsson & Tropp 2011, Algorithms 4.4 and 5.1): a seeded Gaussian sketch Y = A·Ω of
//   k + oversampling columns, `power_iterations` rounds of Q ← orth(A·orth(Aᵀ·Q)) (orthonormalized every half step,
//   so the small singular values are not lost to rounding), then the exact SVD of the small Qᵀ·A. Its cost is a few
//   products with A instead of a full decomposition: at 4096 × 11008 and k = 32, seconds instead of minutes.
//   Where k + oversampling reaches min(m, n) the sketch would not be smaller than A, and the exact SVD runs instead.
#pragma once

#include <cstdint>
#include <string>

#include <Eigen/Core>

namespace serq {

enum class SvdAlgorithm { exact, randomized };

struct SvdOptions {
  SvdAlgorithm algorithm = SvdAlgorithm::randomized;
  int oversampling = 16;
  int power_iterations = 4;
  std::uint64_t seed = 0;
};

struct TruncatedSvd {
  Eigen::MatrixXd u;      // m × k, orthonormal columns
  Eigen::VectorXd sigma;  // k, descending, ≥ 0
  Eigen::MatrixXd v;      // n × k, orthonormal columns
};

// The k largest singular triplets of `a`; 0 ≤ k ≤ min(m, n) (a serq::Error otherwise).
TruncatedSvd truncated_svd(const Eigen::MatrixXd& a, int rank, const SvdOptions& options = {});

// "exact" or "randomized", for config values and result files; parse_svd_algorithm throws on anything else.
std::string to_string(SvdAlgorithm algorithm);
SvdAlgorithm parse_svd_algorithm(const std::string& text);

}  // namespace serq
