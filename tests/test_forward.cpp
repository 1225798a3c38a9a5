// The forward pass against reference outputs: perplexity of the three stories260K forms on both TinyStories halves
// (../shared/reference/ppl_stories260K_fp32.json), run.c's greedy output, .bin vs HF logits, batching and KV cache.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "core/data/windows.h"
#include "core/eval/generate.h"
#include "core/eval/perplexity.h"
#include "core/model/forward.h"
#include "tests/model_fixtures.h"

using namespace serq;
using serq::test::asset;
using serq::test::stories_model;
using serq::test::tinystories;

namespace {

double tinystories_ppl(const std::string& form, const std::string& half) {
  return evaluate_perplexity(stories_model(form), eval_windows(tinystories(half), 512, 0), 8).ppl;
}

std::vector<int> first_tokens(int n) {
  const auto& tokens = tinystories("tinystories-eval").tokens;
  return std::vector<int>(tokens.begin(), tokens.begin() + n);
}

}  // namespace

TEST_CASE("stories260K.bin perplexity matches the FP32 reference on both TinyStories halves") {
  CHECK(tinystories_ppl("stories260K/stories260K.bin", "tinystories-eval") == Approx(4.526).margin(0.002));
  CHECK(tinystories_ppl("stories260K/stories260K.bin", "tinystories-calib") == Approx(4.390).margin(0.002));
}

TEST_CASE("stories260K-hf (F32 safetensors) perplexity matches the FP32 reference on both halves") {
  CHECK(tinystories_ppl("stories260K-hf", "tinystories-eval") == Approx(4.526).margin(0.002));
  CHECK(tinystories_ppl("stories260K-hf", "tinystories-calib") == Approx(4.390).margin(0.002));
}

TEST_CASE("stories260K-hf-bf16 perplexity matches the FP32 reference within BF16 rounding") {
  CHECK(tinystories_ppl("stories260K-hf-bf16", "tinystories-eval") == Approx(4.526).margin(0.01));
  CHECK(tinystories_ppl("stories260K-hf-bf16", "tinystories-calib") == Approx(4.390).margin(0.01));
}

TEST_CASE("200 greedy positions from BOS reproduce llama2.c run.c exactly") {
  const Model& model = stories_model("stories260K/stories260K.bin");
  const std::vector<int> generated = generate_greedy(model, {model.config.bos_id}, 200);
  std::string text;
  int prev = model.config.bos_id;
  for (int token : generated) {
    text += test::stories_tokenizer().piece_text(prev, token, model.config.bos_id);
    prev = token;
  }
  CHECK(text + "\n" == test::read_bytes(asset("reference/stories260K_greedy_n200_run.c.txt")));
}

TEST_CASE("the llama2.c (.bin, interleaved RoPE) and HF (rotate-half) forms give the same logits") {
  const std::vector<int> tokens = first_tokens(300);
  const Model& bin = stories_model("stories260K/stories260K.bin");
  const Model& hf = stories_model("stories260K-hf");
  const Matrix a = forward_logits(bin, forward_hidden(bin, tokens, 1, 300));
  const Matrix b = forward_logits(hf, forward_hidden(hf, tokens, 1, 300));
  CHECK((a - b).cwiseAbs().maxCoeff() < 1e-4f);
  CHECK(a.cwiseAbs().maxCoeff() > 1.0f);  // real logits, not zeros
}

TEST_CASE("batching windows does not change the logits") {
  const Model& model = stories_model("stories260K-hf");
  const std::vector<int> tokens = first_tokens(3 * 128);
  const Matrix batched = forward_hidden(model, tokens, 3, 128);
  for (int b = 0; b < 3; ++b) {
    const Matrix single = forward_hidden(model, std::span<const int>(tokens).subspan(b * 128, 128), 1, 128);
    CHECK((batched.middleRows(b * 128, 128) - single).cwiseAbs().maxCoeff() < 1e-4f);  // GEMM blocking differs
  }
}

TEST_CASE("decoding with a KV cache equals one full forward") {
  const Model& model = stories_model("stories260K-hf");
  const std::vector<int> tokens = first_tokens(40);
  const Matrix full = forward_hidden(model, tokens, 1, 40);
  Backend& backend = *model.backend;
  const ResidentModel resident(model, backend);
  KVCache cache = make_kv_cache(model.config, backend, 1, 40);
  // Runs the next positions over the cache; the hidden states come back to the host.
  const auto next = [&](std::span<const int> ids) {
    Buffer work(backend);
    const Tensor hidden = forward_hidden(resident, work, token_tensor(model.config, work, ids), 1,
                                         static_cast<int>(ids.size()), &cache);
    return backend.download(hidden, "test");
  };
  const Matrix prefix = next(std::span<const int>(tokens).first(25));
  CHECK((full.topRows(25) - prefix).cwiseAbs().maxCoeff() < 1e-4f);  // 25 rows against 40: GEMM blocking differs
  for (int t = 25; t < 40; ++t) {
    const Matrix step = next(std::span<const int>(tokens).subspan(t, 1));
    CHECK((full.row(t) - step.row(0)).cwiseAbs().maxCoeff() < 1e-4f);
  }
}

TEST_CASE("a window longer than max_position_embeddings is refused") {
  const Model& model = stories_model("stories260K-hf");
  const std::vector<int> tokens(513, 1);
  CHECK_THROWS_WITH(forward_hidden(model, tokens, 1, 513), Catch::Contains("max_position_embeddings"));
}
