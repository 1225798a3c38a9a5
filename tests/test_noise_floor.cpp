// The noise floor: one-ulp nudges of the norms (every element moved by exactly one ulp, seeded, a small change of
// perplexity), the --noise-floor plan (which kinds apply to which method, distinct runs, refused configs) and
// serq-run --noise-floor end to end; and a perplexity that does not move with runtime.threads where serq's
// kernels sum.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/common/error.h"
#include "core/data/windows.h"
#include "core/eval/perplexity.h"
#include "core/model/rounding_nudge.h"
#include "experiments/noise_floor.h"
#include "methods/registry.h"
#include "tests/model_fixtures.h"
#include "tests/support/serq_run.h"

using namespace serq;

namespace {

// Units in the last place between two floats of one sign.
std::int64_t ulps_apart(float a, float b) {
  std::int32_t x = 0, y = 0;
  std::memcpy(&x, &a, sizeof x);
  std::memcpy(&y, &b, sizeof y);
  return std::abs(static_cast<std::int64_t>(x) - y);
}

}  // namespace

TEST_CASE("a rounding nudge moves every norm weight by exactly one ulp, both ways, the same for one seed") {
  const Model& original = test::stories_model("stories260K-hf");
  Model a = original, b = original, c = original;
  nudge_norms_by_one_ulp(a, 7);
  nudge_norms_by_one_ulp(b, 7);
  nudge_norms_by_one_ulp(c, 8);
  int up = 0, down = 0;
  for (std::size_t l = 0; l < original.layers.size(); ++l) {
    for (Eigen::Index i = 0; i < original.layers[l].attn_norm.size(); ++i) {
      const float before = original.layers[l].attn_norm[i], after = a.layers[l].attn_norm[i];
      REQUIRE(ulps_apart(before, after) == 1);
      (after > before ? up : down) += 1;
      CHECK(ulps_apart(original.layers[l].ffn_norm[i], a.layers[l].ffn_norm[i]) == 1);
    }
  }
  CHECK(up > 50);  // a fair coin over 5 × 64 elements
  CHECK(down > 50);
  for (Eigen::Index i = 0; i < original.final_norm.size(); ++i) {
    CHECK(ulps_apart(original.final_norm[i], a.final_norm[i]) == 1);
  }
  CHECK(a.layers[2].ffn_norm == b.layers[2].ffn_norm);
  CHECK(a.layers[2].ffn_norm != c.layers[2].ffn_norm);
  CHECK(a.lm_head.weight == original.lm_head.weight);  // the linears are not touched
  CHECK_THROWS_AS(nudge_norms_by_one_ulp(a, 0), Error);

  // Full precision barely moves: no activation code to flip.
  const auto windows = eval_windows(test::tinystories("tinystories-eval"), 512, 8);
  const double before = evaluate_perplexity(original, windows, 8).ppl, after = evaluate_perplexity(a, windows, 8).ppl;
  CHECK(after != before);
  CHECK(after == Approx(before).epsilon(1e-5));
}

namespace {

// The small stories260K run, swept over rtn and serq, written to DIR/config.yaml.
std::filesystem::path rtn_and_serq_config(const std::filesystem::path& dir) {
  return test::write_config(dir, std::string(test::kSmallRun) + "sweep:\n  quant.method: [rtn, serq]\n");
}

}  // namespace

TEST_CASE("the --noise-floor plan runs each kind where it applies, each run once, and refuses what it must vary") {
  const auto dir = test::scratch_dir("noise_floor_plan");
  std::filesystem::create_directories(dir / "swept");
  const auto config = rtn_and_serq_config(dir);
  const NoisePlan noise = noise_floor_plan(config, {"quant.rank=8"}, method_catalog(), 3);
  // rtn: itself, 2 rounding variants, float scales = 4; serq: itself, 2 calibration, 2 tie-order, 2 rounding, 1 = 8.
  REQUIRE(noise.configurations == 2);
  CHECK(noise.plan.runs.size() == 12);
  std::map<std::string, int> labels;
  for (const ResolvedConfig& run : noise.plan.runs) ++labels[run.label()];
  CHECK(labels.size() == 12);  // distinct
  CHECK(labels.count("rtn w4a4 g32 ulp-seed2") == 1);
  CHECK(labels.count("rtn w4a4 g32 f32-scales") == 1);
  CHECK(labels.count("rtn w4a4 g32 calib-seed1") == 0);  // rtn does not calibrate
  CHECK(labels.count("serq w4a4 g32 r8 calib-seed2") == 1);
  CHECK(labels.count("serq w4a4 g32 r8 ties-seed1") == 1);
  int rtn_members = 0;
  for (const NoisePlan::Member& m : noise.members) rtn_members += noise.plan.runs[m.configuration].label() == "rtn w4a4 g32";
  CHECK(rtn_members == 3 + 2);  // rounding: itself and 2; scale dtype: itself and float

  std::string swept = test::kSmallRun;
  swept += "sweep:\n  calib.seed: [0, 1]\n";
  CHECK_THROWS_WITH(noise_floor_plan(test::write_config(dir / "swept", swept), {}, method_catalog(), 3),
                    Catch::Contains("calib.seed") && Catch::Contains("do not sweep it"));
  CHECK_THROWS_WITH(noise_floor_plan(config, {"eval.rounding_seed=4"}, method_catalog(), 3),
                    Catch::Contains("eval.rounding_seed"));
  CHECK_THROWS_WITH(noise_floor_plan(config, {}, method_catalog(), 1), Catch::Contains("2 or more"));
}

