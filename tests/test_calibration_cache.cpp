// The on-disk calibration cache: exact round trips, loads by a second cache without computing, recomputation on a
// changed key or a damaged file (reported in one line), and a run that gives the same perplexity from the cache.
#include <catch2/catch.hpp>

#include <fstream>

#include "core/common/build_info.h"
#include "experiments/asset_cache.h"
#include "experiments/calibrate.h"
#include "experiments/calibration_cache.h"
#include "experiments/run_one.h"
#include "methods/registry.h"
#include "tests/model_fixtures.h"
#include "tests/support/stderr_capture.h"

using namespace serq;

namespace {

const CalibrationSettings kSettings{2, 64, 0};

std::filesystem::path model_dir() { return test::asset("models/stories260K-hf"); }

CalibrationKey key_for(const CalibrationSettings& settings, bool hessian) {
  return calibration_key(model_dir(), model_dir() / "tokenizer.model", "tinystories-calib", settings, hessian, false);
}

// Real statistics of stories260K: with Hessians (the GPTQ weight quantizer) or without (serq's abs-max).
const Calibration& real_calibration(bool hessian) {
  static std::map<bool, Calibration> made;
  auto found = made.find(hessian);
  if (found == made.end()) {
    QuantParams params;
    params.weight = {4, true, 32};
    params.weight_quantizer = hessian ? WeightQuantizerKind::gptq : WeightQuantizerKind::rtn;
    const auto method = make_method(hessian ? "gptq" : "serq");
    found = made.emplace(hessian, calibrate(test::stories_model("stories260K-hf"), *method, params,
                                            test::tinystories("tinystories-calib"), kSettings)).first;
  }
  return found->second;
}

void check_equal(const Calibration& actual, const Calibration& expected) {
  CHECK(actual.seconds == expected.seconds);
  REQUIRE(actual.stats.size() == expected.stats.size());
  for (const auto& [name, stats] : expected.stats) {
    INFO(name);
    REQUIRE(actual.stats.contains(name));
    const ChannelStats& got = actual.stats.at(name);
    CHECK(got.abs_max == stats.abs_max);
    CHECK(got.mean_abs == stats.mean_abs);
    CHECK(got.tokens == stats.tokens);
    REQUIRE(got.hessian.rows() == stats.hessian.rows());
    REQUIRE(got.hessian.cols() == stats.hessian.cols());
    CHECK(got.hessian == stats.hessian);
  }
}

}  // namespace

TEST_CASE("a calibration cache file round-trips every field exactly, with and without Hessians") {
  const auto dir = test::scratch_dir("calibration_cache_round_trip");
  for (const bool hessian : {true, false}) {
    INFO("hessian " << hessian);
    const Calibration& calibration = real_calibration(hessian);
    REQUIRE(calibration.stats.size() == 35);
    CHECK(calibration.stats.at("layers.0.mlp.down_proj").hessian.rows() == (hessian ? 172 : 0));
    const CalibrationKey key = key_for(kSettings, hessian);
    const auto file = calibration_cache_file(dir, key);
    write_calibration_cache(file, key, calibration);
    check_equal(read_calibration_cache(file, key), calibration);
  }
}

TEST_CASE("the calibration key names its inputs and changes when the model files change") {
  const auto dir = test::scratch_dir("calibration_cache_key");
  std::filesystem::copy(model_dir(), dir / "model");
  const CalibrationKey before = calibration_key(dir / "model", dir / "model" / "tokenizer.model", "tinystories-calib",
                                                kSettings, false, false);
  const std::string text = before.text();
  for (const char* part : {"model.safetensors", "config.json", "tokenizer.model", "tinystories", "samples: 2\n",
                           "seq_len: 64\n", "seed: 0\n", "hessian: false\n", "lm_head: false\n"}) {
    CHECK_THAT(text, Catch::Contains(part));
  }
  CHECK_THAT(text, Catch::Contains("code_version: " + build_info().git_commit + "\n"));
  const auto weights = dir / "model" / "model.safetensors";
  std::filesystem::last_write_time(weights, std::filesystem::last_write_time(weights) + std::chrono::seconds(1));
  const CalibrationKey after = calibration_key(dir / "model", dir / "model" / "tokenizer.model", "tinystories-calib",
                                               kSettings, false, false);
  CHECK(after.text() != text);
  CHECK(calibration_cache_file(dir, after) != calibration_cache_file(dir, before));
  CHECK(calibration_cache_file(dir, before).filename().string().size() == 16 + 3);  // 16 hex digits + ".h5"
}

