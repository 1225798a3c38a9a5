// serq-run end to end: a real run writes its HDF5 record and JSON line; bad input fails with one clear line.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/backend/backend.h"
#include "core/backend/cpu/flash_attention.h"
#include "core/formats/result_file.h"
#include "tests/assets.h"
#include "tests/support/serq_run.h"

using namespace serq;

namespace {

using test::check_one_line_error;
using test::kSmallRun;
using test::serq_run;
using test::write_config;
using Output = test::CliOutput;

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
  // The ledger: weights once and the ids in; one nll row per scored token out (64 bytes a position at most).
  CHECK(json["host_to_backend_bytes"].get<std::int64_t>() > 4 * 511 * 4);
  CHECK(json["backend_to_host_bytes"].get<std::int64_t>() > 0);
  CHECK(json["backend_to_host_bytes"].get<std::int64_t>() <= 64 * 4 * 511);

  const RunRecord record = read_run_record(json["result_file"].get<std::string>());
  CHECK(record.experiment == "smoke");
  CHECK(record.metrics.at("ppl") == Approx(json["ppl"].get<double>()));
  CHECK(record.counts.at("tokens") == 4 * 511);
  CHECK(record.config_yaml.find("w_bits: 4") != std::string::npos);
  CHECK(record.config_yaml.find("stories260K-hf") != std::string::npos);
  CHECK(record.counts.at("host_to_backend_bytes") == json["host_to_backend_bytes"].get<std::int64_t>());
  CHECK(record.info.at("transfers").find("weights") != std::string::npos);
  for (const char* key : {"git_commit", "compiler", "blas", "backend", "bos_policy", "model_source"})
    CHECK(!record.info.at(key).empty());
  CHECK(out.err.find("ppl") != std::string::npos);  // the table went to stderr with --json
}

TEST_CASE("serq-run on SmolLM2's GGUF: its own tokenizer, no BOS, full windows only, recorded in the result file") {
  const auto dir = test::scratch_dir("serq_run_smollm2");
  const auto config = write_config(dir, R"(experiment:
  name: smollm2
model:
  path: ${SERQ_ASSETS}/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf
quant:
  method: serq
  group_size: 64
  rank: 8
calib:
  dataset: wikitext2-valid
  samples: 2
  seq_len: 128
  sampling: consecutive
eval:
  dataset: wikitext2
  seq_len: 128
  max_windows: 2
  layer_error_samples: 0
)");
  const Output out = serq_run(config.string() + " --json --quiet --out " + (dir / "results").string(), dir);
  INFO("stderr: " << out.err);
  REQUIRE(out.status == 0);
  const auto json = nlohmann::json::parse(out.out.substr(0, out.out.find('\n')));
  CHECK(json["tokens"] == 2 * 127);
  CHECK(json["ppl"].get<double>() > 1.0);
  const RunRecord record = read_run_record(json["result_file"].get<std::string>());
  CHECK(record.info.at("model_source").starts_with("gguf-v3 F32+Q4_1+Q8_0 "));
  CHECK(record.info.at("tokenizer").starts_with("byte-level BPE (49152 tokens, 48900 merges, 17 special, "
                                                "pre-tokenizer smollm, no BOS added) gguf "));
  CHECK(record.info.at("bos_policy").starts_with("no BOS (the tokenizer adds none)"));
  CHECK(record.info.at("window_convention") == "full windows only (GPTQ: numel // seq_len)");
  CHECK(record.config_yaml.find("sampling: \"consecutive\"") != std::string::npos);
}

TEST_CASE("serq-run: a tokenizer it cannot read fails in one line before any run starts") {
  const auto dir = test::scratch_dir("serq_run_bad_tokenizer");
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "Unigram", "vocab": []}})";
  std::string yaml = kSmallRun;
  const std::string path_line = "  path: ${SERQ_ASSETS}/models/stories260K-hf\n";
  yaml.insert(yaml.find(path_line) + path_line.size(), "  tokenizer: " + (dir / "tokenizer.json").string() + "\n");
  const auto config = write_config(dir, yaml);
  const Output out = serq_run(config.string() + " --out " + (dir / "results").string(), dir);
  check_one_line_error(out, {(dir / "tokenizer.json").string(), "model.type is 'Unigram'"});
  CHECK(out.err.find("[1/1]") == std::string::npos);
}

