// test_backend_ops: every op of core/backend/backend.h on one backend against the reference backend, on random and
// edge-case inputs, by NMSE = ‖out − ref‖² / ‖ref‖² with a tolerance stated per op (ggml's test-backend-ops). Inputs
// and outputs cross through Backend::set and get (tests/support/backend_calls.h), as in the forward pass.
//
//   test_backend_ops --backend NAME [catch2 options]
//
// CTest runs it once per listed backend other than the reference. A backend that cannot run here (not built, no
// device) exits 77, which CTest reports as skipped, never as passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <Eigen/QR>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/common/error.h"
#include "core/linear/quant_linear.h"
#include "core/model/config.h"
#include "core/model/forward.h"
#include "experiments/calibrate.h"
#include "methods/serq.h"
#include "tests/model_fixtures.h"
#include "tests/support/backend_calls.h"
#include "tests/support/random.h"

namespace serq {
namespace {

using test::random_matrix;

Backend* tested = nullptr;  // set by main()

template <class A, class B>
double nmse(const A& out, const B& ref) {
  const double error = (out.template cast<double>() - ref.template cast<double>()).squaredNorm();
  const double norm = ref.template cast<double>().squaredNorm();
  return norm > 0 ? error / norm : error;
}

// Runs `op` on the tested backend and on the reference with the same inputs and checks the NMSE of the outputs.
template <class Op>
void check_op(const char* what, double tolerance, Op op) {
  const Matrix expected = op(reference_backend());
  const Matrix got = op(*tested);
  REQUIRE(got.rows() == expected.rows());
  REQUIRE(got.cols() == expected.cols());
  const double error = nmse(got, expected);
  INFO(tested->name() << " " << what << ": NMSE " << error << " (tolerance " << tolerance << ")");
  CHECK(error <= tolerance);
}

QuantLinear make_linear(const std::string& name, int d_out, int d_in, std::mt19937& rng) {
  QuantLinear layer;
  layer.name = name;
  layer.weight = random_matrix(d_out, d_in, rng, 0.1f);
  return layer;
}

Matrix random_orthogonal(int m, std::mt19937& rng) {
  return Eigen::HouseholderQR<Matrix>(random_matrix(m, m, rng)).householderQ();
}

}  // namespace

TEST_CASE("embedding: rows of the table, the first and the last id included; an id outside is an error") {
  std::mt19937 rng(1);
  const Matrix table = random_matrix(50, 24, rng);
  const std::vector<int> tokens = {0, 49, 7, 7, 13};
  check_op("embedding", 0.0, [&](Backend& b) { return test::embedding(b, table, tokens); });
  if (tested->host_memory()) {  // a device backend's ids are checked on the host before they cross (token_tensor)
    const std::vector<int> outside = {3, 50};
    CHECK_THROWS_WITH(test::embedding(*tested, table, outside), Catch::Contains("outside the vocabulary"));
  }
}

TEST_CASE("rms_norm: random rows, a zero row (ε alone) and rows of 1e4") {
  std::mt19937 rng(2);
  Matrix x = random_matrix(6, 96, rng);
  x.row(2).setZero();
  x.row(4) *= 1e4f;
  const Vector gamma = random_matrix(96, 1, rng).col(0);
  check_op("rms_norm", 1e-12, [&](Backend& b) { return test::rms_norm(b, x, gamma, 1e-5f); });
}

TEST_CASE("rope: both layouts, from position 0 and from 1000, with and without llama3 scaling") {
  std::mt19937 rng(3);
  for (const bool interleaved : {true, false}) {
    for (const int pos0 : {0, 1000}) {
      for (const bool scaled : {false, true}) {
        ModelConfig config;
        config.dim = 96;
        config.n_heads = 3;
        config.rope_theta = 500000.0f;
        if (scaled) {
          config.rope_scaling = {.type = RopeScaling::Type::llama3, .factor = 8.0f, .low_freq_factor = 1.0f,
                                 .high_freq_factor = 4.0f, .original_max_position_embeddings = 64};
        }
        const std::vector<float> frequencies = config.rope_frequencies();
        const Matrix x = random_matrix(2 * 5, 96, rng);
        const RopeShape shape{.n_heads = 3, .head_dim = 32, .batch = 2, .seq = 5, .pos0 = pos0, .frequencies = {},
                              .interleaved = interleaved};
        INFO("interleaved " << interleaved << ", pos0 " << pos0 << ", llama3 scaling " << scaled);
        // Angles up to 1000 rad are taken in float on the CPU (as llama2.c and HF do): 1e-4 rad of rounding.
        check_op("rope", 1e-8, [&](Backend& b) { return test::rope(b, x, shape, frequencies); });
      }
    }
  }
}

TEST_CASE("attention: causal GQA over 300 queries (more than one query block), and from a cache of earlier keys") {
  std::mt19937 rng(4);
  SECTION("two sequences of 300, 6 query heads on 2 key heads, large scores") {
    const AttentionShape shape{.n_heads = 6, .n_kv_heads = 2, .head_dim = 16, .batch = 2, .seq = 300, .pos0 = 0,
                               .kv_rows = 300};
    const Matrix q = random_matrix(600, 96, rng, 4.0f), k = random_matrix(600, 32, rng, 4.0f);
    const Matrix v = random_matrix(600, 32, rng);
    check_op("attention", 1e-10, [&](Backend& b) { return test::attention(b, q, k, v, shape); });
  }
  SECTION("5 new queries at positions 7..11 of a cache of capacity 20") {
    const AttentionShape shape{.n_heads = 4, .n_kv_heads = 4, .head_dim = 8, .batch = 2, .seq = 5, .pos0 = 7,
                               .kv_rows = 20};
    const Matrix q = random_matrix(10, 32, rng), k = random_matrix(40, 32, rng), v = random_matrix(40, 32, rng);
    check_op("attention", 1e-10, [&](Backend& b) { return test::attention(b, q, k, v, shape); });
  }
  SECTION("70 queries at positions 100..169 (tiles cut mid-way), and one query at 130, 3 query heads a key head") {
    for (const int seq : {70, 1}) {
      const int pos0 = seq == 1 ? 130 : 100;
      const AttentionShape shape{.n_heads = 6, .n_kv_heads = 2, .head_dim = 16, .batch = 2, .seq = seq, .pos0 = pos0,
                                 .kv_rows = 200};
      const Matrix q = random_matrix(2 * seq, 96, rng, 2.0f), k = random_matrix(400, 32, rng, 2.0f);
      const Matrix v = random_matrix(400, 32, rng);
      INFO("seq " << seq << " at position " << pos0);
      check_op("attention", 1e-10, [&](Backend& b) { return test::attention(b, q, k, v, shape); });
    }
  }
}

TEST_CASE("swiglu and add: random values and gates of ±100 (exp overflows in float)") {
  std::mt19937 rng(5);
  Matrix gate = random_matrix(7, 40, rng, 3.0f);
  gate(0, 0) = 100.0f;
  gate(1, 1) = -100.0f;
  gate(2, 2) = 0.0f;
  const Matrix up = random_matrix(7, 40, rng);
  check_op("swiglu", 1e-12, [&](Backend& b) { return test::swiglu(b, gate, up); });
  check_op("add", 0.0, [&](Backend& b) { return test::add(b, gate, up); });
}

TEST_CASE("act_quant: INT symmetric and asymmetric, per token and per group with a short last group, zero rows, "
          "MXFP4 with a short last block; NaN is an error") {
  std::mt19937 rng(6);
  Matrix x = random_matrix(9, 70, rng);
  x.row(3).setZero();
  x(5, 0) = 40.0f;  // an outlier
  const std::vector<QuantSpec> specs = {
      {.bits = 4, .symmetric = true, .group_size = 0},  {.bits = 4, .symmetric = false, .group_size = 32},
      {.bits = 8, .symmetric = false, .group_size = 0}, {.bits = 3, .symmetric = true, .group_size = 16},
      {.bits = 4, .group_size = 32, .format = NumberFormat::mxfp4}};
  for (const QuantSpec& spec : specs) {
    INFO(spec.describe());
    // The same grid and the same float rounding: equal values.
    check_op("act_quant", 0.0, [&](Backend& b) { return test::act_quant(b, x, spec); });
    Matrix bad = x;
    bad(1, 1) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(test::act_quant(*tested, bad, spec), Error);
    CHECK_THROWS_AS(test::act_quant(reference_backend(), bad, spec), Error);
  }
}

TEST_CASE("kv_quant: per head and per group, symmetric and asymmetric, 2 to 8 bits, clipped, a zero head and an "
          "outlier; NaN is an error") {
  std::mt19937 rng(12);
  Matrix x = random_matrix(11, 4 * 64, rng);  // 4 KV heads of 64 channels
  x.block(2, 64, 1, 64).setZero();
  x(7, 3) = 50.0f;
  const std::vector<KvQuantSpec> specs = {{.bits = 4, .group_size = 64},
                                          {.bits = 4, .group_size = 16, .symmetric = true},
                                          {.bits = 2, .group_size = 64},
                                          {.bits = 8, .group_size = 32},
                                          {.bits = 4, .group_size = 64, .clip = 0.9f},
                                          {.bits = 3, .group_size = 8, .symmetric = true, .clip = 0.75f}};
  for (const KvQuantSpec& spec : specs) {
    INFO(spec.describe());
    // The same grid and the same float rounding: equal values.
    check_op("kv_quant", 0.0, [&](Backend& b) { return test::kv_quant(b, x, spec); });
    Matrix bad = x;
    bad(4, 100) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(test::kv_quant(*tested, bad, spec), Error);
    CHECK_THROWS_AS(test::kv_quant(reference_backend(), bad, spec), Error);
  }
  // Off leaves the values as they are, and a group that does not divide the row is refused.
  CHECK(test::kv_quant(*tested, x, KvQuantSpec{}) == x);
  CHECK_THROWS_AS(test::kv_quant(*tested, x, KvQuantSpec{.bits = 4, .group_size = 48}), Error);
}

TEST_CASE("hadamard: H_8 alone, and H_4 ⊗ a random orthogonal 43 × 43 on 172 channels") {
  std::mt19937 rng(7);
  InputRotation plain;
  plain.hadamard_size = 8;
  const Matrix x = random_matrix(5, 64, rng);
  check_op("hadamard", 1e-12, [&](Backend& b) { return test::hadamard(b, x, plain); });
  InputRotation kron{.hadamard_size = 4, .factor = random_orthogonal(43, rng), .description = "hadamard(4) x F"};
  const Matrix x172 = random_matrix(5, 172, rng);
  check_op("hadamard", 1e-12, [&](Backend& b) { return test::hadamard(b, x172, kron); });
}

TEST_CASE("observe: abs-max, Σ|x| and XᵀX over two calls; a NaN marks its channel") {
  std::mt19937 rng(8);
  const Matrix first = random_matrix(30, 24, rng), second = random_matrix(11, 24, rng, 5.0f);
  auto observe = [&](Backend& b, const Matrix& extra) {
    ChannelSums sums{Eigen::VectorXf::Zero(24), Eigen::VectorXd::Zero(24), Eigen::MatrixXd::Zero(24, 24)};
    test::observe(b, first, sums);
    test::observe(b, extra, sums);
    return sums;
  };
  const ChannelSums ref = observe(reference_backend(), second), got = observe(*tested, second);
  CHECK(got.tokens == 41);
  CHECK(got.abs_max == ref.abs_max);
  CHECK(nmse(got.sum_abs, ref.sum_abs) < 1e-12);
  CHECK(nmse(got.gram, ref.gram) < 1e-12);
  Matrix with_nan = second;
  with_nan(4, 9) = std::numeric_limits<float>::quiet_NaN();
  const ChannelSums marked = observe(*tested, with_nan);
  CHECK(std::isnan(marked.abs_max[9]));
  CHECK(std::isfinite(marked.abs_max[8]));
}

TEST_CASE("nll and kld: log-softmax in double over a 3000-token vocabulary, logits up to ±60, argmax with ties") {
  std::mt19937 rng(9);
  const Matrix ref_logits = random_matrix(6, 3000, rng, 6.0f), logits = random_matrix(6, 3000, rng, 6.0f);
  Matrix same = ref_logits;
  same(0, 0) = 60.0f;
  const std::vector<int> targets = {0, 2999, 5, 17, 1000, 3};
  Matrix tied = logits;
  tied(2, 40) = tied(2, 41) = tied(2, 2000) = 100.0f;  // a three-way tie: the first index is the argmax
  const std::vector<NllRow> ref_nll = test::nll(reference_backend(), tied, targets), nll = test::nll(*tested, tied, targets);
  REQUIRE(nll.size() == 6);
  for (std::size_t i = 0; i < nll.size(); ++i) {
    CHECK(std::fabs(nll[i].nll - ref_nll[i].nll) <= 1e-12 * std::fabs(ref_nll[i].nll));
    CHECK(nll[i].argmax == ref_nll[i].argmax);
  }
  CHECK(nll[2].argmax == 40);
  for (const Matrix* evaluated : {&logits, &ref_logits}) {
    const std::vector<KldRow> ref_rows = test::kld(reference_backend(), ref_logits, *evaluated, targets);
    const std::vector<KldRow> rows = test::kld(*tested, ref_logits, *evaluated, targets);
    REQUIRE(rows.size() == 6);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      CHECK(rows[i].kld == Approx(ref_rows[i].kld).epsilon(1e-9).margin(1e-12));
      CHECK(rows[i].delta_p == Approx(ref_rows[i].delta_p).margin(1e-12));
      CHECK(rows[i].nll == Approx(ref_rows[i].nll).epsilon(1e-12));
      CHECK(rows[i].reference_nll == Approx(ref_rows[i].reference_nll).epsilon(1e-12));
      CHECK(rows[i].top1_agrees == ref_rows[i].top1_agrees);
    }
  }
}

