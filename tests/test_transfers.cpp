// The transfer ledger on the cpu backend. Whole-model evaluations (perplexity with KL divergence against a kept
// full-precision reference, zero-shot scoring, a streamed model) move the weights once, the token ids, and a few
// numbers per scored position; calibration moves the ids, each layer's weights once and the observers' statistics.
// Nothing else crosses: the property that makes a device backend fast, checked where no device is.
#include <catch2/catch.hpp>

#include "core/calib/observers.h"
#include "core/data/windows.h"
#include "core/eval/perplexity.h"
#include "core/eval/zero_shot.h"
#include "core/model/forward.h"
#include "tests/model_fixtures.h"
#include "tests/support/transfer_bounds.h"

using namespace serq;

TEST_CASE("stories260K W4A4: perplexity with KLD and a zero-shot task move weights once, ids and per-row results") {
  const Model& fp = test::stories_model("stories260K-hf");
  const Model model = test::stories_rtn(4);
  Backend& cpu = cpu_backend();
  REQUIRE(model.backend == &cpu);
  const auto windows = eval_windows(test::tinystories("tinystories-eval"), 512, 6);

  cpu.kernels().clear();
  REQUIRE(head_shares_embedding(model));  // RTN leaves the tied lm_head in full precision: it reads the embedding
  const ResidentModel resident(model, cpu);
  KldReference reference(fp, std::int64_t{1} << 30);
  const PerplexityResult first = evaluate_perplexity(resident, windows, 4, "rtn", &reference);
  const PerplexityResult again = evaluate_perplexity(resident, windows, 4, "rtn", &reference);  // kept states
  CHECK(again.ppl == first.ppl);
  CHECK(reference.reused_batches() == 2);
  Task task;
  task.name = "two_choices";
  task.source = "test";
  const std::string context = "Once upon a time there was a";
  for (int i = 0; i < 8; ++i) {
    task.items.push_back({.choices = {{context, " cat", "cat"}, {context, " little dog", "little dog"}}, .gold = i % 2});
  }
  const TaskResult scored = evaluate_task(resident, test::stories_tokenizer(), task, {});
  CHECK(scored.requests == 16);

  // Scored positions: both passes' windows, and each choice's continuation (at most 4 tokens here).
  const std::int64_t positions = first.scored_tokens + again.scored_tokens + 16 * 4;
  test::check_evaluation_transfers(cpu.kernels().transfers(),
                                   test::resident_weight_bytes(model) + test::resident_weight_bytes(fp), positions);
  // The ids of every window crossed twice (once a pass), the kept reference states never.
  CHECK(cpu.kernels().transfers().host_to_backend.at("token ids") >= 2 * 6 * 512 * 4);
}

TEST_CASE("a streamed model gives the whole model's perplexity, each decoder layer crossing once per forward") {
  const Model& fp = test::stories_model("stories260K-hf");
  const auto windows = eval_windows(test::tinystories("tinystories-eval"), 512, 6);  // 2 forwards of up to 4
  Backend& cpu = cpu_backend();
  const ResidentModel whole(fp, cpu, Residency::whole);
  CHECK_FALSE(whole.streamed());
  const double expected = evaluate_perplexity(whole, windows, 4).ppl;

  cpu.kernels().clear();
  const ResidentModel streamed(fp, cpu, Residency::streamed);
  CHECK(streamed.streamed());
  CHECK(evaluate_perplexity(streamed, windows, 4).ppl == expected);  // the same ops on the same values
  std::int64_t decoder_bytes = 0;  // the weights of every decoder layer, once
  for (const DecoderLayer& layer : fp.layers) {
    for (const QuantLinear* linear : layer.linears()) decoder_bytes += static_cast<std::int64_t>(CpuLinear(*linear).bytes());
    decoder_bytes += 2LL * fp.config.dim * 4;  // the two norms' γ
  }
  CHECK(cpu.kernels().transfers().host_to_backend.at("weights") == test::resident_weight_bytes(fp) + decoder_bytes);
}

TEST_CASE("calibration keeps the samples' hidden states on the backend: ids in, weights once, statistics out") {
  const Model& fp = test::stories_model("stories260K-hf");
  const std::vector<int>& tokens = test::tinystories("tinystories-calib").tokens;
  const std::vector<std::vector<int>> samples = {{tokens.begin(), tokens.begin() + 256},
                                                 {tokens.begin() + 256, tokens.begin() + 512}};
  StatsRequest request{.layers = {"layers.0.self_attn.q_proj", "layers.4.mlp.down_proj", "lm_head"}, .hessian = true};
  Backend& cpu = cpu_backend();
  cpu.kernels().clear();
  const auto stats = collect_calibration_stats(fp, samples, request);
  CHECK(stats.at("lm_head").tokens == 512);
  const Transfers moved = cpu.kernels().transfers();
  INFO(moved.describe());
  for (const auto& [what, bytes] : moved.host_to_backend) CHECK((what == "weights" || what == "token ids"));
  for (const auto& [what, bytes] : moved.backend_to_host) CHECK(what == "observer statistics");
  CHECK(moved.host_to_backend.at("token ids") == 512 * 4);
  // Each of the 3 layers' statistics, once a sample: abs-max (4 B), Σ|x| and XᵀX (8 B) per channel and pair.
  const std::int64_t d = fp.config.dim, h = fp.config.hidden_dim;
  CHECK(moved.backend_to_host_bytes() == 2 * ((12 * d + 8 * d * d) * 2 + 12 * h + 8 * h * h));
}
