// Orthogonal matrix builders and InputRotation, checked against dense formulas written out here: the closed form
// of the Sylvester Hadamard entries, H(i, j) = (−1)^popcount(i & j), and the Kronecker product entry by entry.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>

#include "core/common/error.h"
#include "core/linear/orthogonal.h"

using namespace serq;

namespace {

float hadamard_entry(int i, int j) { return std::popcount(static_cast<unsigned>(i & j)) % 2 == 0 ? 1.0f : -1.0f; }

// (H_n / √n) ⊗ F as a dense matrix, entry by entry (F empty: identity of size d / n).
Matrix kronecker_reference(int d, int n, const Matrix& factor) {
  const int m = d / n;
  Matrix r = Matrix::Zero(d, d);
  for (int a = 0; a < n; ++a)
    for (int c = 0; c < n; ++c)
      for (int b = 0; b < m; ++b)
        for (int e = 0; e < m; ++e) {
          const float f = factor.size() > 0 ? factor(b, e) : (b == e ? 1.0f : 0.0f);
          r(a * m + b, c * m + e) = hadamard_entry(a, c) / std::sqrt(static_cast<float>(n)) * f;
        }
  return r;
}

double orthogonality_error(const Matrix& q) {
  return (q.transpose().cast<double>() * q.cast<double>() - Eigen::MatrixXd::Identity(q.cols(), q.cols()))
      .cwiseAbs()
      .maxCoeff();
}

}  // namespace

TEST_CASE("sylvester_hadamard has the closed-form entries and H times its transpose is n I") {
  for (int n : {1, 2, 4, 8, 64}) {
    const Matrix h = sylvester_hadamard(n);
    REQUIRE(h.rows() == n);
    REQUIRE(h.cols() == n);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) CHECK(h(i, j) == hadamard_entry(i, j));
    CHECK((h * h.transpose() - n * Matrix::Identity(n, n)).cwiseAbs().maxCoeff() == 0.0f);
  }
  CHECK_THROWS_AS(sylvester_hadamard(12), Error);
  CHECK_THROWS_AS(sylvester_hadamard(0), Error);
}

TEST_CASE("random_orthogonal is orthogonal and a function of its seed") {
  for (int n : {1, 5, 43}) {
    const Matrix q = random_orthogonal(n, 7);
    CHECK(orthogonality_error(q) < 1e-5);
  }
  const Matrix a = random_orthogonal(43, 7);
  CHECK(a == random_orthogonal(43, 7));
  CHECK((a - random_orthogonal(43, 8)).cwiseAbs().maxCoeff() > 0.1f);
}

TEST_CASE("random_orthogonal is unbiased in sign as a Haar matrix is") {
  // Householder QR gives R(0,0) = −sign(A(0,0))·‖A(:,0)‖, so without the sign fix Q(0,0) = −|A(0,0)| / ‖A(:,0)‖
  // is never positive (mean about −0.3). Haar: E[Q(0,0)] = 0 with a standard deviation of 1/√8 per draw, so the
  // mean of 400 draws lies within ±0.09 (5σ).
  double sum = 0.0;
  const int draws = 400;
  for (int seed = 0; seed < draws; ++seed) sum += random_orthogonal(8, static_cast<std::uint64_t>(seed))(0, 0);
  CHECK(std::abs(sum / draws) < 0.09);
}

TEST_CASE("InputRotation apply and dense equal X times the Kronecker product built by hand") {
  for (int d : {8, 64, 172}) {
    const InputRotation rotation = online_rotation(d, 3);
    const Matrix reference = kronecker_reference(d, rotation.hadamard_size, rotation.factor);
    CHECK(orthogonality_error(reference) < 1e-5);
    Matrix x = Matrix::Random(5, d);
    const Matrix expected = x * reference;
    rotation.apply(x);
    INFO("d = " << d << " (" << rotation.description << ")");
    CHECK((x - expected).cwiseAbs().maxCoeff() < 1e-5f);
    CHECK((rotation.dense(d) - reference).cwiseAbs().maxCoeff() < 1e-6f);
  }
}

TEST_CASE("online_rotation is a plain Hadamard for powers of two and names the Kronecker fallback otherwise") {
  const InputRotation power = online_rotation(64, 1);
  CHECK(power.hadamard_size == 64);
  CHECK(power.factor.size() == 0);
  CHECK(power.description == "hadamard(64)");

  const InputRotation fallback = online_rotation(172, 1);
  CHECK(fallback.hadamard_size == 4);
  CHECK(fallback.factor.rows() == 43);
  CHECK(fallback.description == "hadamard(4) x random-orthogonal(43)");
  CHECK(fallback.factor == online_rotation(172, 1).factor);
  CHECK(fallback.factor != online_rotation(172, 2).factor);

  CHECK(online_rotation(43, 1).description == "random-orthogonal(43)");
}

TEST_CASE("residual_rotation is a randomized Hadamard for powers of two and orthogonal otherwise") {
  const DenseRotation q = residual_rotation(64, 5);
  CHECK(q.description == "randomized-hadamard(64)");
  CHECK(orthogonality_error(q.matrix) < 1e-5);
  int flipped = 0;
  for (int j = 0; j < 64; ++j) {
    // Column j is ±(column j of H_64) / 8.
    const float sign = q.matrix(0, j) > 0.0f ? 1.0f : -1.0f;
    flipped += sign < 0.0f;
    for (int i = 0; i < 64; ++i) CHECK(q.matrix(i, j) == sign * hadamard_entry(i, j) / 8.0f);
  }
  CHECK(flipped > 10);  // random signs: 32 ± 4 expected
  CHECK(flipped < 54);
  CHECK(q.matrix == residual_rotation(64, 5).matrix);
  CHECK(q.matrix != residual_rotation(64, 6).matrix);

  const DenseRotation fallback = residual_rotation(60, 5);
  CHECK(fallback.description == "randomized-hadamard(4) x random-orthogonal(15)");
  CHECK(orthogonality_error(fallback.matrix) < 1e-5);
}
