// The KLD reference's hidden states on disk (experiments/reference_state_files.h): a later process reads them instead
// of running the full-precision decoder and gets the same results bit for bit; a damaged or foreign file is reported
// in one line and computed again; a cache that cannot be written is reported once and the run goes on.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <fstream>

#include "core/backend/backend.h"
#include "core/common/build_info.h"
#include "experiments/asset_cache.h"
#include "experiments/reference_state_files.h"
#include "experiments/run_one.h"
#include "methods/registry.h"
#include "tests/assets.h"
#include "tests/support/stderr_capture.h"

using namespace serq;

namespace {

std::filesystem::path model_dir() { return test::asset("models/stories260K-hf"); }

// SERQ W4A4 on stories260K, 3 windows of 64 in batches of 2 (so one batch of 2 windows and one of 1), with KLD.
ResolvedConfig kld_config(const std::filesystem::path& dir) {
  std::ofstream(dir / "config.yaml") << "model:\n  path: " << model_dir().string()
                                     << "\nquant:\n  method: serq\n  w_bits: 4\n  a_bits: 4\n  group_size: 32\n"
                                        "  rank: 8\ncalib:\n  samples: 2\n  seq_len: 64\n"
                                        "eval:\n  seq_len: 64\n  max_windows: 3\n  batch_size: 2\n  kld: true\n"
                                        "  layer_error_samples: 0\n";
  return load_experiment(dir / "config.yaml", {}, method_catalog()).runs.at(0);
}

RunRecord run(const ResolvedConfig& config, AssetCache& assets) { return execute_run(config, "reference_cache", assets); }

void check_same_results(const RunRecord& a, const RunRecord& b) {
  for (const char* metric : {"ppl", "kld.mean", "kld.max", "kld.top1_agreement", "kld.reference_ppl"}) {
    INFO(metric);
    CHECK(a.metrics.at(metric) == b.metrics.at(metric));
  }
}

std::string states(int computed, int read, int kept) {
  return fmt::format("batches: {} computed, {} read from the reference cache, {} kept in memory from an earlier run",
                     computed, read, kept);
}

std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST_CASE("a second process reads the KLD reference states from disk and gives the same results bit for bit") {
  const auto dir = test::scratch_dir("reference_cache_second");
  const ResolvedConfig config = kld_config(dir);
  AssetCache memory_only({});
  const RunRecord plain = run(config, memory_only);
  CHECK(plain.info.at("kld_reference_states") == states(2, 0, 0));
  CHECK(run(config, memory_only).info.at("kld_reference_states") == states(0, 0, 2));

  AssetCache writer({}, dir / "cache");
  const RunRecord computed = run(config, writer);
  CHECK(computed.info.at("kld_reference_states") == states(2, 0, 0));
  REQUIRE(files_in(dir / "cache").size() == 2);  // one file per batch

  AssetCache reader({}, dir / "cache");
  const RunRecord loaded = run(config, reader);
  CHECK(loaded.info.at("kld_reference_states") == states(0, 2, 0));
  check_same_results(computed, plain);
  check_same_results(loaded, plain);
}

TEST_CASE("the reference state key names the model files, backend, ISA, BLAS threads and code version") {
  const auto dir = test::scratch_dir("reference_cache_key");
  std::filesystem::copy(model_dir(), dir / "model");
  const std::string key = reference_state_key(dir / "model", cpu_backend());
  for (const std::string part : {std::string("model.safetensors"), std::string("config.json"),
                                 std::string("backend: cpu\n"), std::string("cpu_isa: "), std::string("blas: "),
                                 std::string("blas_threads: "), "code_version: " + build_info().git_commit + "\n"}) {
    CHECK_THAT(key, Catch::Contains(part));
  }
  CHECK(reference_state_key(dir / "model", reference_backend()) != key);
  const auto weights = dir / "model" / "model.safetensors";
  std::filesystem::last_write_time(weights, std::filesystem::last_write_time(weights) + std::chrono::seconds(1));
  CHECK(reference_state_key(dir / "model", cpu_backend()) != key);
}

TEST_CASE("a reference state file that is damaged or stored for another key or other tokens is reported and replaced") {
  const auto dir = test::scratch_dir("reference_cache_damaged");
  const std::vector<int> tokens{5, 7, 11, 13}, others{5, 7, 11, 14};
  Matrix hidden(4, 3);
  hidden << 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12.5f;
  ReferenceStateFiles store(dir, "key: a\n"), other_key(dir, "key: b\n");
  store.save(tokens, 2, 2, hidden);
  const std::optional<Matrix> back = store.load(tokens, 2, 2);
  REQUIRE(back);
  CHECK(*back == hidden);
  CHECK_FALSE(store.load(others, 2, 2));   // no file
  CHECK_FALSE(other_key.load(tokens, 2, 2));

  const auto file = store.file(tokens, 2, 2);
  const std::string intact = test::read_bytes(file);
  auto expect_reported = [&](ReferenceStateFiles& reader, std::span<const int> wanted, const std::string& why) {
    std::optional<Matrix> got;
    const std::string err = test::stderr_of(dir.parent_path() / "reference_cache_damaged.stderr",
                                            [&] { got = reader.load(wanted, 2, 2); });
    CHECK_FALSE(got);
    CHECK(err.starts_with("serq-run: KLD reference cache " + reader.file(wanted, 2, 2).string() + ": "));
    CHECK_THAT(err, Catch::Contains(why));
    CHECK(err.ends_with("; recomputing\n"));
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  };
  std::filesystem::copy_file(file, other_key.file(tokens, 2, 2));  // a hash collision of keys
  expect_reported(other_key, tokens, "stored for another key");
  std::filesystem::copy_file(file, store.file(others, 2, 2));  // a hash collision of token lists
  expect_reported(store, others, "stored for other tokens");
  for (const std::string& damaged : {intact.substr(0, intact.size() / 2), std::string("not an HDF5 file\n")}) {
    test::write_bytes(file, damaged);
    expect_reported(store, tokens, "");
  }
  store.save(tokens, 2, 2, hidden);  // replaced
  CHECK(store.load(tokens, 2, 2) == hidden);
}

TEST_CASE("a KLD reference cache that cannot be written is reported once and the run goes on to the same results") {
  const auto dir = test::scratch_dir("reference_cache_unwritable");
  const ResolvedConfig config = kld_config(dir);
  test::write_bytes(dir / "not-a-directory", "a file where the cache directory would go\n");
  AssetCache memory_only({});
  const RunRecord plain = run(config, memory_only);
  AssetCache unwritable({}, dir / "not-a-directory" / "cache");
  RunRecord record;
  const std::string err = test::stderr_of(dir / "stderr.txt", [&] { record = run(config, unwritable); });
  INFO("stderr: " << err);
  const auto line = err.find("serq-run: KLD reference cache ");  // the run's progress lines go to stderr too
  REQUIRE(line != std::string::npos);
  CHECK(err.find("serq-run: KLD reference cache", line + 1) == std::string::npos);  // once, not once a batch
  CHECK(err.substr(line, err.find('\n', line) - line + 1).ends_with("; evaluating on without it\n"));
  CHECK(record.info.at("kld_reference_states") == states(2, 0, 0));
  check_same_results(record, plain);
}