TEST_CASE("serq-run --dry-run lists every sweep point with a distinct run id") {
  const auto dir = test::scratch_dir("serq_run_dry");
  const Output out = serq_run(std::string(SERQ_SOURCE_DIR) + "/configs/w4a4_llama.yaml --dry-run", dir);
  REQUIRE(out.status == 0);
  std::istringstream lines(out.out);
  std::vector<std::string> ids;
  for (std::string line; std::getline(lines, line);) ids.push_back(line.substr(0, line.find(' ')));
  REQUIRE(ids.size() == 8);  // fp, rtn, smoothquant, l2qer, quarot, gptq, serq, serq (GPTQ)
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

TEST_CASE("serq-run: runtime.kernels int with activations in other groups than the weights is a one-line error") {
  const auto dir = test::scratch_dir("serq_run_int_groups");
  check_one_line_error(serq_run(write_config(dir, kSmallRun).string() +
                                    " --set runtime.kernels=int --set quant.a_group_size=16",
                                dir),
                       {"runtime.kernels", "same groups"});
}

TEST_CASE("serq-run: runtime.device reference runs every op in plain loops to the cpu backend's perplexity, and the "
          "result file records the backend and the kernel of each op") {
  const auto dir = test::scratch_dir("serq_run_devices");
  const auto config = write_config(dir, kSmallRun);
  std::map<std::string, RunRecord> records;
  for (const std::string device : {"cpu", "reference"}) {
    const Output out = serq_run(config.string() + " --set eval.max_windows=1 --set quant.method=fp" +
                                    " --set runtime.device=" + device + " --json --quiet --out " +
                                    (dir / device).string(),
                                dir);
    INFO("stderr: " << out.err);
    REQUIRE(out.status == 0);
    const auto json = nlohmann::json::parse(out.out.substr(0, out.out.find('\n')));
    records[device] = read_run_record(json["result_file"].get<std::string>());
    CHECK(records[device].info.at("backend") == device);
  }
  // In full precision the two differ by float rounding alone. (Quantized, an activation code that rounding moves
  // across a boundary compounds through the layers: 4e-4 of perplexity at W4A8 and 4e-3 at W4A4 on this window;
  // tests/test_backend_ops.cpp bounds each op.)
  CHECK(records["reference"].metrics.at("ppl") == Approx(records["cpu"].metrics.at("ppl")).epsilon(1e-6));
  const std::string cpu = records["cpu"].info.at("kernels"), reference = records["reference"].info.at("kernels");
  INFO(cpu << "\n" << reference);
  const std::string attention = std::string("attention: cpu-flash-") + flash_kernel_name(flash_kernel()) + " (5)";
  CHECK(cpu.find(attention) != std::string::npos);  // 5 layers, one window
  CHECK(cpu.find("quant_linear: cpu-sgemm (35)") != std::string::npos);  // 5 layers of 7
  CHECK(cpu.find("head_nll: cpu-sgemm-online-softmax (1)") != std::string::npos);  // lm_head and the NLL in one pass
  CHECK(reference.find("quant_linear: reference (36)") != std::string::npos);  // the reference runs the two ops
  CHECK(reference.find("nll: reference (1)") != std::string::npos);
  CHECK(reference.find("attention: reference (5)") != std::string::npos);
  CHECK(reference.find("cpu") == std::string::npos);
}

TEST_CASE("serq-run: runtime.device cuda: without a GPU, a one-line error before any run, and with runtime.strict "
          "false the cpu backend runs it and the result file says so — with one, it matches the cpu backend") {
  const auto dir = test::scratch_dir("serq_run_cuda");
  const auto config = write_config(dir, kSmallRun);
  const std::string run = config.string() + " --set eval.max_windows=1 --set quant.method=fp --json --quiet";
  bool gpu = false;
  for (const Backend* backend : backends()) gpu = gpu || (backend->name() == "cuda" && backend->unavailable().empty());
  const Output cpu = serq_run(run + " --out " + (dir / "cpu").string(), dir);
  REQUIRE(cpu.status == 0);
  const RunRecord on_cpu = read_run_record(
      nlohmann::json::parse(cpu.out.substr(0, cpu.out.find('\n')))["result_file"].get<std::string>());
  if (!gpu) {
    check_one_line_error(serq_run(run + " --set runtime.device=cuda", dir),
                         {"runtime.device", "cuda", "runtime.strict: false"});
  }
  const Output out =
      serq_run(run + " --set runtime.device=cuda --set runtime.strict=false --out " + (dir / "cuda").string(), dir);
  INFO("stderr: " << out.err);
  REQUIRE(out.status == 0);
  const RunRecord on_cuda = read_run_record(
      nlohmann::json::parse(out.out.substr(0, out.out.find('\n')))["result_file"].get<std::string>());
  const std::string backend = on_cuda.info.at("backend");
  CHECK(backend.rfind(gpu ? "cuda" : "cpu (fallback: cuda cannot run here", 0) == 0);
  CHECK(on_cuda.metrics.at("ppl") == Approx(on_cpu.metrics.at("ppl")).epsilon(gpu ? 1e-5 : 0.0));
}

TEST_CASE("serq-run: runtime.kernels int on the reference device is a one-line error before any run") {
  const auto dir = test::scratch_dir("serq_run_int_reference");
  check_one_line_error(serq_run(write_config(dir, kSmallRun).string() +
                                    " --set runtime.kernels=int --set runtime.device=reference", dir),
                       {"runtime.kernels", "runtime.device"});
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

TEST_CASE("serq-run with eval.kld and eval.tasks records KLD and zero-shot metrics in run.h5 and the JSON line") {
  const auto dir = test::scratch_dir("serq_run_eval_breadth");
  const auto config = write_config(dir, kSmallRun);
  const Output out = serq_run(config.string() + " --json --quiet --out " + (dir / "results").string() +
                                  " --set eval.kld=true --set eval.tasks=copa,lambada_openai --set eval.task_limit=12",
                              dir);
  INFO("stderr: " << out.err);
  REQUIRE(out.status == 0);
  const auto json = nlohmann::json::parse(out.out.substr(0, out.out.find('\n')));
  CHECK(json["kld"]["mean"].get<double>() > 0.0);
  CHECK(json["kld"]["top1_agreement"].get<double>() < 1.0);
  CHECK(json["tasks"]["copa"].contains("acc_stderr"));
  CHECK(!json["tasks"]["copa"].contains("acc_norm"));  // lm-eval reports acc only for COPA
  CHECK(json["tasks"]["lambada_openai"]["ppl"].get<double>() > 1.0);
  const RunRecord record = read_run_record(json["result_file"].get<std::string>());
  CHECK(record.counts.at("kld.positions") == 4 * 511);
  CHECK(record.counts.at("copa.items") == 12);
  CHECK(record.counts.at("lambada_openai.items") == 12);
  const double copa = record.metrics.at("copa.acc"), lambada = record.metrics.at("lambada_openai.acc");
  CHECK(record.metrics.at("zero_shot.avg") == Approx((copa + lambada) / 2));
  CHECK(record.metrics.at("copa.acc_stderr") == Approx(std::sqrt(copa * (1 - copa) * 12 / 11 / 12)));
  CHECK(record.info.at("zero_shot.bos_policy").find("BOS before every request") != std::string::npos);
  CHECK(record.info.at("copa.source").find("copa.jsonl") != std::string::npos);
  CHECK(out.err.find("KLD") != std::string::npos);  // the closing table has the columns
}

TEST_CASE("serq-run: an unknown zero-shot task is a one-line error naming the file, the key and the tasks") {
  const auto dir = test::scratch_dir("serq_run_unknown_task");
  std::string yaml = kSmallRun;
  yaml += "  tasks: piqa, mmlu\n";
  check_one_line_error(serq_run(write_config(dir, yaml).string(), dir),
                       {"config.yaml", "eval.tasks", "'mmlu'", "hellaswag"});
}

namespace {

// An assets directory with the real models and texts but only the task files the test writes.
std::filesystem::path assets_without_tasks(const std::filesystem::path& dir) {
  const auto assets = dir / "assets";
  std::filesystem::create_directories(assets / "data/tasks/llm-foundry");
  std::filesystem::create_directory_symlink(assets_root() / "models", assets / "models");
  std::filesystem::create_directory_symlink(assets_root() / "data/text", assets / "data/text");
  return assets;
}

}  // namespace

TEST_CASE("serq-run: a missing task file is a one-line error naming the file and eval.tasks") {
  const auto dir = test::scratch_dir("serq_run_no_task_file");
  const auto assets = assets_without_tasks(dir);
  check_one_line_error(serq_run(write_config(dir, kSmallRun).string() + " --quiet --set eval.tasks=copa", dir,
                                "SERQ_ASSETS=" + assets.string()),
                       {"eval.tasks", "copa", (assets / "data/tasks/llm-foundry/copa.jsonl").string()});
}

TEST_CASE("serq-run: a malformed task line stops the run with file:line, or is skipped with eval.bad_lines: skip") {
  const auto dir = test::scratch_dir("serq_run_bad_task_line");
  const auto assets = assets_without_tasks(dir);
  const auto copa = assets / "data/tasks/llm-foundry/copa.jsonl";
  std::string lines = test::read_bytes(test::asset("data/tasks/llm-foundry/copa.jsonl"));
  lines.insert(lines.find('\n') + 1, "{\"query\": \"cut off\n");  // line 2 is not JSON
  test::write_bytes(copa, lines);
  const std::string env = "SERQ_ASSETS=" + assets.string();
  const std::string run = write_config(dir, kSmallRun).string() + " --quiet --out " + (dir / "results").string() +
                          " --set eval.tasks=copa --set eval.task_limit=5";
  check_one_line_error(serq_run(run, dir, env), {copa.string() + ":2", "eval.bad_lines"});

  const Output skipped = serq_run(run + " --json --set eval.bad_lines=skip", dir, env);
  INFO("stderr: " << skipped.err);
  REQUIRE(skipped.status == 0);
  const auto json = nlohmann::json::parse(skipped.out.substr(0, skipped.out.find('\n')));
  const RunRecord record = read_run_record(json["result_file"].get<std::string>());
  CHECK(record.counts.at("copa.items") == 5);
  CHECK(record.info.at("copa.skipped_lines") == "1");
  CHECK(skipped.err.find(copa.string() + ": skipped 1 malformed line") != std::string::npos);
}

TEST_CASE("serq-run calib.sequential: GPTQ calibrates layer by layer by default, in one pass when false, and says "
          "which in the result file") {
  const auto dir = test::scratch_dir("serq_run_sequential");
  const auto config = write_config(dir, std::string(kSmallRun) + R"(calib:
  dataset: tinystories-calib
  samples: 8
  seq_len: 128
sweep:
  quant.weight_quantizer: [rtn, gptq]
  calib.sequential: [true, false]
)");
  const Output out = serq_run(config.string() + " --json --quiet --out " + (dir / "results").string(), dir);
  INFO("stderr: " << out.err);
  REQUIRE(out.status == 0);
  std::map<std::pair<std::string, bool>, double> ppl;
  std::istringstream lines(out.out);
  for (std::string line; std::getline(lines, line);) {
    const auto json = nlohmann::json::parse(line);
    const RunRecord record = read_run_record(json["result_file"].get<std::string>());
    const bool sequential = record.config_yaml.find("sequential: true") != std::string::npos;
    const std::string quantizer = record.config_yaml.find("weight_quantizer: \"gptq\"") != std::string::npos ? "gptq"
                                                                                                           : "rtn";
    const std::string& protocol = record.info.at("calibration_protocol");
    INFO(quantizer << " sequential " << sequential << ": " << protocol);
    CHECK(protocol.starts_with(sequential && quantizer == "gptq" ? "sequential: " : "one-pass: "));
    CHECK(json["label"] == (quantizer == "rtn" ? "rtn w4a4 g32" : sequential ? "rtn w4a4 g32 gptq"
                                                                             : "rtn w4a4 g32 gptq one-pass"));
    ppl[{quantizer, sequential}] = json["ppl"].get<double>();
  }
  REQUIRE(ppl.size() == 4);
  CHECK(ppl.at({"rtn", true}) == ppl.at({"rtn", false}));    // RTN reads no Hessian: nothing to observe
  CHECK(ppl.at({"gptq", true}) != ppl.at({"gptq", false}));  // layer 1 on sees a quantized layer 0
  CHECK(ppl.at({"gptq", true}) < ppl.at({"rtn", true}));
}

TEST_CASE("serq-run --dry-run of a paper config prints each run's memory estimate from config.json alone") {
  const auto dir = test::scratch_dir("serq_run_dry_memory");
  const auto models = dir / "models";
  std::filesystem::create_directories(models / "Llama-2-7b-hf");
  // LLaMA-2-7B's config.json: no weights are needed for the estimate.
  test::write_bytes(models / "Llama-2-7b-hf" / "config.json", R"({"model_type": "llama", "hidden_size": 4096,
      "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
      "vocab_size": 32000, "rms_norm_eps": 1e-5, "max_position_embeddings": 4096, "tie_word_embeddings": false,
      "torch_dtype": "float16"})");
  const Output out = serq_run(std::string(SERQ_SOURCE_DIR) + "/configs/paper/llama2_7b_w4a4.yaml --dry-run", dir,
                              "SERQ_MODELS=" + models.string());
  INFO("stdout: " << out.out << "\nstderr: " << out.err);
  REQUIRE(out.status == 0);
  std::istringstream lines(out.out);
  int runs = 0;
  for (std::string line; std::getline(lines, line); ++runs) {
    // F16 linears are read in place: held are the float32 embedding and norms (0.5 GiB), and once more in the FP
    // copy for KL divergence. Quantized: 6.48 B linear weights at 4 + 16/128 bits (3.1 GiB) and one layer's floats
    // (202 M, 0.8 GiB).
    CHECK(line.find("memory ≈ ") != std::string::npos);
    CHECK(line.find("model as stored 0.5, ") != std::string::npos);
    CHECK(line.find("FP copy for eval.kld 0.5, ") != std::string::npos);
    if (line.find(" fp ") == std::string::npos && line.find("fp-") == std::string::npos) {
      CHECK(line.find("quantized weights 3.1, one layer's floats 0.8, ") != std::string::npos);
    }
    // Layer-wise GPTQ: 128 × 2048 hidden states of 4096 floats (4.0 GiB) and two 11008² Hessians in double (1.8).
    if (line.find("gptq") != std::string::npos) CHECK(line.find("layer-wise calibration 5.8") != std::string::npos);
  }
  CHECK(runs >= 5);
  CHECK(out.err.find("memory available to this process") != std::string::npos);
}

TEST_CASE("serq-run holds quantized weights as floats when they fit, evaluates from the packed form when they do not, "
          "with the same perplexity, and says which") {
  const auto dir = test::scratch_dir("serq_run_packed_eval");
  const auto config = write_config(dir, kSmallRun);
  std::map<std::string, double> ppl;
  // stories' quantized linears are 0.9 MB of floats, more than a quarter of 3 MiB; windows of 128 tokens fit.
  for (const std::string env : {"", "SERQ_MEMORY_LIMIT_MB=3"}) {
    const auto out_dir = dir / (env.empty() ? "roomy" : "tight");
    const std::string args = " --json --quiet --set eval.batch_size=1 --set eval.seq_len=128 --out ";
    const Output out = serq_run(config.string() + args + out_dir.string(), dir, env);
    INFO(env << " stderr: " << out.err);
    REQUIRE(out.status == 0);
    const auto json = nlohmann::json::parse(out.out);
    const RunRecord record = read_run_record(json["result_file"].get<std::string>());
    const std::string& held = record.info.at("weights_in_evaluation");
    CHECK(held.starts_with(env.empty() ? "float32 (dequantized once" : "stored form (dequantized per layer"));
    ppl[held] = json["ppl"].get<double>();
  }
  REQUIRE(ppl.size() == 2);
  CHECK(ppl.begin()->second == std::next(ppl.begin())->second);
}
