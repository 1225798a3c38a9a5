// The CPU's flash-style attention (core/backend/cpu/flash_attention.h) with each ISA kernel this CPU has, against the
// reference backend's plain attention (test_backend_ops covers the kernel the backend picks): query tiles cut mid-way,
// decoding from a cache, head dims that are not a multiple of the vector width. Its output is the same bits at any
// thread count, and a NaN in one key reaches only the queries that see it.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>

#include "core/backend/backend.h"
#include "core/backend/cpu/flash_attention.h"
#include "core/common/matrix.h"
#include "tests/support/backend_calls.h"
#include "tests/support/random.h"

using namespace serq;

namespace {

std::vector<FlashKernel> kernels_here() {
  std::vector<FlashKernel> kernels;
  for (const FlashKernel kernel : {FlashKernel::avx2, FlashKernel::avx512})
    if (cpu_has(kernel)) kernels.push_back(kernel);
  return kernels;
}

Matrix flash(const Matrix& q, const Matrix& k, const Matrix& v, const AttentionShape& shape, FlashKernel kernel,
             int threads) {
  Matrix out(q.rows(), q.cols());
  flash_attention(q.data(), k.data(), v.data(), shape, out.data(), kernel, threads);
  return out;
}

}  // namespace

TEST_CASE("flash attention equals the reference with each ISA kernel of this CPU") {
  struct Case {
    AttentionShape shape;
    float sigma;
  };
  const Case cases[] = {
      {{.n_heads = 9, .n_kv_heads = 3, .head_dim = 64, .batch = 1, .seq = 300, .pos0 = 0, .kv_rows = 300}, 3.0f},
      {{.n_heads = 4, .n_kv_heads = 4, .head_dim = 24, .batch = 2, .seq = 130, .pos0 = 0, .kv_rows = 130}, 1.0f},
      {{.n_heads = 6, .n_kv_heads = 2, .head_dim = 40, .batch = 2, .seq = 70, .pos0 = 100, .kv_rows = 200}, 2.0f},
      {{.n_heads = 8, .n_kv_heads = 2, .head_dim = 128, .batch = 3, .seq = 1, .pos0 = 190, .kv_rows = 200}, 1.0f},
  };
  std::mt19937 rng(10);
  for (const Case& c : cases) {
    const AttentionShape& s = c.shape;
    const Matrix q = test::random_matrix(s.batch * s.seq, s.n_heads * s.head_dim, rng, c.sigma);
    const Matrix k = test::random_matrix(s.batch * s.kv_rows, s.n_kv_heads * s.head_dim, rng, c.sigma);
    const Matrix v = test::random_matrix(s.batch * s.kv_rows, s.n_kv_heads * s.head_dim, rng);
    const Matrix expected = test::attention(reference_backend(), q, k, v, s);
    for (const FlashKernel kernel : kernels_here()) {
      const Matrix got = flash(q, k, v, s, kernel, 2);
      const double nmse = (got - expected).cast<double>().squaredNorm() / expected.cast<double>().squaredNorm();
      INFO(flash_kernel_name(kernel) << ": head_dim " << s.head_dim << ", seq " << s.seq << " at " << s.pos0
                                     << ", NMSE " << nmse);
      CHECK(nmse < 1e-11);
    }
  }
}

TEST_CASE("flash attention gives the same bits on 1, 2 and 5 threads") {
  std::mt19937 rng(11);
  const AttentionShape shape{.n_heads = 6, .n_kv_heads = 2, .head_dim = 32, .batch = 2, .seq = 200, .pos0 = 0,
                             .kv_rows = 200};
  const Matrix q = test::random_matrix(400, 192, rng), k = test::random_matrix(400, 64, rng, 3.0f);
  const Matrix v = test::random_matrix(400, 64, rng);
  for (const FlashKernel kernel : kernels_here()) {
    INFO(flash_kernel_name(kernel));
    const Matrix one = flash(q, k, v, shape, kernel, 1);
    CHECK(flash(q, k, v, shape, kernel, 2) == one);
    CHECK(flash(q, k, v, shape, kernel, 5) == one);
  }
}

TEST_CASE("flash attention: a NaN key reaches the queries that see it and no earlier one") {
  std::mt19937 rng(12);
  const AttentionShape shape{.n_heads = 2, .n_kv_heads = 1, .head_dim = 8, .batch = 1, .seq = 150, .pos0 = 0,
                             .kv_rows = 150};
  const Matrix q = test::random_matrix(150, 16, rng), v = test::random_matrix(150, 8, rng);
  Matrix k = test::random_matrix(150, 8, rng);
  k(100, 3) = std::numeric_limits<float>::quiet_NaN();
  for (const FlashKernel kernel : kernels_here()) {
    INFO(flash_kernel_name(kernel));
    const Matrix out = flash(q, k, v, shape, kernel, 2);
    CHECK_FALSE(out.topRows(100).hasNaN());
    for (int t = 100; t < 150; ++t) CHECK(std::isnan(out(t, 0)));
  }
}

TEST_CASE("flash attention: the first queries of a sequence get the same bits as that prefix alone") {
  std::mt19937 rng(13);
  const auto shape = [](int seq) {
    return AttentionShape{.n_heads = 6, .n_kv_heads = 2, .head_dim = 32, .batch = 1, .seq = seq, .pos0 = 0,
                          .kv_rows = seq};
  };
  const Matrix q = test::random_matrix(150, 192, rng), k = test::random_matrix(150, 64, rng, 2.0f);
  const Matrix v = test::random_matrix(150, 64, rng);
  for (const FlashKernel kernel : kernels_here()) {
    INFO(flash_kernel_name(kernel));
    const Matrix full = flash(q, k, v, shape(150), kernel, 2);
    for (const int prefix : {25, 40, 129}) {
      const Matrix part = flash(q.topRows(prefix), k.topRows(prefix), v.topRows(prefix), shape(prefix), kernel, 2);
      CHECK(part == full.topRows(prefix));
    }
  }
}
