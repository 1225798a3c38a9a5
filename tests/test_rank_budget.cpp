// Rank allocation under a budget (methods/rank_budget.h): the exact allocation against brute force, the greedy one
// within the budget, the costs measured from the packed layers, and serq-run's runs and errors.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <limits>
#include <memory>
#include <set>

#include "core/formats/result_file.h"
#include "experiments/calibrate.h"
#include "methods/rank_budget.h"
#include "methods/registry.h"
#include "tests/model_fixtures.h"
#include "tests/support/serq_run.h"

namespace serq {
namespace {

using test::check_one_line_error;
using test::kSmallRun;
using test::serq_run;
using test::write_config;

// Three layers on a grid of four ranks, with uneven costs and gains (convex and not).
std::vector<RankCurve> small_curves() {
  return {{"a", {0, 8, 16, 24}, {1.0, 0.5, 0.45, 0.44}, {0, 40, 70, 100}},
          {"b", {0, 8, 16, 24}, {0.8, 0.79, 0.2, 0.1}, {0, 20, 40, 60}},
          {"c", {0, 8, 16, 24}, {0.3, 0.2, 0.1, 0.0}, {0, 30, 60, 90}}};
}

// The best Σ error within the budget, by trying every combination.
double brute_force(const std::vector<RankCurve>& curves, std::int64_t budget) {
  double best = std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < 4; ++i) {
    for (std::size_t j = 0; j < 4; ++j) {
      for (std::size_t k = 0; k < 4; ++k) {
        if (curves[0].cost_bits[i] + curves[1].cost_bits[j] + curves[2].cost_bits[k] > budget) continue;
        best = std::min(best, curves[0].error[i] + curves[1].error[j] + curves[2].error[k]);
      }
    }
  }
  return best;
}

std::int64_t spent(const std::vector<RankCurve>& curves, const RankChoice& choice) {
  std::int64_t bits = 0;
  for (const RankCurve& curve : curves) {
    const auto at = std::find(curve.ranks.begin(), curve.ranks.end(), choice.ranks.at(curve.layer));
    bits += curve.cost_bits[static_cast<std::size_t>(at - curve.ranks.begin())];
  }
  return bits;
}

}  // namespace

TEST_CASE("rank allocation: dp finds the brute-force optimum at every budget, greedy stays within it, and the chosen "
          "ranks' costs add up to what each says it spent") {
  const std::vector<RankCurve> curves = small_curves();
  for (std::int64_t budget = 0; budget <= 250; budget += 10) {
    INFO("budget " << budget);
    const RankChoice dp = allocate_ranks(curves, budget, RankAllocation::dp);
    CHECK(dp.error == Approx(brute_force(curves, budget)));
    CHECK(dp.spent_bits <= budget);
    CHECK(spent(curves, dp) == dp.spent_bits);
    const RankChoice greedy = allocate_ranks(curves, budget, RankAllocation::greedy);
    CHECK(greedy.spent_bits <= budget);
    CHECK(spent(curves, greedy) == greedy.spent_bits);
    CHECK(greedy.error >= dp.error - 1e-12);
    CHECK(budget - greedy.spent_bits < 40);  // no step that fits is left untaken (the dearest step costs 40)
  }
  // b's first step gains little and its second much: greedy on the marginal gain misses what dp finds.
  CHECK(allocate_ranks(curves, 40, RankAllocation::dp).ranks.at("b") == 16);
  CHECK_THROWS_WITH(allocate_ranks(curves, -1, RankAllocation::dp), Catch::StartsWith("quant.rank_budget"));
  CHECK_THROWS_WITH(allocate_ranks(curves, 251, RankAllocation::greedy),
                    Catch::StartsWith("quant.rank_budget") && Catch::Contains("exceed"));
}

