// Tests for run configs: schema defaults, parsing, env expansion, --set, sweeps, run ids and one-line errors.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <set>

#include "core/common/error.h"
#include "core/common/hash.h"
#include "core/config/config_schema.h"
#include "core/config/run_config.h"
#include "methods/registry.h"
#include "tests/assets.h"

namespace {

using serq::load_experiment;
using serq::ResolvedConfig;

std::filesystem::path write_config(const std::string& test, const std::string& name, const std::string& text) {
  const auto path = serq::test::scratch_dir(test) / name;
  std::ofstream(path) << text;
  return path;
}

serq::ExperimentPlan load(const std::filesystem::path& path, const std::vector<std::string>& sets = {}) {
  return load_experiment(path, sets, serq::method_catalog());
}

// The message of the serq::Error that `action` throws; fails the test when it throws none.
template <class Action>
std::string error_of(Action&& action) {
  try {
    action();
  } catch (const serq::Error& e) {
    const std::string message = e.what();
    CHECK(message.find('\n') == std::string::npos);
    return message;
  }
  FAIL("expected a serq::Error");
  return {};
}

const std::string kMinimal = "model:\n  path: ${SERQ_ASSETS}/models/stories260K-hf\nquant:\n  method: rtn\n";

}  // namespace

TEST_CASE("fnv1a64 matches the published test vectors", "[config]") {
  CHECK(serq::fnv1a64("") == 0xcbf29ce484222325ULL);
  CHECK(serq::fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(serq::fnv1a64_hex("foobar") == "85944171f73967e8");
}

TEST_CASE("a full config parses to the values it sets", "[config]") {
  const auto model = serq::test::asset("models/stories260K/stories260K.bin");
  const auto path =
      write_config("config_full", "full.yaml",
                   fmt::format(R"(# every key, set to a non-default value
experiment:
  name: w4a4-check
model:
  path: {}
  tokenizer: {}
quant:
  method: rtn
  w_bits: 3
  a_bits: 8
  group_size: 32
  a_group_size: channel
  w_sym: false
  a_sym: true
  quantize_lm_head: true
eval:
  dataset: wikitext2
  seq_len: 256
  max_windows: 10
  batch_size: 2
runtime:
  device: cpu
  threads: 1
)",
                               model.string(), serq::test::asset("models/stories260K/tok512.model").string()));
  const auto plan = load(path);
  REQUIRE(plan.runs.size() == 1);
  CHECK(plan.experiment == "w4a4-check");
  CHECK(plan.config_path == path);
  const ResolvedConfig& c = plan.runs[0];
  CHECK(c.get_string("experiment.name") == "w4a4-check");
  CHECK(c.get_string("model.path") == model.string());
  CHECK(c.get_string("model.tokenizer") == serq::test::asset("models/stories260K/tok512.model").string());
  CHECK(c.get_string("quant.method") == "rtn");
  CHECK(c.get_int("quant.w_bits") == 3);
  CHECK(c.get_int("quant.a_bits") == 8);
  CHECK(c.get_int("quant.group_size") == 32);
  CHECK(c.get_int("quant.a_group_size") == 0);
  CHECK_FALSE(c.get_bool("quant.w_sym"));
  CHECK(c.get_bool("quant.a_sym"));
  CHECK(c.get_bool("quant.quantize_lm_head"));
  CHECK(c.get_string("eval.dataset") == "wikitext2");
  CHECK(c.get_int("eval.seq_len") == 256);
  CHECK(c.get_int("eval.max_windows") == 10);
  CHECK(c.get_int("eval.batch_size") == 2);
  CHECK(c.get_string("runtime.device") == "cpu");
  CHECK(c.get_int("runtime.threads") == 1);
  CHECK(c.label() == "rtn w3a8 g32 agch");
}