TEST_CASE("a second AssetCache on the same directory loads from disk without computing") {
  const auto dir = test::scratch_dir("calibration_cache_second");
  const CalibrationKey key = key_for(kSettings, true);
  int computed = 0;
  auto compute = [&] {
    ++computed;
    return real_calibration(true);
  };
  AssetCache first(dir);
  CHECK(first.calibration(key, compute).source == "computed");
  CHECK(first.calibration(key, compute).source == "memory");
  CHECK(computed == 1);
  CHECK(std::filesystem::exists(calibration_cache_file(dir, key)));

  AssetCache second(dir);
  const CachedCalibration loaded = second.calibration(key, compute);
  CHECK(computed == 1);
  CHECK(loaded.source == "disk:" + calibration_cache_file(dir, key).string());
  check_equal(loaded.calibration, real_calibration(true));

  AssetCache memory_only({});
  CHECK(memory_only.calibration(key, compute).source == "computed");
  CHECK(computed == 2);
}

TEST_CASE("a changed key recomputes, and a file stored for another key is reported and replaced") {
  const auto dir = test::scratch_dir("calibration_cache_changed_key");
  const CalibrationKey key = key_for(kSettings, false);
  const CalibrationKey other = key_for({3, 64, 0}, false);
  int computed = 0;
  auto compute = [&] {
    ++computed;
    return real_calibration(false);
  };
  AssetCache(dir).calibration(key, compute);
  CHECK(AssetCache(dir).calibration(other, compute).source == "computed");
  CHECK(computed == 2);

  // A hash collision: the other key's file name holding this key's statistics.
  std::filesystem::copy_file(calibration_cache_file(dir, key), calibration_cache_file(dir, other),
                             std::filesystem::copy_options::overwrite_existing);
  std::string source;
  const std::string err =
      test::stderr_of(dir / "stderr.txt", [&] { source = AssetCache(dir).calibration(other, compute).source; });
  CHECK(source == "computed");
  CHECK(computed == 3);
  CHECK(err == "serq-run: calibration cache " + calibration_cache_file(dir, other).string() +
                   ": not usable (stored for another key); recomputing\n");
  CHECK(AssetCache(dir).calibration(other, compute).source.starts_with("disk:"));  // replaced
}

TEST_CASE("a truncated or garbage cache file is reported in one line, recomputed and replaced") {
  const auto dir = test::scratch_dir("calibration_cache_damaged");
  const CalibrationKey key = key_for(kSettings, true);
  const auto file = calibration_cache_file(dir, key);
  write_calibration_cache(file, key, real_calibration(true));
  const std::string intact = test::read_bytes(file);
  for (const std::string& damaged : {intact.substr(0, intact.size() / 2), std::string("not an HDF5 file\n")}) {
    test::write_bytes(file, damaged);
    int computed = 0;
    std::string source;
    const std::string err = test::stderr_of(dir / "stderr.txt", [&] {
      source = AssetCache(dir).calibration(key, [&] {
        ++computed;
        return real_calibration(true);
      }).source;
    });
    INFO("stderr: " << err);
    CHECK(source == "computed");
    CHECK(computed == 1);
    CHECK(err.starts_with("serq-run: calibration cache " + file.string() + ": "));
    CHECK(err.ends_with("; recomputing\n"));
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
    check_equal(read_calibration_cache(file, key), real_calibration(true));
  }
}

TEST_CASE("a run gives the same perplexity with statistics from the disk cache as without the cache") {
  const auto dir = test::scratch_dir("calibration_cache_run");
  std::ofstream(dir / "config.yaml") << "model:\n  path: " << model_dir().string()
                                     << "\nquant:\n  method: serq\n  w_bits: 4\n  a_bits: 4\n  group_size: 32\n"
                                        "  rank: 8\ncalib:\n  samples: 4\n  seq_len: 64\n"
                                        "eval:\n  max_windows: 2\n  layer_error_samples: 0\n";
  const ExperimentPlan plan = load_experiment(dir / "config.yaml", {}, method_catalog());
  const ResolvedConfig& config = plan.runs.at(0);
  AssetCache no_disk({});
  const RunRecord plain = execute_run(config, plan.experiment, no_disk);
  AssetCache writer(dir / "cache");
  const RunRecord computed = execute_run(config, plan.experiment, writer);
  AssetCache reader(dir / "cache");
  const RunRecord loaded = execute_run(config, plan.experiment, reader);

  CHECK(plain.info.at("calibration_source") == "computed");
  CHECK(computed.info.at("calibration_source") == "computed");
  CHECK(loaded.info.at("calibration_source").starts_with("disk:" + (dir / "cache").string()));
  CHECK(loaded.metrics.at("ppl") == plain.metrics.at("ppl"));
  CHECK(loaded.metrics.at("calibration_seconds") == computed.metrics.at("calibration_seconds"));
  CHECK(loaded.metrics.at("calibration_load_seconds") < computed.metrics.at("calibration_load_seconds"));
}