TEST_CASE("rank curves: SERQ's and L2QER's errors fall with the rank and their costs are the packed bits of R or of "
          "the factors — uniform r's budget is what r costs on every layer") {
  const Model& model = test::stories_model("stories260K-hf");
  QuantParams params;
  params.weight = {4, true, 32};
  params.activation = {4, false, 32};
  params.rank = 16;
  for (const std::string name : {"serq", "l2qer"}) {
    const std::unique_ptr<Method> method = make_method(name);
    INFO(name);
    const Calibration calibration =
        calibrate(model, *method, params, test::tinystories("tinystories-calib"), {4, 64, 0});
    const std::vector<RankCurve> curves = rank_curves(model, *method, params, calibration);
    REQUIRE(curves.size() == 35);  // 5 layers of 7
    for (const RankCurve& curve : curves) {
      INFO(curve.layer);
      CHECK(curve.ranks.front() == 0);
      // max(4 · 16, 64), at most d_in (serq) or min(d_in, d_out) (l2qer: 32 for k and v, 32 wide).
      const bool narrow = name == "l2qer" && (curve.layer.ends_with("k_proj") || curve.layer.ends_with("v_proj"));
      CHECK(curve.ranks.back() == (narrow ? 32 : 64));
      CHECK(curve.cost_bits.front() == 0);
      CHECK(curve.error.back() < curve.error.front());
      for (std::size_t i = 1; i < curve.cost_bits.size(); ++i) CHECK(curve.cost_bits[i] > curve.cost_bits[i - 1]);
    }
    // SERQ's R at rank 8 of a 64-row layer: 8 codes of 4 bits and one half scale per row.
    if (name == "serq") CHECK(curves[0].cost_bits[1] == 64 * (8 * 4 + 16));
    // uniform r = 16 costs, on every layer, the bits at rank 16.
    std::int64_t uniform = 0;
    for (const RankCurve& curve : curves) uniform += curve.cost_bits[2];
    CHECK(rank_budget_bits(curves, model, 0.0, 16) == uniform);
    CHECK(largest_rank_budget(model.config, *method, params) > 0.0);
  }
}

TEST_CASE("serq-run: a rank budget equal to uniform r's spends no more bits, records each layer's rank, and a budget "
          "below zero, above what the layers allow or off the rank grid stops before any work") {
  const auto dir = test::scratch_dir("rank_budget_runs");
  const std::string base = write_config(dir, kSmallRun).string() + " --set quant.method=serq --set quant.rank=16 "
                           "--set eval.max_windows=1 --set calib.samples=8 --json --quiet --out " +
                           (dir / "out").string();
  auto record_of = [&](const std::string& args) {
    const auto out = serq_run(base + args, dir);
    INFO(out.err);
    REQUIRE(out.status == 0);
    return read_run_record(nlohmann::json::parse(out.out.substr(0, out.out.find('\n')))["result_file"]);
  };
  const RunRecord uniform = record_of("");
  for (const std::string how : {"greedy", "dp"}) {
    INFO(how);
    const RunRecord allocated = record_of(" --set quant.rank_allocation=" + how);
    CHECK(allocated.label == "serq w4a4 g32 " + how + " as r16");
    const std::int64_t budget = allocated.counts.at("rank_budget_bits");
    CHECK(allocated.counts.at("rank_spent_bits") <= budget);
    // Within the dearest step: 8 more channels of R on a 172-row layer, with its half scales.
    CHECK(allocated.counts.at("rank_spent_bits") > budget - 172 * (8 * 4 + 16));
    CHECK(allocated.metrics.at("bits_per_weight") <= uniform.metrics.at("bits_per_weight"));
    std::set<std::int64_t> ranks;
    for (const LayerPlan& layer : allocated.plan) {
      if (layer.name != "lm_head") ranks.insert(layer.rank);
    }
    CHECK(ranks.size() > 1);  // not uniform
  }
  check_one_line_error(serq_run(base + " --set quant.rank_allocation=dp --set quant.rank_budget=100", dir),
                       {"quant.rank_budget", "exceed", "give at most"});
  check_one_line_error(serq_run(base + " --set quant.rank_allocation=dp --set quant.rank_budget=-1", dir),
                       {"quant.rank_budget", "below 0"});
  check_one_line_error(serq_run(base + " --set quant.rank_allocation=dp --set quant.rank=12", dir),
                       {"quant.rank", "multiple of 8"});
}

}  // namespace serq