TEST_CASE("unset keys take their schema defaults", "[config]") {
  const auto plan = load(write_config("config_defaults", "w4_default.yaml", kMinimal));
  const ResolvedConfig& c = plan.runs.at(0);
  CHECK(plan.experiment == "w4_default");  // the config file's stem
  CHECK(c.get_string("model.tokenizer").empty());
  CHECK(c.get_int("quant.w_bits") == 4);
  CHECK(c.get_int("quant.a_bits") == 16);
  CHECK(c.get_int("quant.group_size") == 0);
  CHECK(c.get_int("quant.a_group_size") == 0);
  CHECK(c.get_bool("quant.w_sym"));
  CHECK_FALSE(c.get_bool("quant.a_sym"));
  CHECK_FALSE(c.get_bool("quant.quantize_lm_head"));
  CHECK(c.get_string("eval.dataset") == "tinystories-eval");
  CHECK(c.get_int("eval.seq_len") == 512);
  CHECK(c.get_int("eval.max_windows") == 0);
  CHECK(c.get_int("eval.batch_size") == 8);
  CHECK(c.get_string("runtime.device") == "cpu");
  CHECK(c.get_int("runtime.threads") == 0);
  CHECK(c.label() == "rtn w4a16 gch");
  // Runs that differ only in their calibration draw get labels apart.
  CHECK(load(write_config("config_defaults", "w4_default.yaml", kMinimal), {"calib.seed=3"}).runs.at(0).label() ==
        "rtn w4a16 gch calib-seed3");
}

TEST_CASE("a_group_size follows group_size unless set", "[config]") {
  const auto path = write_config("config_a_group", "a.yaml", kMinimal);
  CHECK(load(path, {"quant.group_size=64"}).runs[0].get_int("quant.a_group_size") == 64);
  const auto both = load(path, {"quant.group_size=64", "quant.a_group_size=32"}).runs[0];
  CHECK(both.get_int("quant.group_size") == 64);
  CHECK(both.get_int("quant.a_group_size") == 32);
}

TEST_CASE("getters reject keys that are not in the schema or have another type", "[config]") {
  const auto c = load(write_config("config_getters", "g.yaml", kMinimal)).runs[0];
  CHECK_THROWS_AS(c.get_int("quant.wbits"), serq::Error);
  CHECK_THROWS_AS(c.get_string("quant.w_bits"), serq::Error);
  CHECK_THROWS_AS(c.get_float("quant.w_bits"), serq::Error);
}