TEST_CASE("head_nll: lm_head and the NLL in one pass over 5000 tokens (blocks cut mid-way), a bias, a tie across "
          "blocks, a quantized head through its logits") {
  std::mt19937 rng(12);
  const int vocab = 5000, d = 64, rows = 600;  // two row chunks of the CPU's, the second cut short
  QuantLinear head = make_linear("lm_head", vocab, d, rng);
  head.weight *= 30.0f;  // logits up to about ±30
  const Matrix hidden = random_matrix(rows, d, rng);
  head.weight.row(2500) = head.weight.row(10) = hidden.row(0) * 20.0f;  // the same maximum in two blocks
  std::vector<int> targets(rows);
  for (int i = 0; i < rows; ++i) targets[static_cast<std::size_t>(i)] = (i * 2741) % vocab;
  targets[1] = 0;
  targets[2] = vocab - 1;
  targets[3] = 1023;  // either side of a block edge of the CPU's
  targets[4] = 1024;
  QuantLinear biased = head;
  biased.name = "lm_head with a bias";
  biased.bias = random_matrix(vocab, 1, rng, 3.0f).col(0);
  for (const QuantLinear* layer : {&head, &biased}) {
    INFO(layer->name);
    const std::vector<NllRow> expected = test::head_nll(reference_backend(), *layer, hidden, targets);
    const std::vector<NllRow> got = test::head_nll(*tested, *layer, hidden, targets);
    REQUIRE(got.size() == static_cast<std::size_t>(rows));
    for (int i = 0; i < rows; ++i) {
      INFO("row " << i);
      CHECK(std::fabs(got[i].nll - expected[i].nll) <= 2e-5 + 1e-6 * std::fabs(expected[i].nll));
      CHECK(got[i].argmax == expected[i].argmax);
    }
    if (layer->bias.size() == 0) CHECK(got[0].argmax == 10);  // the first of the tie (the bias breaks it)
  }
  QuantLinear quantized = head;
  quantized.name = "lm_head with A8 activations";
  quantized.act_quant = {.bits = 8, .symmetric = false, .group_size = 0};
  const QuantLinear* group[] = {&quantized};
  const Matrix logits = test::quant_linear(*tested, group, hidden)[0];
  const std::vector<NllRow> through = test::nll(*tested, logits, targets);
  const std::vector<NllRow> got = test::head_nll(*tested, quantized, hidden, targets);
  for (int i = 0; i < rows; ++i) CHECK(got[i].nll == through[i].nll);
  std::vector<int> outside = targets;
  outside[7] = vocab;
  CHECK_THROWS_AS(test::head_nll(*tested, head, hidden, outside), Error);
}

