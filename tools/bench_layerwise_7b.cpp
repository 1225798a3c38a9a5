// Benchmark: the layer-wise pipeline at LLaMA-2-7B scale, on a checkpoint of that SHAPE with RANDOM BF16 weights
// (tools/make_random_llama.py). SERQ W4A4 (INT4 sym g128 weights, INT4 asym g128 activations as the paper config),
// r = 128, GPTQ weights, calib.sequential: full-precision activation statistics layer by layer, then each layer
// widened, prepared, observed, quantized, packed and released in turn; then perplexity on random-token windows (the
// number itself means nothing on random weights: the point is time and memory).
//
// It prints the time of each stage and of each decoder layer, and the process's peak resident memory (VmHWM) after
// each stage. Calibration and evaluation tokens are uniform random ids (seeded), since a random model has no
// tokenizer.
//
// usage: bench_layerwise_7b --model DIR [--samples 128] [--seq-len 2048] [--eval-windows 4] [--rank 128]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "core/calib/observers.h"
#include "core/common/build_info.h"
#include "core/common/error.h"
#include "core/common/splitmix64.h"
#include "core/eval/perplexity.h"
#include "core/model/fold.h"
#include "core/model/loader.h"
#include "methods/serq.h"
#include "methods/sequential.h"

namespace {

// VmHWM or VmRSS of this process, GiB.
double status_gib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string name;
  long kib = 0;
  std::string unit;
  while (in >> name) {
    if (name == key + ":") {
      in >> kib >> unit;
      return static_cast<double>(kib) / (1 << 20);
    }
    std::getline(in, unit);
  }
  return 0.0;
}

std::vector<std::vector<int>> random_tokens(int count, int length, int vocab, std::uint64_t seed) {
  std::vector<std::vector<int>> out(static_cast<std::size_t>(count), std::vector<int>(static_cast<std::size_t>(length)));
  serq::SplitMix64 rng(seed);
  for (auto& sample : out) {
    for (int& token : sample) token = static_cast<int>(rng.next() % static_cast<std::uint64_t>(vocab));
  }
  return out;
}

void stage(const char* what, double seconds) {
  std::printf("| %s | %.1f | %.2f | %.2f |\n", what, seconds, status_gib("VmRSS"),
              status_gib("VmHWM"));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  int samples = 128, seq_len = 2048, eval_windows = 4, rank = 128;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_layerwise_7b: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (arg == "--model") model_dir = value();
    else if (arg == "--samples") samples = std::stoi(value());
    else if (arg == "--seq-len") seq_len = std::stoi(value());
    else if (arg == "--eval-windows") eval_windows = std::stoi(value());
    else if (arg == "--rank") rank = std::stoi(value());
    else if (arg == "--help" || arg == "-h") {
      std::printf("usage: bench_layerwise_7b --model DIR [--samples 128] [--seq-len 2048] [--eval-windows 4] "
                  "[--rank 128]\n  DIR: a checkpoint written by tools/make_random_llama.py\n");
      return 0;
    } else {
      std::fprintf(stderr, "bench_layerwise_7b: unknown argument %s (see --help)\n", arg.c_str());
      return 2;
    }
  }
  if (model_dir.empty() || samples < 1 || seq_len < 1 || eval_windows < 1 || rank < 0) {
    std::fprintf(stderr, "bench_layerwise_7b: give --model DIR, and positive --samples/--seq-len/--eval-windows\n");
    return 2;
  }
  try {
    const serq::BuildInfo build = serq::build_info();
    std::printf("commit %s, %s, %s, %d BLAS threads\n", build.git_commit.c_str(), build.compiler.c_str(),
                build.blas.c_str(), build.blas_threads);
    std::printf("SERQ W4A4 r=%d GPTQ sequential, %d x %d calibration tokens, %d eval windows of %d\n\n", rank,
                samples, seq_len, eval_windows, seq_len);
    std::printf("| stage | seconds | RSS GiB | peak RSS GiB |\n|---|---|---|---|\n");
    auto start = std::chrono::steady_clock::now();
    auto lap = [&] {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      start = std::chrono::steady_clock::now();
      return s;
    };

    serq::Model model = serq::load_model(model_dir);
    stage("load (BF16 mapped, checked for NaN/Inf)", lap());

    const serq::Serq method;
    serq::QuantParams params;
    params.weight = {4, true, 128, serq::NumberFormat::integer, true};
    params.activation = {4, false, 128};
    params.weight_quantizer = serq::WeightQuantizerKind::gptq;
    params.rank = rank;
    params.release_floats = true;
    const auto calibration_samples = random_tokens(samples, seq_len, model.config.vocab_size, 1);
    serq::StatsRequest request;
    for (const serq::QuantLinear* layer : serq::layers_to_quantize(model, params)) request.layers.insert(layer->name);
    serq::Calibration stats;
    stats.stats = serq::collect_calibration_stats(model, calibration_samples, request);
    stage("activation statistics, full precision, layer by layer", lap());

    serq::Progress progress("quantize", static_cast<std::int64_t>(serq::layers_to_quantize(model, params).size()),
                            "linears");
    params.progress = &progress;
    const serq::MethodReport report = serq::quantize_sequential(model, method, params, stats, calibration_samples);
    progress.finish();
    stage("sequential GPTQ + SERQ, layer by layer", lap());
    serq::fold_input_transforms(model);

    const auto windows = random_tokens(eval_windows, seq_len, model.config.vocab_size, 2);
    std::vector<std::span<const int>> spans(windows.begin(), windows.end());
    const serq::PerplexityResult ppl = serq::evaluate_perplexity(model, spans, 1, "eval");
    stage("perplexity (stored form, dequantized per layer)", lap());

    std::printf("\n| layer | seconds |\n|---|---|\n");
    double total = 0.0;
    for (std::size_t i = 0; i < report.layer_seconds.size(); ++i) {
      std::printf("| %zu | %.1f |\n", i, report.layer_seconds[i]);
      total += report.layer_seconds[i];
    }
    std::printf("\nbits per weight %.3f over %lld weights; ppl %.1f on random weights (meaningless)\n",
                report.bits_per_weight, static_cast<long long>(report.quantized_weights), ppl.ppl);
    std::printf("mean %.1f s per layer; peak RSS %.2f GiB\n",
                total / static_cast<double>(std::max<std::size_t>(1, report.layer_seconds.size())),
                status_gib("VmHWM"));
  } catch (const serq::Error& e) {
    std::fprintf(stderr, "bench_layerwise_7b: %s\n", e.what());
    return 1;
  }
  return 0;
}
