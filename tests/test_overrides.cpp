// quant.overrides (core/config/layer_overrides.h): rules parsed and written back canonically, the first match winning,
// skipping every layer giving full precision exactly, restating the global settings giving the global run exactly,
// the plan in run.h5, and bad rules refused in one line before any work.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

#include "core/common/error.h"
#include "core/config/layer_overrides.h"
#include "core/config/run_config.h"
#include "core/formats/result_file.h"
#include "methods/registry.h"
#include "tests/support/serq_run.h"

namespace serq {
namespace {

using test::check_one_line_error;
using test::kSmallRun;
using test::serq_run;
using test::write_config;

std::string canonical(const std::string& yaml) { return canonical_overrides(YAML::Load(yaml), "test"); }

// serq-run's JSON line and the run's record.
struct Ran {
  nlohmann::json json;
  RunRecord record;
};
Ran run(const std::string& args, const std::filesystem::path& dir) {
  const auto out = serq_run(args + " --json --quiet", dir);
  INFO(args << "\n" << out.err);
  REQUIRE(out.status == 0);
  Ran ran;
  ran.json = nlohmann::json::parse(out.out.substr(0, out.out.find('\n')));
  ran.record = read_run_record(ran.json["result_file"].get<std::string>());
  return ran;
}

// The small run's config with `rules` as quant.overrides, as serq-run arguments.
std::string with_rules(const std::filesystem::path& dir, const std::string& rules) {
  static int written = 0;
  const auto path = dir / ("rules" + std::to_string(++written) + ".yaml");
  std::ofstream(path) << kSmallRun << "quant.overrides: " << rules << "\n";
  return path.string();
}

}  // namespace

TEST_CASE("overrides: rules are written back in one canonical text that loads to itself, and the first match wins") {
  const std::string text = canonical(
      "[{a_bits: 8, match: 'down_proj$', w_bits: 8}, {match: 'layers\\.1\\.', skip: true}, "
      "{match: mlp, group_size: channel, skip: false}]");
  CHECK(text == R"([{match: "down_proj$", w_bits: 8, a_bits: 8}, {match: "layers\\.1\\.", skip: true}, )"
                R"({match: "mlp", group_size: channel}])");
  CHECK(canonical_overrides(YAML::Node(text), "test") == text);  // as a resolved config holds it
  CHECK(canonical("[]").empty());

  const std::vector<LayerOverride> rules = parse_overrides(text);
  REQUIRE(rules.size() == 3);
  CHECK(matching_override(rules, "layers.1.mlp.down_proj") == 0u);  // the first rule, though all three match
  CHECK(matching_override(rules, "layers.1.mlp.up_proj") == 1u);
  CHECK(matching_override(rules, "layers.2.mlp.up_proj") == 2u);
  CHECK(!matching_override(rules, "layers.2.self_attn.q_proj"));
  CHECK(rules[0].w_bits == 8);
  CHECK(rules[2].group_size == 0);  // channel
  CHECK(rules[1].skip);
}

TEST_CASE("overrides: a bad regex, a key a rule cannot set, a bad value, no match key, a rule that sets nothing, a "
          "regex that matches no layer and rules where nothing is quantized are each one line") {
  CHECK_THROWS_WITH(canonical("[{match: 'layers.(', w_bits: 8}]"),
                    Catch::Contains("rule 1") && Catch::Contains("not a valid regex"));
  CHECK_THROWS_WITH(canonical("[{match: mlp, w_bits: 8}, {match: attn, bits: 8}]"),
                    Catch::Contains("rule 2") && Catch::Contains("'bits' is not a key an override can set") &&
                        Catch::Contains("weight_quantizer"));
  CHECK_THROWS_WITH(canonical("[{match: mlp, w_bits: 9}]"), Catch::Contains("rule 1") && Catch::Contains("9"));
  CHECK_THROWS_WITH(canonical("[{w_bits: 8}]"), Catch::Contains("no match"));
  CHECK_THROWS_WITH(canonical("[{match: mlp}]"), Catch::Contains("sets nothing"));
  CHECK_THROWS_WITH(canonical("[{match: mlp, skip: true, w_bits: 8}]"), Catch::Contains("skip: true"));
  CHECK_THROWS_WITH(canonical("{match: mlp}"), Catch::Contains("expected a list of rules"));
  const std::vector<std::string> names = {"layers.0.mlp.down_proj", "layers.1.mlp.down_proj", "layers.0.mlp.up_proj"};
  CHECK_THROWS_WITH(check_overrides_match(parse_overrides(canonical("[{match: 'layers\\.11\\.mlp', w_bits: 8}]")),
                                          names, "m"),
                    Catch::Contains("matches no layer of m") && Catch::Contains("nearest names: layers.1.mlp"));

  const auto dir = test::scratch_dir("overrides_errors");
  check_one_line_error(serq_run(with_rules(dir, "[{match: 'layers\\.11\\.', w_bits: 8}]"), dir),
                       {"quant.overrides", "rule 1", "matches no layer", "nearest names"});
  check_one_line_error(serq_run(with_rules(dir, "[{match: '(', w_bits: 8}]"), dir),
                       {"quant.overrides", "not a valid regex"});
  check_one_line_error(serq_run(with_rules(dir, "[{match: mlp, bits: 8}]"), dir),
                       {"quant.overrides", "'bits' is not a key an override can set"});
  check_one_line_error(serq_run(with_rules(dir, "[{match: mlp, w_bits: 8}]") + " --set quant.method=fp", dir),
                       {"quant.overrides", "no run of this experiment quantizes"});
  CHECK(!std::filesystem::exists(dir / "results"));  // refused before any work
}

TEST_CASE("overrides: skipping every layer gives full precision's perplexity exactly, restating the global settings "
          "gives the global run's exactly, and the plan is in run.h5 with a run id of its own") {
  const auto dir = test::scratch_dir("overrides_runs");
  const std::string options = " --set eval.max_windows=2 --set calib.samples=8 --out " + (dir / "out").string();
  const std::string base = write_config(dir, kSmallRun).string() + options;
  const double fp = run(base + " --set quant.method=fp", dir).json["ppl"];
  const Ran skipped = run(with_rules(dir, "[{match: layers, skip: true}]") + options, dir);
  CHECK(skipped.json["ppl"].get<double>() == fp);
  CHECK(skipped.record.plan.front().weight == "fp");
  CHECK(skipped.record.plan.front().rule == 0);
  CHECK(skipped.json["bits_per_weight"].get<double>() == 16.0);

  for (const std::string method : {"rtn", "serq --set quant.rank=16"}) {
    const Ran global = run(base + " --set quant.method=" + method, dir);
    const std::string rank = method == "rtn" ? "" : ", rank: 16";
    const Ran restated = run(with_rules(dir, "[{match: proj, w_bits: 4, a_bits: 4, group_size: 32" + rank + "}]") +
                                 options + " --set quant.method=" + method,
                             dir);
    INFO(method);
    CHECK(restated.json["ppl"].get<double>() == global.json["ppl"].get<double>());
    CHECK(restated.json["run_id"] != global.json["run_id"]);
    CHECK(restated.record.label == global.record.label + " +1 override");
  }

  const Ran mixed =
      run(with_rules(dir, "[{match: 'layers\\.4\\.mlp\\.down', w_bits: 8, a_bits: 8}, {match: mlp, w_bits: 6}]") +
              options,
          dir);
  std::map<std::string, LayerPlan> plan;
  for (const LayerPlan& layer : mixed.record.plan) plan[layer.name] = layer;
  CHECK(plan.at("layers.4.mlp.down_proj").weight == "int8-sym-g32");
  CHECK(plan.at("layers.4.mlp.down_proj").activation == "int8-asym-g32");
  CHECK(plan.at("layers.4.mlp.down_proj").rule == 0);
  CHECK(plan.at("layers.4.mlp.up_proj").weight == "int6-sym-g32");
  CHECK(plan.at("layers.4.mlp.up_proj").activation == "int4-asym-g32");
  CHECK(plan.at("layers.4.mlp.up_proj").rule == 1);
  CHECK(plan.at("layers.4.self_attn.q_proj").weight == "int4-sym-g32");
  CHECK(plan.at("layers.4.self_attn.q_proj").rule == -1);
  CHECK(plan.at("lm_head").weight == "fp");
}

}  // namespace serq
