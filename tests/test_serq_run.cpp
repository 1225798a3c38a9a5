// serq-run end to end: a real run writes its HDF5 record and JSON line; bad input fails with one clear line.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/io/result_file.h"
#include "tests/assets.h"

using namespace serq;

namespace {

struct Output {
  int status;
  std::string out, err;
};

// Runs serq-run with the arguments (a shell fragment), capturing stdout and stderr.
Output serq_run(const std::string& args, const std::filesystem::path& dir) {
  const auto out_file = dir / "stdout.txt", err_file = dir / "stderr.txt";
  const std::string command = std::string(SERQ_BINARY_DIR) + "/serq-run " + args + " >" + out_file.string() + " 2>" +
                              err_file.string();
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, test::read_bytes(out_file), test::read_bytes(err_file)};
}

std::filesystem::path write_config(const std::filesystem::path& dir, const std::string& yaml) {
  const auto path = dir / "config.yaml";
  std::ofstream(path) << yaml;
  return path;
}

const char* kSmallRun = R"(experiment:
  name: smoke
model:
  path: ${SERQ_ASSETS}/models/stories260K-hf
quant:
  method: rtn
  w_bits: 4
  a_bits: 4
  group_size: 32
eval:
  dataset: tinystories-eval
  max_windows: 4
)";

// The error is one line on stderr, mentions every fragment, and the exit status is non-zero.
void check_one_line_error(const Output& out, const std::vector<std::string>& fragments) {
  INFO("stderr: " << out.err);
  CHECK(out.status != 0);
  CHECK(std::count(out.err.begin(), out.err.end(), '\n') == 1);
  for (const auto& f : fragments) CHECK(out.err.find(f) != std::string::npos);
}

}  // namespace

TEST_CASE("serq-run writes an HDF5 record with the resolved config and provenance, and a JSON line") {
  const auto dir = test::scratch_dir("serq_run_smoke");
  const auto config = write_config(dir, kSmallRun);
  const Output out = serq_run(config.string() + " --json --quiet --out " + (dir / "results").string(), dir);
  INFO("stderr: " << out.err);
  REQUIRE(out.status == 0);
  const auto json = nlohmann::json::parse(out.out.substr(0, out.out.find('\n')));
  CHECK(json["method"] == "rtn");
  CHECK(json["w_bits"] == 4);
  CHECK(json["a_bits"] == 4);
  CHECK(json["group_size"] == "32");
  CHECK(json["dataset"] == "tinystories-eval");
  CHECK(json["tokens"] == 4 * 511);
  CHECK(json["ppl"].get<double>() > 4.0);
  CHECK(json["seconds"].get<double>() > 0.0);

  const RunRecord record = read_run_record(json["result_file"].get<std::string>());
  CHECK(record.experiment == "smoke");
  CHECK(record.metrics.at("ppl") == Approx(json["ppl"].get<double>()));
  CHECK(record.counts.at("tokens") == 4 * 511);
  CHECK(record.config_yaml.find("w_bits: 4") != std::string::npos);
  CHECK(record.config_yaml.find("stories260K-hf") != std::string::npos);
  for (const char* key : {"git_commit", "compiler", "blas", "backend", "bos_policy", "model_source"})
    CHECK(!record.info.at(key).empty());
  CHECK(out.err.find("ppl") != std::string::npos);  // the table went to stderr with --json
}

TEST_CASE("serq-run --dry-run lists every sweep point with a distinct run id") {
  const auto dir = test::scratch_dir("serq_run_dry");
  const Output out = serq_run(std::string(SERQ_SOURCE_DIR) + "/configs/w4a4_llama.yaml --dry-run", dir);
  REQUIRE(out.status == 0);
  std::istringstream lines(out.out);
  std::vector<std::string> ids;
  for (std::string line; std::getline(lines, line);) ids.push_back(line.substr(0, line.find(' ')));
  REQUIRE(ids.size() == 6);  // fp, rtn, smoothquant, l2qer, quarot, serq
  CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == ids.size());
}

TEST_CASE("serq-run --help describes the options and the config keys") {
  const Output out = serq_run("--help", test::scratch_dir("serq_run_help"));
  CHECK(out.status == 0);
  CHECK(out.out.find("--set KEY=VALUE") != std::string::npos);
  CHECK(out.out.find("quant.group_size") != std::string::npos);
}

TEST_CASE("serq-run: an unknown YAML key is a one-line error naming the key") {
  const auto dir = test::scratch_dir("serq_run_unknown_key");
  std::string yaml = kSmallRun;
  yaml.replace(yaml.find("  w_bits: 4"), 11, "  w_bitz: 4");
  check_one_line_error(serq_run(write_config(dir, yaml).string(), dir), {"quant.w_bitz", "config.yaml"});
}

TEST_CASE("serq-run: a value of the wrong type is a one-line error naming the key") {
  const auto dir = test::scratch_dir("serq_run_wrong_type");
  std::string yaml = kSmallRun;
  yaml.replace(yaml.find("  a_bits: 4"), 11, "  a_bits: four");
  check_one_line_error(serq_run(write_config(dir, yaml).string(), dir), {"quant.a_bits"});
}

TEST_CASE("serq-run: a group size below 1 is a one-line error") {
  const auto dir = test::scratch_dir("serq_run_group0");
  check_one_line_error(serq_run(write_config(dir, kSmallRun).string() + " --set quant.group_size=0", dir),
                       {"quant.group_size"});
}

TEST_CASE("serq-run: a missing model path is a one-line error") {
  const auto dir = test::scratch_dir("serq_run_no_model");
  check_one_line_error(serq_run(write_config(dir, kSmallRun).string() + " --set model.path=/nonexistent/llama", dir),
                       {"model.path", "/nonexistent/llama"});
}

TEST_CASE("serq-run: a missing evaluation text file is a one-line error") {
  const auto dir = test::scratch_dir("serq_run_no_text");
  check_one_line_error(serq_run(write_config(dir, kSmallRun).string() + " --set eval.dataset=/nonexistent/text.txt", dir),
                       {"eval.dataset", "/nonexistent/text.txt"});
}

TEST_CASE("serq-run: a missing config file is a one-line error") {
  const auto dir = test::scratch_dir("serq_run_no_config");
  check_one_line_error(serq_run((dir / "absent.yaml").string(), dir), {"absent.yaml"});
}
