// Bad input refused before any work, in one line naming the file or key and the fix: a tokenizer that does not fit
// its model, text that is not UTF-8 (or not a file), absurd sizes, and a sweep whose third point is bad (which
// must fail before its first point runs). Real files from the assets throughout.
#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <fstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/common/text.h"
#include "core/formats/result_file.h"
#include "core/model/memory.h"
#include "tests/assets.h"
#include "tests/support/serq_run.h"

using namespace serq;

namespace {

using test::CliOutput;

// kSmallRun with `line` added under `section:` (which must be in it or is appended).
std::string with_line(std::string yaml, const std::string& section, const std::string& line) {
  const std::size_t at = yaml.find(section + ":\n");
  if (at == std::string::npos) return yaml + section + ":\n  " + line + "\n";
  return yaml.insert(at + section.size() + 2, "  " + line + "\n");
}

// Runs `yaml` and checks that it is refused in one line with `words`, before any run started.
CliOutput check_refused(const std::string& name, const std::string& yaml, const std::vector<std::string>& words,
                        const std::string& extra_args = "") {
  const auto dir = test::scratch_dir(name);
  const auto config = test::write_config(dir, yaml);
  const CliOutput out =
      test::serq_run(config.string() + " --quiet --out " + (dir / "out").string() + extra_args, dir);
  test::check_one_line_error(out, words);
  CHECK(out.err.find("[1/") == std::string::npos);
  return out;
}

// The first bytes of the TinyStories text in the assets (real, plain ASCII text).
std::string real_text(std::size_t bytes) {
  return test::read_bytes(test::asset("data/text/tinystories/TinyStories-train.head2MiB.txt")).substr(0, bytes);
}


}  // namespace

TEST_CASE("a tokenizer that does not fit its model is refused with both sizes, the file and model.tokenizer") {
  const std::filesystem::path llama2 = test::asset("tokenizers/llama2/tokenizer.model");
  std::string stories = test::kSmallRun;
  stories = with_line(stories, "model", "tokenizer: " + llama2.string());
  check_refused("tokenizer_too_big", stories,
                {"model.tokenizer", llama2.string(), "32000 tokens", "512 embedding rows"});

  const std::filesystem::path tok512 = test::asset("models/stories260K/tok512.model");
  std::string smollm2 = test::kSmallRun;
  smollm2.replace(smollm2.find("${SERQ_ASSETS}/models/stories260K-hf"), 36,
                  "${SERQ_ASSETS}/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf");
  smollm2 = with_line(smollm2, "model", "tokenizer: " + tok512.string());
  check_refused("tokenizer_too_small", smollm2, {"model.tokenizer", tok512.string(), "512 tokens",
                                                 "49152 embedding rows"});
}

TEST_CASE("text that is not UTF-8 is refused at file:line:column, or read as U+FFFD with eval.invalid_utf8") {
  const auto dir = test::scratch_dir("invalid_utf8_files");
  std::string latin1 = real_text(20000);
  const std::size_t line3 = latin1.find('\n', latin1.find('\n') + 1) + 1;
  latin1.insert(line3 + 4, "caf\xE9 ");  // Latin-1 é on line 3, column 8
  std::ofstream(dir / "latin1.txt", std::ios::binary) << latin1;
  std::string yaml = test::kSmallRun;
  yaml.replace(yaml.find("dataset: tinystories-eval"), 25, "dataset: " + (dir / "latin1.txt").string());
  check_refused("invalid_utf8_latin1", yaml, {(dir / "latin1.txt").string() + ":3:8:", "byte 0xE9", "iconv",
                                              "eval.invalid_utf8: replace"});

  const auto replaced_dir = test::scratch_dir("invalid_utf8_replace");
  const auto config = test::write_config(replaced_dir, yaml);
  const CliOutput out = test::serq_run(config.string() + " --json --quiet --set eval.invalid_utf8=replace --out " +
                                           (replaced_dir / "out").string(), replaced_dir);
  INFO("stderr: " << out.err);
  REQUIRE(out.status == 0);
  const RunRecord record = read_run_record(nlohmann::json::parse(out.out)["result_file"].get<std::string>());
  CHECK(record.counts.at("eval_invalid_utf8_bytes") == 1);
  CHECK(record.config_yaml.find("invalid_utf8: \"replace\"") != std::string::npos);

  std::string utf16 = "\xFF\xFE";  // little-endian, with its byte-order mark
  for (const char c : real_text(4000)) utf16 += std::string{c, '\0'};
  std::ofstream(dir / "utf16.txt", std::ios::binary) << utf16;
  yaml = test::kSmallRun;
  yaml.replace(yaml.find("dataset: tinystories-eval"), 25, "dataset: " + (dir / "utf16.txt").string());
  check_refused("invalid_utf8_utf16", yaml, {(dir / "utf16.txt").string() + ":1:1:", "UTF-16"});

  yaml = test::kSmallRun;
  yaml.replace(yaml.find("dataset: tinystories-eval"), 25, "dataset: " + dir.string());
  check_refused("dataset_directory", yaml, {"eval.dataset", dir.string(), "is a directory"});
  yaml = test::kSmallRun;
  yaml.replace(yaml.find("dataset: tinystories-eval"), 25, "dataset: /dev/zero");
  check_refused("dataset_device", yaml, {"eval.dataset", "/dev/zero", "is a character device"});
}