// Activation codes of the two backends can differ where float rounding of T(X) lands a value on the other side of a
// rounding boundary; one such flip moves an output by a fraction of one quantization step of one input, so the
// quantized cases allow 1e-6.
TEST_CASE("quant_linear: each part of the formula, a shared input group, a packed weight, the integer kernel") {
  std::mt19937 rng(10);
  const int d = 172;
  const Matrix x = random_matrix(13, d, rng);
  const QuantSpec a4{.bits = 4, .symmetric = false, .group_size = 43};
  std::vector<QuantLinear> cases;
  cases.push_back(make_linear("plain", 24, d, rng));
  QuantLinear scaled = make_linear("scale+order+A4", 24, d, rng);
  scaled.input.scale = (random_matrix(d, 1, rng).col(0).array().abs() + 0.5f).matrix();
  scaled.input.order.resize(d);
  for (int j = 0; j < d; ++j) scaled.input.order[static_cast<std::size_t>(j)] = (j * 37) % d;
  scaled.act_quant = a4;
  cases.push_back(scaled);
  QuantLinear rotated = make_linear("H4xF+A4", 24, d, rng);
  rotated.input.rotation = {.hadamard_size = 4, .factor = random_orthogonal(43, rng), .description = "h4"};
  rotated.act_quant = a4;
  cases.push_back(rotated);
  QuantLinear low_rank = make_linear("low-rank, requantized", 24, d, rng);
  low_rank.act_quant = a4;
  low_rank.low_rank.a = random_matrix(8, d, rng, 0.1f);
  low_rank.low_rank.b = random_matrix(24, 8, rng, 0.1f);
  low_rank.low_rank.intermediate_quant = {.bits = 8, .symmetric = false};
  cases.push_back(low_rank);
  QuantLinear salient = scaled;
  salient.name = "serq: R on 16 salient channels, bias";
  salient.salient.r = random_matrix(24, 16, rng, 0.1f);
  salient.bias = random_matrix(24, 1, rng).col(0);
  cases.push_back(salient);
  QuantLinear packed = make_linear("packed W4 g43, released", 24, d, rng);
  packed.weight_quant = {.bits = 4, .symmetric = true, .group_size = 43, .f16_scales = true};
  packed.packed = PackedWeight::quantize(packed.weight, packed.weight_quant);
  packed.act_quant = {.bits = 8, .symmetric = false, .group_size = 43};
  packed.release_weight();
  cases.push_back(packed);
  QuantLinear integer = packed;
  integer.name = "integer kernel W4A8";
  integer.restore_weight();
  integer.use_int_kernel();
  integer.salient.r = random_matrix(24, 8, rng, 0.1f);
  cases.push_back(integer);
  for (const QuantLinear& layer : cases) {
    INFO(layer.name);
    const bool quantized = layer.act_quant.enabled();
    check_op("quant_linear", quantized ? 1e-6 : 1e-12, [&](Backend& b) { return run_linear(b, layer, x); });
  }
  // q/k/v of one input group, v with a correction: the shared preparation gives each its own formula.
  QuantLinear k = scaled, v = salient;
  k.name = "k";
  k.weight = random_matrix(8, d, rng, 0.1f);
  const QuantLinear* group[] = {&scaled, &k, &v};
  const std::vector<Matrix> ref = test::quant_linear(reference_backend(), group, x);
  const std::vector<Matrix> got = test::quant_linear(*tested, group, x);
  for (int i = 0; i < 3; ++i) CHECK(nmse(got[i], ref[i]) < 1e-6);
}