TEST_CASE("${VAR} in paths is expanded from the environment", "[config]") {
  ::setenv("SERQ_TEST_MODELS", serq::test::asset("models").c_str(), 1);
  ::setenv("SERQ_TEST_TEXT", "/data/text", 1);
  const auto plan = load(write_config("config_env", "env.yaml", R"(model:
  path: ${SERQ_TEST_MODELS}/stories260K-hf
  tokenizer: $SERQ_TEST_MODELS/stories260K/tok512.model
quant: {method: fp}
eval: {dataset: "${SERQ_TEST_TEXT}/mine.txt"}
)"));
  const ResolvedConfig& c = plan.runs[0];
  CHECK(c.get_string("model.path") == serq::test::asset("models").string() + "/stories260K-hf");
  CHECK(c.get_string("model.tokenizer") == serq::test::asset("models").string() + "/stories260K/tok512.model");
  CHECK(c.get_string("eval.dataset") == "/data/text/mine.txt");
  // SERQ_ASSETS falls back to the assets root when unset.
  const auto minimal = load(write_config("config_env_assets", "m.yaml", kMinimal)).runs[0];
  CHECK(minimal.get_string("model.path") == serq::assets_root().string() + "/models/stories260K-hf");
}

TEST_CASE("an unset environment variable names the key", "[config][errors]") {
  ::unsetenv("SERQ_TEST_UNSET_VARIABLE");
  const auto path =
      write_config("config_env_unset", "e.yaml", kMinimal + "eval:\n  dataset: ${SERQ_TEST_UNSET_VARIABLE}/x\n");
  const std::string message = error_of([&] { load(path); });
  CHECK_THAT(message,
             Catch::StartsWith(path.string() + ": eval.dataset: environment variable SERQ_TEST_UNSET_VARIABLE"));
}

TEST_CASE("overrides given with --set replace config values and are validated like the file", "[config]") {
  const auto path = write_config("config_set", "s.yaml", kMinimal);
  const auto plan = load(
      path, {"quant.w_bits=8", "quant.method=fp", "quant.a_sym=true", "experiment.name=renamed", "quant.w_bits=3"});
  const ResolvedConfig& c = plan.runs[0];
  CHECK(c.get_int("quant.w_bits") == 3);  // the last --set of a key wins
  CHECK(c.get_string("quant.method") == "fp");
  CHECK(c.get_bool("quant.a_sym"));
  CHECK(plan.experiment == "renamed");
  CHECK(error_of([&] { load(path, {"quant.w_bits=9"}); }) ==
        "--set: quant.w_bits: 9 is above 8; use an integer 2..8 or 16");
  CHECK(error_of([&] { load(path, {"quant.w_bits"}); }) ==
        "--set 'quant.w_bits': expected KEY=VALUE, e.g. --set quant.w_bits=8");
  CHECK(error_of([&] { load(path, {"quant.w_bits="}); }) ==
        "--set: quant.w_bits: no value given; use an integer 2..8 or 16");
}

TEST_CASE("an unknown key given with --set names --set and suggests the key", "[config][errors]") {
  const auto path = write_config("config_set_unknown", "s.yaml", kMinimal);
  const std::string message = error_of([&] { load(path, {"quant.wbits=4"}); });
  CHECK_THAT(message, Catch::StartsWith("--set: unknown key 'quant.wbits'; did you mean 'quant.w_bits'? (keys under "
                                        "quant: method, w_bits, a_bits,"));
}

TEST_CASE("sweep expands to the Cartesian product, first key outermost", "[config][sweep]") {
  const auto plan = load(write_config("config_sweep", "sweep.yaml", kMinimal + R"(sweep:
  quant.method: [rtn]
  quant:
    w_bits: [4, 8]
    a_bits: [8, 16]
  quant.group_size: [channel, 32, 64]
)"));
  REQUIRE(plan.runs.size() == 12);
  std::vector<std::string> labels;
  std::set<std::string> ids;
  for (const auto& run : plan.runs) {
    labels.push_back(run.label());
    ids.insert(run.run_id("v1"));
  }
  CHECK(labels == std::vector<std::string>{"rtn w4a8 gch", "rtn w4a8 g32", "rtn w4a8 g64", "rtn w4a16 gch",
                                           "rtn w4a16 g32", "rtn w4a16 g64", "rtn w8a8 gch", "rtn w8a8 g32",
                                           "rtn w8a8 g64", "rtn w8a16 gch", "rtn w8a16 g32", "rtn w8a16 g64"});
  CHECK(ids.size() == plan.runs.size());
  CHECK(plan.runs[4].get_int("quant.a_group_size") == 32);  // the default follows each swept group size
}

TEST_CASE("zip groups vary their keys together, in document order with the other axes", "[config][sweep]") {
  const auto plan = load(write_config("config_zip", "zip.yaml", kMinimal + R"(sweep:
  quant.group_size: [channel, 32]
  zip:
    quant.w_bits: [4, 8]
    quant.a_bits: [4, 8]
)"));
  std::vector<std::string> labels;
  for (const auto& run : plan.runs) labels.push_back(run.label());
  CHECK(labels == std::vector<std::string>{"rtn w4a4 gch", "rtn w8a8 gch", "rtn w4a4 g32", "rtn w8a8 g32"});

  const auto groups = load(write_config("config_zip_list", "zip.yaml", kMinimal + R"(sweep:
  zip:
    - {quant.w_bits: [4, 8], quant.a_bits: [4, 8]}
    - {quant.group_size: [32, 64], eval.seq_len: [128, 256]}
)"));
  REQUIRE(groups.runs.size() == 4);
  CHECK(groups.runs[3].label() == "rtn w8a8 g64");
  CHECK(groups.runs[3].get_int("eval.seq_len") == 256);
  CHECK(groups.runs[2].get_int("eval.seq_len") == 128);

  // --set on a zipped key takes that key out; the rest of its group still varies.
  const auto set = load(write_config("config_zip_set", "zip.yaml",
                                     kMinimal + "sweep:\n  zip: {quant.w_bits: [4, 8], quant.a_bits: [4, 8]}\n"),
                        {"quant.w_bits=6"});
  REQUIRE(set.runs.size() == 2);
  CHECK(set.runs[0].label() == "rtn w6a4 gch");
  CHECK(set.runs[1].label() == "rtn w6a8 gch");
}

TEST_CASE("zip groups of unequal lengths, or a key swept twice, are rejected", "[config][errors][sweep]") {
  const auto unequal = write_config("config_zip_unequal", "z.yaml",
                                    kMinimal + "sweep:\n  zip: {quant.w_bits: [4, 8], quant.a_bits: [4, 8, 16]}\n");
  CHECK(error_of([&] { load(unequal); }) ==
        unequal.string() + ": sweep: zip: quant.a_bits has 3 values but quant.w_bits has 2; lists zipped together "
                           "need one length");
  const auto twice = write_config("config_zip_twice", "z.yaml",
                                  kMinimal + "sweep:\n  quant.w_bits: [2, 3]\n  zip: {quant.w_bits: [4, 8]}\n");
  CHECK(error_of([&] { load(twice); }) ==
        twice.string() + ": sweep: quant.w_bits is swept twice (in zip: and outside it, or in two zip groups); keep one");
  const auto unknown = write_config("config_zip_unknown", "z.yaml",
                                    kMinimal + "sweep:\n  zip: {quant.wbits: [4, 8]}\n");
  CHECK_THAT(error_of([&] { load(unknown); }),
             Catch::StartsWith(unknown.string() + ": sweep: zip: unknown key 'quant.wbits'; did you mean 'quant.w_bits'?"));
  const auto scalar = write_config("config_zip_scalar", "z.yaml", kMinimal + "sweep:\n  zip: 4\n");
  CHECK(error_of([&] { load(scalar); }) ==
        scalar.string() + ": sweep: zip: expected a map of key: [values], or a list of such maps, got a single value");
}

TEST_CASE("run ids are stable across loads and change with the config and the code version", "[config][sweep]") {
  const auto path = write_config("config_ids", "ids.yaml", kMinimal + "sweep: {quant.w_bits: [4, 8]}\n");
  const auto first = load(path), second = load(path);
  REQUIRE(first.runs.size() == 2);
  for (std::size_t i = 0; i < first.runs.size(); ++i) {
    CHECK(first.runs[i].run_id("abc123") == second.runs[i].run_id("abc123"));
    CHECK(first.runs[i].run_id("abc123").size() == 16);
  }
  CHECK(first.runs[0].run_id("abc123") != first.runs[0].run_id("abc124"));
  CHECK(first.runs[0].run_id("abc123") != load(path, {"eval.max_windows=3"}).runs[0].run_id("abc123"));
}

TEST_CASE("a swept key given with --set replaces that sweep axis", "[config][sweep]") {
  const auto path = write_config("config_set_sweep", "ss.yaml",
                                 kMinimal + "sweep:\n  quant.w_bits: [2, 3, 4]\n  eval.seq_len: [128, 256]\n");
  const auto plan = load(path, {"quant.w_bits=8"});
  REQUIRE(plan.runs.size() == 2);
  CHECK(plan.runs[0].get_int("quant.w_bits") == 8);
  CHECK(plan.runs[1].get_int("quant.w_bits") == 8);
  CHECK(plan.runs[0].get_int("eval.seq_len") == 128);
  CHECK(plan.runs[1].get_int("eval.seq_len") == 256);
}

TEST_CASE("the resolved YAML loads back to the same config", "[config]") {
  const auto original = load(write_config("config_roundtrip", "rt.yaml", kMinimal + R"(experiment: {name: "rt"}
quant: {group_size: 32, a_bits: 4, a_group_size: channel, w_sym: false}
eval: {dataset: "odd: name \"quoted\""}
)"));
  const std::string yaml = original.runs[0].to_yaml();
  CHECK_THAT(yaml, Catch::StartsWith("experiment:\n  name: \"rt\"\nmodel:\n  path: \""));
  CHECK_THAT(yaml, Catch::Contains("\n  group_size: 32\n  a_group_size: channel\n"));
  const auto reloaded = load(write_config("config_roundtrip_2", "rt.yaml", yaml));
  CHECK(reloaded.runs[0].to_yaml() == yaml);
  CHECK(reloaded.runs[0].get_string("eval.dataset") == "odd: name \"quoted\"");
  CHECK(reloaded.runs[0].run_id("v") == original.runs[0].run_id("v"));
}

TEST_CASE("every schema default is a valid value of its key", "[config]") {
  const auto& schema = serq::config_schema();
  for (std::size_t i = 0; i < schema.size(); ++i) {
    const serq::KeySpec& key = schema[i];
    INFO(key.path);
    CHECK(serq::config_key_index(key.path) == i);
    if (key.default_kind == serq::DefaultKind::value) {
      CHECK(key.parse(YAML::Load(key.to_yaml(key.default_value)), "schema", serq::method_names()) == key.default_value);
    }
    if (key.default_kind == serq::DefaultKind::same_as_key) {
      const auto source = serq::config_key_index(key.default_key);
      REQUIRE(source);
      CHECK(*source < i);
      CHECK(schema[*source].type == key.type);
    }
  }
  CHECK_THAT(serq::describe_config_keys(), Catch::Contains("quant.w_bits"));
}

TEST_CASE("floating keys take finite numbers in range", "[config]") {
  const serq::KeySpec ratio{
      .path = "calib.ratio", .type = serq::ValueType::floating, .doc = "a ratio", .min = 0, .max = 1};
  CHECK(std::get<double>(ratio.parse(YAML::Load("0.25"), "f.yaml", {})) == 0.25);
  CHECK(std::get<double>(ratio.parse(YAML::Load("1e-3"), "f.yaml", {})) == 1e-3);
  CHECK(ratio.to_yaml(0.25) == "0.25");
  CHECK(error_of([&] { ratio.parse(YAML::Load("half"), "f.yaml", {}); }) ==
        "f.yaml: calib.ratio: 'half' is not a finite number; use a number 0..1");
  CHECK(error_of([&] { ratio.parse(YAML::Load("1.5"), "f.yaml", {}); }) ==
        "f.yaml: calib.ratio: 1.5 is above 1; use a number 0..1");
}

// --- bad inputs: one line naming the file, the key and the fix ---

TEST_CASE("unknown key: names the file, the key and the closest valid key", "[config][errors]") {
  const auto path = write_config("config_unknown", "u.yaml", kMinimal + "eval:\n  seqlen: 128\n");
  CHECK(error_of([&] { load(path); }) ==
        path.string() +
            ": unknown key 'eval.seqlen'; did you mean 'eval.seq_len'? (keys under eval: dataset, seq_len, "
            "max_windows, batch_size, layer_error_samples, kld, kld_reference, rounding_seed, log_items, tasks, "
            "task_limit, task_bos, bad_lines, invalid_utf8)");
  const auto far = write_config("config_unknown_far", "u.yaml", kMinimal + "tuning: {lr: 1}\n");
  CHECK(error_of([&] { load(far); }) ==
        far.string() + ": unknown key 'tuning'; valid sections: experiment, model, quant, gptq, calib, eval, runtime");
}

TEST_CASE("wrong type: a word where an integer belongs", "[config][errors]") {
  const auto path = write_config("config_type", "t.yaml", kMinimal + "eval: {seq_len: \"256\"}\n");
  CHECK(error_of([&] { load(path); }) == path.string() + ": eval.seq_len: '256' is not an integer; use an integer ≥ 2");
  const auto words = write_config("config_type_word", "t.yaml", kMinimal + "quant.w_bits: four\n");
  CHECK(error_of([&] { load(words); }) ==
        words.string() + ": quant.w_bits: 'four' is not an integer; use an integer 2..8 or 16");
  const auto flag = write_config("config_type_bool", "t.yaml", kMinimal + "quant.w_sym: yes\n");
  CHECK(error_of([&] { load(flag); }) ==
        flag.string() + ": quant.w_sym: 'yes' is not true or false; use true or false");
}

TEST_CASE("wrong type: a map or list where a single value belongs", "[config][errors]") {
  const auto path = write_config("config_map", "m.yaml", kMinimal + "eval:\n  seq_len: {value: 256}\n");
  CHECK(error_of([&] { load(path); }) ==
        path.string() + ": eval.seq_len: expected a single value, got a map; use an integer ≥ 2");
  const auto section = write_config("config_section", "m.yaml", kMinimal + "eval: 256\n");
  CHECK(error_of([&] { load(section); }) ==
        section.string() +
            ": eval: expected a map of keys (dataset, seq_len, max_windows, batch_size, layer_error_samples, kld, "
            "kld_reference, rounding_seed, log_items, tasks, task_limit, task_bos, bad_lines, invalid_utf8), got a "
            "single value");
}

TEST_CASE("group size 0 is rejected with the way to say per-channel", "[config][errors]") {
  const auto path = write_config("config_group0", "g.yaml", kMinimal + "quant.group_size: 0\n");
  CHECK(error_of([&] { load(path); }) ==
        path.string() + ": quant.group_size: 0 is below 1; use an integer ≥ 1 or 'channel'");
}

TEST_CASE("w_bits 9 is rejected", "[config][errors]") {
  const auto path = write_config("config_wbits9", "w.yaml", kMinimal + "sweep: {quant.w_bits: [4, 9]}\n");
  CHECK(error_of([&] { load(path); }) ==
        path.string() + ": sweep: quant.w_bits: 9 is above 8; use an integer 2..8 or 16");
}

TEST_CASE("an empty sweep list is rejected", "[config][errors][sweep]") {
  const auto path = write_config("config_sweep_empty", "s.yaml", kMinimal + "sweep:\n  quant.w_bits: []\n");
  CHECK(error_of([&] { load(path); }) ==
        path.string() + ": sweep: quant.w_bits: the list is empty; give at least one value");
}

TEST_CASE("a sweep key that does not exist names the key and the closest one", "[config][errors][sweep]") {
  const auto path = write_config("config_sweep_unknown", "s.yaml", kMinimal + "sweep:\n  quant.rnak: [4, 8]\n");
  CHECK_THAT(error_of([&] { load(path); }),
             Catch::StartsWith(path.string() + ": sweep: unknown key 'quant.rnak'; did you mean 'quant.rank'?"));
}

TEST_CASE("a sweep entry that is not a list is rejected", "[config][errors][sweep]") {
  const auto path = write_config("config_sweep_scalar", "s.yaml", kMinimal + "sweep:\n  quant.w_bits: 4\n");
  CHECK(error_of([&] { load(path); }) ==
        path.string() +
            ": sweep: quant.w_bits: expected a list of values, got a single value; write quant.w_bits: [a, b]");
  const auto name = write_config("config_sweep_name", "s.yaml", kMinimal + "sweep: {experiment.name: [a, b]}\n");
  CHECK(error_of([&] { load(name); }) ==
        name.string() + ": sweep: experiment.name cannot be swept (one value per config); set it outside sweep:");
}

TEST_CASE("a sweep that repeats a value is rejected", "[config][errors][sweep]") {
  const auto path =
      write_config("config_sweep_repeat", "s.yaml", kMinimal + "sweep: {quant.group_size: [32, channel, 32]}\n");
  CHECK(error_of([&] { load(path); }) ==
        path.string() + ": sweep: runs 1 and 3 resolve to the same config (rtn w4a16 g32); remove the repeated value");
}

TEST_CASE("an unknown method lists the known ones", "[config][errors]") {
  const auto path = write_config("config_method", "m.yaml",
                                 "model:\n  path: ${SERQ_ASSETS}/models/stories260K-hf\nquant: {method: gptqq}\n");
  CHECK(error_of([&] { load(path); }) == fmt::format("{}: quant.method: 'gptqq' is not a known method; use one of: {}",
                                                     path.string(), fmt::join(serq::method_names(), ", ")));
}

TEST_CASE("a missing config file is an error naming it", "[config][errors]") {
  const auto path = serq::test::scratch_dir("config_missing") / "nope.yaml";
  CHECK(error_of([&] { load(path); }) == path.string() + ": config file not found (check the path)");
}

TEST_CASE("a YAML syntax error gives file:line:col", "[config][errors]") {
  const auto path = write_config("config_syntax", "bad.yaml", "model:\n  path: x\nquant:\n  method: b: c\n");
  CHECK(error_of([&] { load(path); }) == path.string() + ":4:12: YAML syntax error: illegal map value");
}

TEST_CASE("model.path is required and must exist", "[config][errors]") {
  const auto none = write_config("config_no_model", "n.yaml", "quant: {method: rtn}\n");
  CHECK(error_of([&] { load(none); }) ==
        none.string() +
            ": model.path is required (Hugging Face model directory, GGUF file or llama2.c .bin checkpoint; ${VAR} is "
            "expanded); set it in the config or pass --set model.path=...");
  const auto missing =
      write_config("config_bad_model", "b.yaml", "model: {path: /nonexistent/model}\nquant: {method: rtn}\n");
  CHECK(error_of([&] { load(missing); }) ==
        missing.string() + ": model.path: /nonexistent/model does not exist (set SERQ_ASSETS or fix the path)");
}

TEST_CASE("a key set twice is rejected", "[config][errors]") {
  const auto path = write_config("config_twice", "t.yaml", kMinimal + "quant.method: fp\n");
  CHECK(error_of([&] { load(path); }) == path.string() + ": quant.method is set twice; keep one");
}

TEST_CASE("an experiment name that cannot name a directory is rejected", "[config][errors]") {
  const auto path = write_config("config_bad_name", "my run.yaml", kMinimal);
  CHECK(error_of([&] { load(path); }) == path.string() +
                                             ": experiment.name: 'my run' cannot name a results directory; use a name "
                                             "of letters, digits, '.', '_' and '-'");
  CHECK(load(path, {"experiment.name=my-run"}).experiment == "my-run");
}

TEST_CASE("a method parameter set for a method that does not have it is an error", "[config][errors][methods]") {
  const auto path = write_config("config_param_rtn", "p.yaml", kMinimal + "  rank: 8\n");
  CHECK(error_of([&] { load(path); }) ==
        path.string() + ": quant.rank: no method of this experiment has this parameter; it belongs to lorc, lqer, "
                         "l2qer, serq; remove it or run one of those methods");
  CHECK(error_of([&] { load(write_config("config_param_set", "p.yaml", kMinimal), {"quant.alpha=0.3"}); }) ==
        "--set: quant.alpha: no method of this experiment has this parameter; it belongs to smoothquant; remove it "
        "or run one of those methods");
}

TEST_CASE("alpha outside [0, 1] is rejected", "[config][errors][methods]") {
  const auto path = write_config("config_alpha", "a.yaml", kMinimal);
  CHECK(error_of([&] { load(path, {"quant.method=smoothquant", "quant.alpha=1.5"}); }) ==
        "--set: quant.alpha: 1.5 is above 1; use a number 0..1");
  CHECK(error_of([&] { load(path, {"quant.method=smoothquant", "quant.alpha=-0.1"}); }) ==
        "--set: quant.alpha: -0.1 is below 0; use a number 0..1");
}

TEST_CASE("a method sweep keeps each method's parameters to its own runs", "[config][sweep][methods]") {
  const auto path = write_config("config_param_sweep", "s.yaml",
                                 kMinimal + "sweep:\n  quant.method: [rtn, serq]\n  quant.rank: [8, 16]\n");
  const auto plan = load(path);
  REQUIRE(plan.runs.size() == 3);  // rtn once: the rank does not change it
  CHECK(plan.runs[0].label() == "rtn w4a16 gch");
  CHECK(plan.runs[0].to_yaml().find("rank") == std::string::npos);
  CHECK_FALSE(plan.runs[0].applies("quant.rank"));
  CHECK(plan.runs[1].label() == "serq w4a16 gch r8");
  CHECK(plan.runs[2].label() == "serq w4a16 gch r16");
  CHECK(plan.runs[2].to_yaml().find("  rank: 16\n") != std::string::npos);
  CHECK(plan.runs[1].run_id("x") != plan.runs[2].run_id("x"));
}

TEST_CASE("mxfp4 and gptq show in the label", "[config][methods]") {
  const auto path = write_config("config_format", "f.yaml", kMinimal);
  const auto plan = load(path, {"quant.format=mxfp4", "quant.group_size=32", "quant.weight_quantizer=gptq"});
  CHECK(plan.runs[0].label() == "rtn mxfp4 w4a16 g32 gptq");
  CHECK(error_of([&] { load(path, {"quant.format=fp8"}); }) ==
        "--set: quant.format: 'fp8' is not allowed; use one of: int, mxfp4");
}

TEST_CASE("every shipped config loads, the paper configs with SERQ_MODELS set", "[config]") {
  // The paper configs name LLaMA checkpoints under ${SERQ_MODELS}; stand stories260K in for them to check the rest.
  const auto models = serq::test::scratch_dir("config_paper_models");
  for (const char* name : {"Llama-2-7b-hf", "Meta-Llama-3-8B"}) {
    std::filesystem::create_directory_symlink(serq::test::asset("models/stories260K-hf"), models / name);
  }
  setenv("SERQ_MODELS", models.c_str(), 1);
  std::size_t configs = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(std::string(SERQ_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    INFO(entry.path());
    const auto plan = load(entry.path());
    CHECK(!plan.runs.empty());
    ++configs;
  }
  unsetenv("SERQ_MODELS");
  CHECK(configs >= 8);  // w4a4, w4a8, mxfp4, ablation_rank and the four paper settings
}

TEST_CASE("eval.tasks takes 'all', a comma list or a YAML list, and an unknown task names the file and the key",
          "[config][errors]") {
  const auto list = write_config("config_tasks_list", "t.yaml", kMinimal + "eval:\n  tasks: [piqa, copa]\n");
  CHECK(load(list).runs[0].get_string("eval.tasks") == "piqa,copa");
  const auto comma = write_config("config_tasks_comma", "t.yaml", kMinimal + "eval:\n  tasks: piqa, copa\n");
  CHECK(load(comma).runs[0].get_string("eval.tasks") == "piqa, copa");
  const auto none = write_config("config_tasks_none", "t.yaml", kMinimal + "eval:\n  tasks:\n");
  CHECK(load(none).runs[0].get_string("eval.tasks").empty());
  CHECK(load(list, {"eval.tasks="}).runs[0].get_string("eval.tasks").empty());
  const auto unknown = write_config("config_tasks_unknown", "t.yaml", kMinimal + "eval:\n  tasks: [piqa, mmlu]\n");
  const std::string error = error_of([&] { load(unknown); });
  CHECK(error.starts_with(unknown.string() + ": eval.tasks: unknown task 'mmlu'"));
  CHECK(error.find("lambada_openai") != std::string::npos);
}