TEST_CASE("UTF-8 by hand: well-formed sequences, maximal bad subparts, replacement", "[text]") {
  std::size_t bad = 0;
  CHECK(utf8_sequence("a", 0, &bad) == 1);
  CHECK(utf8_sequence("\xC3\xA9", 0, &bad) == 2);          // é
  CHECK(utf8_sequence("\xE2\x82\xAC", 0, &bad) == 3);      // €
  CHECK(utf8_sequence("\xF0\x9F\x98\x80", 0, &bad) == 4);  // U+1F600
  const std::vector<std::pair<std::string, std::size_t>> ill_formed = {
      {std::string(1, '\0'), 1},  // NUL: binary or UTF-16
      {"\xE9", 1},                // Latin-1 é
      {"\xC0\xAF", 1},            // overlong '/'
      {"\xE2\x82", 2},            // € cut short: one replacement for both bytes
      {"\xED\xA0\x80", 1},        // a UTF-16 surrogate
      {"\xF4\x90\x80\x80", 1},    // past U+10FFFF
      {"\xF0\x9F\x98", 3},        // U+1F600 cut short
      {"\x80", 1},                // a lone continuation byte
  };
  for (const auto& [bytes, subpart] : ill_formed) {
    INFO("bytes of length " << bytes.size());
    bad = 0;
    CHECK(utf8_sequence(bytes, 0, &bad) == 0);
    CHECK(bad == subpart);
  }
  std::int64_t replaced = 0;
  CHECK(checked_utf8("a\xE9" "b\xE2\x82" "c", "f.txt", InvalidUtf8::replace, "k", &replaced) ==
        "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c");
  CHECK(replaced == 3);
  CHECK_THROWS_WITH(checked_utf8("ok\nab\xE9", "f.txt", InvalidUtf8::error, "eval.invalid_utf8"),
                    Catch::StartsWith("f.txt:2:3: byte 0xE9 is not UTF-8 text"));
}

TEST_CASE("absurd sizes are refused before any work, naming the key") {
  std::string serq = test::kSmallRun;
  serq.replace(serq.find("method: rtn"), 11, "method: serq\n  rank: 8");
  check_refused("absurd_samples", serq + "calib:\n  samples: 100000\n  seq_len: 512\n",
                {"calib.samples", "100000 samples", "more than calib.dataset", "tinystories-calib"});
  check_refused("too_few_calibration_tokens", serq + "calib:\n  samples: 1\n  seq_len: 2\n",
                {"calib.samples", "2 tokens", "fewer than the 256"});
  check_refused("threads_past_int", std::string(test::kSmallRun) + "runtime:\n  threads: 99999999999\n",
                {"runtime.threads", "is above 2147483647"});
  const auto dir = test::scratch_dir("memory_short");
  const auto config = test::write_config(dir, serq + "calib:\n  samples: 128\n  seq_len: 512\n");
  const CliOutput out = test::serq_run(config.string() + " --quiet --out " + (dir / "out").string(), dir,
                                       "SERQ_MEMORY_LIMIT_MB=1");
  test::check_one_line_error(out, {"run serq", "needs ≈", "1.0 MiB is available", "lower calib.samples"});
  CHECK(out.err.find("[1/1]") == std::string::npos);

  const auto isa_dir = test::scratch_dir("unknown_cpu_isa");
  const CliOutput isa = test::serq_run(test::write_config(isa_dir, test::kSmallRun).string() + " --quiet --out " +
                                           (isa_dir / "out").string(), isa_dir, "SERQ_CPU_ISA=sse4");
  test::check_one_line_error(isa, {"SERQ_CPU_ISA=sse4", "expected avx2 or avx512"});
  CHECK(isa.err.find("[1/1]") == std::string::npos);
}

