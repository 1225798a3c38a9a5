// SmolLM2-135M from its GGUF against the independent PyTorch fp32 reference (reference/smollm2-135m/): last-position
// logits of three prompts and the WikiText-2 perplexity of the first 20 windows of 2048 tokens.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/data/windows.h"
#include "core/eval/perplexity.h"
#include "core/model/forward.h"
#include "core/model/loader.h"
#include "core/tokenizer/tokenizer.h"
#include "tests/assets.h"
#include "tests/support/transfer_bounds.h"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kSmolLM2 = "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf";

const serq::Model& smollm2() {
  static const serq::Model model = serq::load_model(serq::test::asset(kSmolLM2));
  return model;
}

json reference(const std::string& file) {
  return json::parse(serq::test::read_bytes(serq::test::asset("reference/smollm2-135m/" + file)));
}

}  // namespace

TEST_CASE("smollm2: the GGUF's config is SmolLM2-135M's", "[smollm2]") {
  const serq::ModelConfig& c = smollm2().config;
  CHECK(c.n_layers == 30);
  CHECK(c.dim == 576);
  CHECK(c.hidden_dim == 1536);
  CHECK(c.n_heads == 9);
  CHECK(c.n_kv_heads == 3);
  CHECK(c.head_dim() == 64);
  CHECK(c.vocab_size == 49152);
  CHECK(c.max_seq_len == 8192);
  CHECK(c.rope_theta == 100000.0f);
  CHECK(c.rms_norm_eps == 1e-5f);
  CHECK(c.tied_embeddings);
  CHECK(c.rope_layout == serq::RopeLayout::interleaved);
  CHECK(smollm2().source.starts_with("gguf-v3 F32+Q4_1+Q8_0 "));
}

TEST_CASE("smollm2: last-position logits of three prompts match the PyTorch reference", "[smollm2]") {
  const serq::Tokenizer tokenizer = serq::Tokenizer::load(serq::test::asset(kSmolLM2));
  for (const json& prompt : reference("logits.json")) {
    const std::string text = prompt.at("prompt").get<std::string>();
    INFO(text);
    const std::vector<int> ids = tokenizer.encode(text);
    REQUIRE(ids == prompt.at("ids").get<std::vector<int>>());
    const int seq = static_cast<int>(ids.size());
    const serq::Matrix hidden = serq::forward_hidden(smollm2(), ids, 1, seq);
    const serq::Matrix logits = serq::forward_logits(smollm2(), hidden.bottomRows(1));
    std::vector<int> order(static_cast<std::size_t>(logits.cols()));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + 5, order.end(),
                      [&](int a, int b) { return logits(0, a) > logits(0, b); });
    const auto top5 = prompt.at("top5_ids").get<std::vector<int>>();
    const auto top5_logits = prompt.at("top5_logits").get<std::vector<double>>();
    CHECK(std::vector<int>(order.begin(), order.begin() + 5) == top5);
    const double largest = std::abs(top5_logits.front());
    for (std::size_t k = 0; k < 5; ++k) CHECK(std::abs(logits(0, top5[k]) - top5_logits[k]) <= 1e-3 * largest);
    const double max = logits.maxCoeff();
    const double lse = max + std::log((logits.array() - static_cast<float>(max)).exp().cast<double>().sum());
    CHECK(std::abs(lse - prompt.at("logsumexp_last").get<double>()) <= 1e-3 * largest);
  }
}

TEST_CASE("smollm2: FP perplexity of the first 20 WikiText-2 windows of 2048 matches the reference", "[smollm2]") {
  const serq::Tokenizer tokenizer = serq::Tokenizer::load(serq::test::asset(kSmolLM2));
  const serq::TokenStream stream = serq::load_dataset("wikitext2", tokenizer, std::nullopt, serq::assets_root());
  const json expected = reference("ppl_fp32.json").at("wikitext2_seq2048_first20");
  serq::Backend& backend = *smollm2().backend;
  backend.kernels().clear();
  const serq::PerplexityResult result = serq::evaluate_perplexity(smollm2(), serq::eval_windows(stream, 2048, 20), 4);
  CHECK(result.scored_tokens == expected.at("scored_tokens").get<std::int64_t>());
  CHECK(result.ppl == Approx(expected.at("ppl").get<double>()).epsilon(5e-4));
  // The weights crossed once, then only the token ids and one nll row per scored position.
  serq::test::check_evaluation_transfers(backend.kernels().transfers(), serq::test::resident_weight_bytes(smollm2()),
                                         result.scored_tokens);
}
