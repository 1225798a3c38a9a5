// The quantized KV cache (core/quant/kv_quant.h, quant.kv_*): the clipped grid worked by hand, a decoder layer's
// attention against a plain reference of attention over a quantized cache, the rotation of q and k, decoding through
// the cache, and serq-run's keys (today's numbers unchanged at kv_bits 16, errors before any work).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <bit>
#include <cmath>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/formats/result_file.h"
#include "core/model/forward.h"
#include "core/quant/int_quant.h"
#include "core/quant/int_quant_reference.h"
#include "tests/model_fixtures.h"
#include "tests/support/backend_calls.h"
#include "tests/support/serq_run.h"

namespace serq {
namespace {

using test::check_one_line_error;
using test::kSmallRun;
using test::serq_run;
using test::write_config;

double nmse(const Matrix& out, const Eigen::MatrixXd& ref) {
  return (out.cast<double>() - ref).squaredNorm() / ref.squaredNorm();
}

// The inputs of q_proj and o_proj of one decoder layer, downloaded as the forward runs it.
class AttentionCapture final : public LinearInputObserver {
 public:
  Matrix normed, attention;
  void observe(const QuantLinear& layer, const Tensor& input) override {
    if (layer.name.ends_with("q_proj")) normed = input.backend->download(input, "test");
    if (layer.name.ends_with("o_proj")) attention = input.backend->download(input, "test");
  }
};

Eigen::MatrixXd float_weight(const QuantLinear& layer) {
  return (layer.weight.size() > 0 ? layer.weight : layer.packed.dequantize()).cast<double>();
}

// x (rows × heads·d) with each head multiplied by Sylvester's H_d / √d, entry by entry.
Matrix rotate_heads(const Matrix& x, int d) {
  Matrix out(x.rows(), x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    for (Eigen::Index h0 = 0; h0 < x.cols(); h0 += d) {
      for (int j = 0; j < d; ++j) {
        double sum = 0.0;
        for (int i = 0; i < d; ++i) {
          const double sign = std::popcount(static_cast<unsigned>(i & j)) % 2 ? -1.0 : 1.0;
          sum += static_cast<double>(x(r, h0 + i)) * sign / std::sqrt(static_cast<double>(d));
        }
        out(r, h0 + j) = static_cast<float>(sum);
      }
    }
  }
  return out;
}

// Causal GQA attention of one sequence in double: softmax(q·kᵀ / √d) over keys 0..t, times v.
Eigen::MatrixXd plain_attention(const Matrix& q, const Matrix& k, const Matrix& v, const ModelConfig& c) {
  const int d = c.head_dim(), group = c.n_heads / c.n_kv_heads;
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(q.rows(), q.cols());
  for (Eigen::Index t = 0; t < q.rows(); ++t) {
    for (int h = 0; h < c.n_heads; ++h) {
      const int kv = (h / group) * d;
      std::vector<double> scores(static_cast<std::size_t>(t + 1));
      double top = -1e300, total = 0.0;
      for (Eigen::Index j = 0; j <= t; ++j) {
        double dot = 0.0;
        for (int i = 0; i < d; ++i) dot += static_cast<double>(q(t, h * d + i)) * static_cast<double>(k(j, kv + i));
        scores[static_cast<std::size_t>(j)] = dot / std::sqrt(static_cast<double>(d));
        top = std::max(top, scores[static_cast<std::size_t>(j)]);
      }
      for (double& s : scores) total += (s = std::exp(s - top));
      for (Eigen::Index j = 0; j <= t; ++j) {
        for (int i = 0; i < d; ++i) out(t, h * d + i) += scores[static_cast<std::size_t>(j)] / total * v(j, kv + i);
      }
    }
  }
  return out;
}

// Layer 0 of stories260K on `tokens` with the cache as `kv` says: the attention output the forward computed, and
// the plain one from the same normed input (q, k, v in double, RoPE and the quantization by the reference backend,
// the rotation and the attention written out above).
struct LayerAttention {
  Matrix forward;
  Eigen::MatrixXd plain;
};
LayerAttention layer_attention(const KvCacheSettings& kv, std::span<const int> tokens) {
  Model model = test::stories_model("stories260K-hf");
  model.kv_cache = kv;
  const ModelConfig& c = model.config;
  Matrix h = embed_tokens(model, tokens);
  AttentionCapture capture;
  decoder_layer_forward(model, 0, h, 1, static_cast<int>(tokens.size()), &capture);

  const DecoderLayer& layer = model.layers[0];
  const Eigen::MatrixXd x = capture.normed.cast<double>();
  RopeShape shape;
  shape.head_dim = c.head_dim();
  shape.batch = 1;
  shape.seq = static_cast<int>(tokens.size());
  shape.interleaved = c.rope_layout == RopeLayout::interleaved;
  RopeShape q_shape = shape, k_shape = shape;
  q_shape.n_heads = c.n_heads;
  k_shape.n_heads = c.n_kv_heads;
  Matrix q = test::rope(reference_backend(), (x * float_weight(layer.q_proj).transpose()).cast<float>(), q_shape,
                        c.rope_frequencies());
  Matrix k = test::rope(reference_backend(), (x * float_weight(layer.k_proj).transpose()).cast<float>(), k_shape,
                        c.rope_frequencies());
  Matrix v = (x * float_weight(layer.v_proj).transpose()).cast<float>();
  if (kv.rotate) {
    q = rotate_heads(q, c.head_dim());
    k = rotate_heads(k, c.head_dim());
  }
  if (kv.quant.enabled()) {
    // The reference backend's kv_quant: the scalar grid of int_quant_reference.h, group by group.
    k = test::kv_quant(reference_backend(), k, kv.op_spec(c.head_dim()));
    v = test::kv_quant(reference_backend(), v, kv.op_spec(c.head_dim()));
  }
  return {capture.attention, plain_attention(q, k, v, c)};
}

}  // namespace

TEST_CASE("kv clip: a clipped grid worked by hand from the formulas of int_quant.h") {
  // 2-bit asymmetric, clip 0.5 on {-1, 0.5, 2}: lo = -0.5, hi = 1, scale = 1.5 / 3 = 0.5, zero = round(1) = 1;
  // codes clamp(round(x / 0.5) + 1, 0, 3) = {0, 2, 3} → (code - 1) · 0.5.
  std::vector<float> asym = {-1.0f, 0.5f, 2.0f};
  fake_quant_group(asym.data(), asym.data(), 3, 2, false, false, 0.5f);
  CHECK(asym == std::vector<float>{-0.5f, 0.5f, 1.0f});
  // 4-bit symmetric, clip 0.5 on {-14, 2.5, 10}: amax = 7, scale = 1; codes clamp(round(x), -8, 7) =
  // {-8, 2 (2.5 rounds to even), 7}.
  std::vector<float> sym = {-14.0f, 2.5f, 10.0f};
  fake_quant_group(sym.data(), sym.data(), 3, 4, true, false, 0.5f);
  CHECK(sym == std::vector<float>{-8.0f, 2.0f, 7.0f});
  // The scalar reference agrees.
  const ReferenceIntGrid grid = ReferenceIntGrid::fit(std::vector<float>{-14.0f, 2.5f, 10.0f}, 4, true, false, 0.5f);
  CHECK(grid.fake_quant(2.5f) == 2.0f);
  CHECK(grid.fake_quant(-14.0f) == -8.0f);
  const ReferenceIntGrid asym_grid = ReferenceIntGrid::fit(std::vector<float>{-1.0f, 0.5f, 2.0f}, 2, false, false, 0.5f);
  CHECK(asym_grid.fake_quant(2.0f) == 1.0f);
}

TEST_CASE("kv_bits 4: a decoder layer's attention equals a plain attention over keys (after RoPE) and values "
          "quantized per head, per group, clipped and rotated") {
  const std::span<const int> tokens(test::tinystories("tinystories-eval").tokens.data(), 40);
  const LayerAttention fp = layer_attention({}, tokens);
  CHECK(nmse(fp.forward, fp.plain) < 1e-10);
  const std::vector<KvCacheSettings> settings = {
      {.quant = {.bits = 4}},
      {.quant = {.bits = 4, .group_size = 4, .symmetric = true}},
      {.quant = {.bits = 3, .clip = 0.8f}},
      {.quant = {.bits = 4}, .rotate = true},
  };
  for (const KvCacheSettings& kv : settings) {
    INFO(kv.describe(8));
    const LayerAttention quantized = layer_attention(kv, tokens);
    // Float rounding of q, k and v (float GEMMs against double, another BLAS kernel) may move a code at a rounding
    // boundary: a step of one grid in one value, NMSE up to about 1e-3. Measured here: 0. What the 4-bit cache
    // itself changes is 0.2 to 0.56 (checked next), so the bound still fails a cache quantized wrongly.
    CHECK(nmse(quantized.forward, quantized.plain) < 1e-2);
    CHECK(nmse(quantized.forward, fp.plain) > 0.1);
  }
  // The rotation alone leaves q·kᵀ, and so attention, as it was.
  const LayerAttention rotated = layer_attention({.quant = {}, .rotate = true}, tokens);
  CHECK(nmse(rotated.forward, fp.plain) < 1e-10);
}

TEST_CASE("kv_bits 4: decoding through the cache in two steps gives the logits of one forward, since each key and "
          "value is quantized as it is written") {
  Model model = test::stories_model("stories260K-hf");
  model.kv_cache = {.quant = {.bits = 4}, .rotate = true};
  const std::vector<int> tokens(test::tinystories("tinystories-eval").tokens.begin(),
                                test::tinystories("tinystories-eval").tokens.begin() + 32);
  const ResidentModel resident(model, *model.backend);
  Buffer work(*model.backend);
  const Matrix whole = model.backend->download(
      forward_logits(resident, work, forward_hidden(resident, work, token_tensor(model.config, work, tokens), 1, 32)),
      "test");
  KVCache cache = make_kv_cache(model.config, *model.backend, 1, 32);
  const std::span<const int> all(tokens);
  const Tensor first = forward_hidden(resident, work, token_tensor(model.config, work, all.first(20)), 1, 20, &cache);
  const Tensor second = forward_hidden(resident, work, token_tensor(model.config, work, all.subspan(20)), 1, 12, &cache);
  const Matrix tail = model.backend->download(forward_logits(resident, work, second), "test");
  const Matrix head = model.backend->download(forward_logits(resident, work, first), "test");
  // Other GEMM shapes may round a value across a code boundary (a few flipped codes stay below 1e-3; measured: 0);
  // keys or values of one step left unquantized, or at wrong positions, move the logits far more.
  CHECK(nmse(head, whole.topRows(20).cast<double>()) < 1e-3);
  CHECK(nmse(tail, whole.bottomRows(12).cast<double>()) < 1e-3);
}

TEST_CASE("kv settings: a group that does not divide head_dim, bits out of range, a clip ratio not in 0 < c ≤ 1 and a "
          "rotation of a head_dim that is not a power of two are each one error naming the key") {
  CHECK_THROWS_WITH(validate(KvCacheSettings{.quant = {.bits = 4, .group_size = 48}}, 64, "m"),
                    Catch::StartsWith("quant.kv_group_size: 48 does not divide head_dim = 64"));
  CHECK_THROWS_WITH(validate(KvCacheSettings{.quant = {.bits = 9}}, 64, "m"), Catch::StartsWith("quant.kv_bits"));
  CHECK_THROWS_WITH(validate(KvCacheSettings{.quant = {.bits = 4, .clip = 0.0f}}, 64, "m"),
                    Catch::StartsWith("quant.kv_clip"));
  CHECK_THROWS_WITH(validate(KvCacheSettings{.quant = {}, .rotate = true}, 80, "m"), Catch::StartsWith("quant.kv_rotate"));
  CHECK_NOTHROW(validate(KvCacheSettings{.quant = {.bits = 4, .group_size = 16}, .rotate = true}, 128, "m"));
}

// Perplexities of 2 windows of stories260K on runtime.device reference (plain loops in double), made by serq-run at
// commit 8c5306c on an AVX-512 CPU, before the KV cache could be quantized.
TEST_CASE("serq-run: kv_bits 16 reproduces the numbers from before the KV cache could be quantized, bit for bit") {
  const auto dir = test::scratch_dir("kv16");
  const auto config = write_config(dir, kSmallRun);
  const std::vector<std::pair<std::string, double>> before = {
      {"rtn", 4.961507334642683}, {"quarot", 4.9268930141885185}};
  for (const auto& [method, ppl] : before) {
    for (const std::string kv : {"", " --set quant.kv_bits=16"}) {
      const auto out = serq_run(config.string() + " --set eval.max_windows=2 --set runtime.device=reference" + kv +
                                    " --json --quiet --out " + (dir / "out").string() + " --set quant.method=" + method,
                                dir);
      INFO(method << kv << "\n" << out.err);
      REQUIRE(out.status == 0);
      const auto json = nlohmann::json::parse(out.out.substr(0, out.out.find('\n')));
      if (method == "rtn") {
        CHECK(json["ppl"].get<double>() == ppl);
      } else {
        // On an AVX2-only Zen 3 QuaRot's value comes out 3e-15 apart (4.926893014188534) where RTN's is identical:
        // the last bits of QuaRot's own construction follow the CPU, not the cache.
        CHECK(json["ppl"].get<double>() == Approx(ppl).epsilon(1e-12));
      }
      // A float cache, and so no rotation of q and k (kv_rotate: auto rotates only a quantized cache).
      CHECK(read_run_record(json["result_file"].get<std::string>()).info.at("kv_cache") == "fp (not quantized)");
    }
  }
}

TEST_CASE("serq-run: a 4-bit cache is recorded, quarot rotates q and k with it, and bad kv keys stop before any "
          "work") {
  const auto dir = test::scratch_dir("kv4_run");
  const auto config = write_config(dir, kSmallRun);
  const std::string run = config.string() + " --set eval.max_windows=1 --json --quiet --out " + (dir / "out").string();
  for (const std::string method : {"rtn", "quarot"}) {
    const auto out = serq_run(run + " --set quant.kv_bits=4 --set quant.method=" + method, dir);
    INFO(out.err);
    REQUIRE(out.status == 0);
    const auto json = nlohmann::json::parse(out.out.substr(0, out.out.find('\n')));
    const RunRecord record = read_run_record(json["result_file"].get<std::string>());
    const std::string& kernels = record.info.at("kernels");
    CHECK(kernels.find("kv_quant: cpu (10)") != std::string::npos);  // keys and values of 5 layers
    CHECK(record.label == method + " w4a4 g32 kv4");
    if (method == "quarot") {
      CHECK(record.info.at("kv_cache") == "keys and values int4-asym-head, q and k rotated (Hadamard 8)");
      CHECK(kernels.find("hadamard: cpu-fwht") != std::string::npos);
    } else {
      CHECK(record.info.at("kv_cache") == "keys and values int4-asym-head");
    }
  }
  check_one_line_error(serq_run(run + " --set quant.kv_bits=4 --set quant.kv_group_size=3", dir),
                       {"quant.kv_group_size", "head_dim = 8", "divisor"});
  check_one_line_error(serq_run(run + " --set quant.kv_bits=9", dir), {"quant.kv_bits", "2..8"});
  check_one_line_error(serq_run(run + " --set quant.kv_clip=0", dir), {"quant.kv_clip", "below"});
  check_one_line_error(serq_run(run + " --set quant.kv_rotate=yes", dir), {"quant.kv_rotate", "auto, true, false"});
}

}  // namespace serq