TEST_CASE("noise kinds: --noise-kinds keeps the chosen kinds, each of which must apply, and refuses unknown names") {
  const auto dir = test::scratch_dir("noise_floor_kinds");
  std::filesystem::create_directories(dir / "rtn");
  const auto config = rtn_and_serq_config(dir);
  const std::vector<NoiseKind> kinds = parse_noise_kinds("tie_order,rounding");
  REQUIRE(kinds == std::vector<NoiseKind>{NoiseKind::tie_order, NoiseKind::rounding});
  const NoisePlan noise = noise_floor_plan(config, {"quant.rank=8"}, method_catalog(), 3, kinds);
  // The 2 configurations, serq's 2 tie orders, and 2 rounding variants of each; no calibration, no float scales.
  CHECK(noise.plan.runs.size() == 2 + 2 + 4);
  std::map<std::string, int> labels;
  for (const ResolvedConfig& run : noise.plan.runs) ++labels[run.label()];
  CHECK(labels.count("serq w4a4 g32 r8 ties-seed2") == 1);
  CHECK(labels.count("rtn w4a4 g32 ulp-seed2") == 1);
  CHECK(labels.count("serq w4a4 g32 r8 calib-seed1") == 0);
  CHECK(labels.count("rtn w4a4 g32 f32-scales") == 0);
  for (const NoisePlan::Member& m : noise.members) {
    CHECK((m.kind == NoiseKind::tie_order || m.kind == NoiseKind::rounding));
  }

  CHECK_THROWS_WITH(parse_noise_kinds("rounding,ties"), Catch::Contains("unknown kind 'ties'") &&
                                                          Catch::Contains("tie_order"));
  CHECK_THROWS_WITH(parse_noise_kinds("rounding,rounding"), Catch::Contains("named twice"));
  CHECK_THROWS_WITH(parse_noise_kinds("rounding,"), Catch::Contains("unknown kind ''"));
  const auto rtn_only = test::write_config(dir / "rtn", test::kSmallRun);  // rtn: no tie order to vary
  CHECK_THROWS_WITH(noise_floor_plan(rtn_only, {}, method_catalog(), 3, {NoiseKind::tie_order}),
                    Catch::Contains("--noise-kinds tie_order: applies to no run"));
}

TEST_CASE("serq-run --noise-floor prints each kind's spread after the runs") {
  const auto dir = test::scratch_dir("noise_floor_cli");
  const auto config = test::write_config(dir, test::kSmallRun);
  const test::CliOutput out =
      test::serq_run(config.string() + " --noise-floor 3 --quiet --out " + (dir / "results").string(), dir);
  INFO("stderr: " << out.err);
  REQUIRE(out.status == 0);
  CHECK(out.out.find("noise floor (3 runs per kind") != std::string::npos);
  CHECK(out.out.find("rounding (1-ulp nudges)       3") != std::string::npos);
  CHECK(out.out.find("scale dtype half → float      2") != std::string::npos);
  CHECK(out.out.find("calibration sample") == std::string::npos);  // rtn
  const test::CliOutput bad = test::serq_run(config.string() + " --noise-floor 1", dir);
  CHECK(bad.status == 2);

  // One kind only: the rounding rows and nothing else.
  const test::CliOutput rounding = test::serq_run(config.string() + " --noise-floor 3 --noise-kinds rounding --quiet "
                                                  "--out " + (dir / "results-rounding").string(), dir);
  INFO("stderr: " << rounding.err);
  REQUIRE(rounding.status == 0);
  CHECK(rounding.out.find("rounding (1-ulp nudges)       3") != std::string::npos);
  CHECK(rounding.out.find("scale dtype") == std::string::npos);
  const test::CliOutput alone = test::serq_run(config.string() + " --noise-kinds rounding", dir);
  CHECK(alone.status == 2);
  CHECK(alone.err.find("add --noise-floor N") != std::string::npos);
}

TEST_CASE("a W4A4 perplexity does not depend on runtime.threads on serq's integer kernel, and on OpenBLAS's float GEMMs "
          "it moves by rounding at most") {
  const auto dir = test::scratch_dir("threads");
  std::string yaml = test::kSmallRun;
  yaml.replace(yaml.find("  method: rtn\n"), 14, "  method: serq\n  rank: 8\n");
  yaml += "calib:\n  dataset: tinystories-calib\n  samples: 8\n  seq_len: 256\n";
  const auto config = test::write_config(dir, yaml);
  for (const char* kernels : {"float", "int"}) {
    std::vector<double> ppl;
    for (const int threads : {1, 2}) {
      const test::CliOutput out = test::serq_run(
          config.string() + fmt::format(" --json --quiet --out {} --set runtime.kernels={} --set runtime.threads={}",
                                        (dir / "results").string(), kernels, threads), dir);
      INFO("stderr: " << out.err);
      REQUIRE(out.status == 0);
      ppl.push_back(nlohmann::json::parse(out.out.substr(0, out.out.find('\n')))["ppl"].get<double>());
    }
    INFO(kernels);
    if (std::string(kernels) == "int") {
      CHECK(ppl[0] == ppl[1]);  // every sum of the evaluation is serq's, in an order fixed by the data
    } else {
      // The quantized linears are OpenBLAS SGEMMs, whose order may follow the thread count: identical with core
      // SkylakeX, 0.06% apart with core Zen. Float rounding flips a few activation codes, never more.
      CHECK(ppl[1] == Approx(ppl[0]).epsilon(0.02));
    }
  }
}