TEST_CASE("runtime.threads past the cores runs on the cores, says so once, and records the number used") {
  const auto dir = test::scratch_dir("threads_capped");
  const auto config = test::write_config(dir, test::kSmallRun + std::string("runtime:\n  threads: 100000\n"));
  const CliOutput out = test::serq_run(config.string() + " --json --quiet --out " + (dir / "out").string(), dir);
  INFO("stderr: " << out.err);
  REQUIRE(out.status == 0);
  CHECK(out.err.find("runtime.threads: 100000 is more than this machine's") != std::string::npos);
  const RunRecord record = read_run_record(nlohmann::json::parse(out.out)["result_file"].get<std::string>());
  CHECK(std::stoi(record.info.at("blas_threads")) <= static_cast<int>(std::thread::hardware_concurrency()));
}

TEST_CASE("an address-space limit counts as memory not available", "[memory]") {
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_AS, &saved) == 0);
  const std::int64_t before = available_memory_bytes();
  std::int64_t mapped = 0;
  std::ifstream status("/proc/self/status");
  for (std::string key; status >> key;) {
    if (key == "VmSize:") status >> mapped;
  }
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(mapped * 1024 + (64 << 20));  // 64 MiB past what is mapped now
  REQUIRE(setrlimit(RLIMIT_AS, &tight) == 0);
  const std::int64_t limited = available_memory_bytes();
  REQUIRE(setrlimit(RLIMIT_AS, &saved) == 0);
  CHECK(limited <= (64 << 20));
  CHECK(limited < before);
}

TEST_CASE("a sweep whose third point is bad is refused before its first point runs") {
  const auto dir = test::scratch_dir("sweep_third_bad_files");
  // A truncated copy of the stories260K checkpoint.
  const auto cut = dir / "stories260K-cut";
  std::filesystem::create_directories(cut);
  for (const char* file : {"config.json", "tokenizer.model"}) {
    std::filesystem::copy_file(test::asset(std::filesystem::path("models/stories260K-hf") / file), cut / file);
  }
  const std::string weights = test::read_bytes(test::asset("models/stories260K-hf/model.safetensors"));
  std::ofstream(cut / "model.safetensors", std::ios::binary) << weights.substr(0, weights.size() - 1000);
  check_refused("sweep_truncated_model", std::string(test::kSmallRun) + "sweep:\n  model.path:\n    - "
                "${SERQ_ASSETS}/models/stories260K-hf\n    - ${SERQ_ASSETS}/models/stories260K-hf-bf16\n    - " +
                cut.string() + "\n",
                {(cut / "model.safetensors").string(), "truncated"});

  std::ofstream(dir / "short.txt") << real_text(100);  // about 45 tokens
  std::string serq = test::kSmallRun;
  serq.replace(serq.find("method: rtn"), 11, "method: serq\n  rank: 8");
  check_refused("sweep_short_calibration", serq + "calib:\n  samples: 4\n  seq_len: 128\nsweep:\n  calib.dataset: "
                "[tinystories-calib, tinystories-eval, " + (dir / "short.txt").string() + "]\n",
                {"calib.seq_len", "128 tokens", "longer than calib.dataset", (dir / "short.txt").string()});

  serq.replace(serq.find("  rank: 8\n"), 10, "");
  check_refused("sweep_rank_too_big",
                serq + "calib:\n  samples: 4\n  seq_len: 128\nsweep:\n  quant.rank: [4, 8, 100]\n",
                {"quant.rank: 100", "exceeds 64", "stories260K-hf", "use quant.rank ≤ 64"});
}
