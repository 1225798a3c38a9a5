// Benchmark: the rank-k truncated SVD that lorc/lqer/l2qer run on each weight error, at LLaMA-2-7B's down_proj
// shape (4096 × 11008 by default). The matrix is a real quantization error of a RANDOM weight (N(0, 0.02²) with
// heavy-tailed Student-t entries mixed in, RTN INT4 sym g128), weighted per input channel as L2QER does by a
// log-normal activation scale. Baseline in the same run: the optimal rank-k error from the exact top singular values
// (eigenvalues of A·Aᵀ, ‖A − A_k‖² = ‖A‖² − Σ_{i≤k} σ_i²), since the full BDCSVD takes minutes at this size.
//
// usage: bench_svd [--rows M] [--cols N] [--rank K] [--repeats R]
#include <Eigen/Eigenvalues>

#include <cmath>
#include <cstdio>
#include <string>

#include "core/common/build_info.h"
#include "core/common/error.h"
#include "core/common/gaussian.h"
#include "core/linear/truncated_svd.h"
#include "core/quant/int_quant.h"
#include "tools/bench_support.h"

namespace {

// The L2QER-weighted RTN INT4 error of a random M × N weight.
Eigen::MatrixXd weighted_error(int rows, int cols) {
  const Eigen::MatrixXd normal = serq::gaussian_matrix(rows, cols, 1);
  const Eigen::MatrixXd tails = serq::gaussian_matrix(rows, cols, 2);
  // A few large entries as real weights have: every 97th entry scaled by 8.
  serq::Matrix weight = (0.02 * normal).cast<float>();
  for (Eigen::Index i = 0; i < weight.size(); i += 97) weight.data()[i] = static_cast<float>(0.16 * tails.data()[i]);
  serq::Matrix quantized = weight;
  serq::QuantSpec spec;
  spec.bits = 4;
  spec.symmetric = true;
  spec.group_size = 128;
  serq::fake_quant_rows(quantized, spec);
  const Eigen::VectorXd log_scale = serq::gaussian_matrix(cols, 1, 3).col(0);
  const Eigen::VectorXd scale = (0.7 * log_scale).array().exp();
  return (weight - quantized).cast<double>() * scale.asDiagonal();
}

}  // namespace

int main(int argc, char** argv) try {
  int rows = 4096, cols = 11008, rank = 32, repeats = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: bench_svd [--rows M] [--cols N] [--rank K] [--repeats R]\nRandomized rank-K SVD of an "
                  "L2QER-weighted INT4 error of a random M x N weight (default 4096 x 11008, K 32): median time of R "
                  "runs and its rank-K error against the optimal one from the exact top singular values.\n");
      return 0;
    }
    SERQ_CHECK(i + 1 < argc && (arg == "--rows" || arg == "--cols" || arg == "--rank" || arg == "--repeats"),
               "bench_svd: unknown argument {} (see --help)", arg);
    const int value = std::stoi(argv[++i]);
    (arg == "--rows" ? rows : arg == "--cols" ? cols : arg == "--rank" ? rank : repeats) = value;
  }
  const serq::BuildInfo info = serq::build_info();
  std::printf("bench_svd: commit %s; %s; Eigen products on one thread\n", info.git_commit.c_str(),
              info.compiler.c_str());
  const Eigen::MatrixXd a = weighted_error(rows, cols);

  serq::TruncatedSvd svd;
  const double randomized = serq::bench::median_seconds(repeats, [&] { svd = serq::truncated_svd(a, rank); });
  const double found = (a - svd.u * svd.sigma.asDiagonal() * svd.v.transpose()).norm();

  const auto start = std::chrono::steady_clock::now();
  const Eigen::MatrixXd gram = rows <= cols ? Eigen::MatrixXd(a * a.transpose()) : Eigen::MatrixXd(a.transpose() * a);
  const Eigen::VectorXd eigen = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(gram, Eigen::EigenvaluesOnly)
                                    .eigenvalues();  // ascending
  const double exact_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double top = eigen.tail(rank).sum();
  const double optimal = std::sqrt(std::max(0.0, a.squaredNorm() - top));
  const double sigma_error = (svd.sigma.array().square() - eigen.tail(rank).reverse().array()).abs().maxCoeff() /
                             eigen.maxCoeff();

  std::printf("matrix %d x %d, rank %d, %d repeats (oversampling 16, 4 power iterations)\n", rows, cols, rank,
              repeats);
  std::printf("| | seconds | rank-%d error ||A - A_k||_F | vs optimal |\n|---|---|---|---|\n", rank);
  std::printf("| randomized SVD (median) | %.2f | %.6f | %+.4f%% |\n", randomized, found,
              100.0 * (found / optimal - 1.0));
  std::printf("| exact top-%d (eigenvalues of the Gram matrix) | %.2f | %.6f | |\n", rank, exact_seconds, optimal);
  std::printf("||A||_F %.6f; largest |sigma_i^2 - exact| / sigma_1^2 = %.2e\n", a.norm(), sigma_error);
  return 0;
} catch (const serq::Error& e) {
  std::fprintf(stderr, "bench_svd: %s\n", e.what());
  return 1;
}