TEST_CASE("copy: rows of one tensor into the middle of another; set and get count the bytes that cross") {
  std::mt19937 rng(11);
  const Matrix x = random_matrix(5, 12, rng);
  check_op("copy", 0.0, [&](Backend& b) {
    Buffer work(b);
    const Tensor dst = b.upload(Matrix::Zero(9, 12), work, "test");
    Tensor middle = dst.middle_rows(2, 5);
    b.copy(b.upload(x, work, "test"), middle);
    return b.download(dst, "test");
  });
  tested->kernels().clear();
  {
    Buffer work(*tested);
    tested->download(tested->upload(x, work, "in"), "out");
  }
  const Transfers moved = tested->kernels().transfers();
  CHECK(moved.host_to_backend.at("in") == 5 * 12 * 4);
  CHECK(moved.backend_to_host.at("out") == 5 * 12 * 4);
  CHECK(moved.host_to_backend_bytes() == 240);
}

// The whole graph: stories260K's logits on the tested backend against the reference, in full precision and after
// SERQ W4A8 and W4A4. In full precision they agree to float rounding. With quantized activations, one activation
// code that float rounding of T(X) puts on the other side of a rounding boundary moves a 64-wide layer's output by a
// visible step, and five layers compound it: at A8 the CPU measured NMSE 5e-14 with one BLAS thread and 3.2e-6 with
// two on an AVX2-only Zen 3 (another summation order flipped one code); at A4, 1.8e-3, while each linear alone agrees
// to 1e-14. The bounds allow a few flipped codes and still fail any backend that gets a part of the formula wrong
// (NMSE of order 1).
TEST_CASE("the forward graph: stories260K logits on the backend equal the reference backend's") {
  const Model& fp = test::stories_model("stories260K-hf");
  const std::span<const int> tokens(test::tinystories("tinystories-eval").tokens.data(), 48);
  auto logits = [&](Backend& b, const Model& model) {
    Model on = model;
    on.backend = &b;
    return forward_logits(on, forward_hidden(on, tokens, 1, 48));
  };
  CHECK(nmse(logits(*tested, fp), logits(reference_backend(), fp)) < 1e-10);

  QuantParams params;
  params.weight = {4, true, 32};
  params.rank = 8;
  const Calibration calibration = calibrate(fp, Serq(), params, test::tinystories("tinystories-calib"), {4, 64, 0});
  for (const int a_bits : {8, 4}) {
    params.activation = {a_bits, false, 32};
    Model model = fp;
    Serq().quantize(model, params, calibration);
    INFO("SERQ W4A" << a_bits);
    CHECK(nmse(logits(*tested, model), logits(reference_backend(), model)) < (a_bits == 8 ? 1e-4 : 1e-2));
  }
}

}  // namespace serq

int main(int argc, char** argv) {
  std::vector<char*> args;
  std::string backend;
  for (int i = 0; i < argc; ++i) {
    if (std::string(argv[i]) == "--backend" && i + 1 < argc) {
      backend = argv[++i];
    } else {
      args.push_back(argv[i]);
    }
  }
  if (backend.empty()) {
    std::fprintf(stderr, "usage: test_backend_ops --backend NAME [catch2 options]\n");
    return 2;
  }
  for (serq::Backend* listed : serq::backends()) {
    if (listed->name() != backend) continue;
    if (const std::string why = listed->unavailable(); !why.empty()) {
      std::printf("backend %s: skipped (%s)\n", backend.c_str(), why.c_str());
      return 77;
    }
    serq::tested = listed;
    return Catch::Session().run(static_cast<int>(args.size()), args.data());
  }
  std::fprintf(stderr, "test_backend_ops: unknown backend '%s'\n", backend.c_str());
  return 2;
}
