// Benchmark: calibration and quantization time of every method, and its fake-quant prefill time relative to full
// precision, on stories260K (real weights, TinyStories calibration) or on one LLaMA-2-7B-shaped decoder layer
// (hidden 4096, FFN 11008, 32 heads; RANDOM weights and random-token calibration). Prefill times are medians,
// each method's timed in alternation with fp32's so that machine load cancels in the ratio.
//
// usage: bench_methods [--model stories|7b-layer] [--repeats N] [--tokens T] [--methods a,b,...] [--rank R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/common/build_info.h"
#include "tools/bench_support.h"
#include "core/common/error.h"
#include "core/common/paths.h"
#include "core/common/progress.h"
#include "core/data/token_stream.h"
#include "core/model/fold.h"
#include "core/model/forward.h"
#include "core/model/loader.h"
#include "core/tokenizer/tokenizer.h"
#include "experiments/calibrate.h"
#include "methods/registry.h"

namespace {

struct Options {
  std::string model = "stories";
  int repeats = 3;
  int tokens = 2048;
  int rank = 0;  // 0: 16 for stories260K, 128 for the 7B-shaped layer
  std::vector<std::string> methods = {"rtn", "smoothquant", "lorc", "lqer", "l2qer", "quarot", "gptq", "serq"};
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) serq::fail("bench_methods: {} needs a value (see --help)", arg);
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: bench_methods [--model stories|7b-layer] [--repeats N] [--tokens T] [--methods a,b] "
                  "[--rank R]\nCalibration and quantization time per method, and W4A4 g32/g128 fake-quant prefill "
                  "time relative to fp32 (medians of N runs).\n");
      std::exit(0);
    } else if (arg == "--model") {
      o.model = value();
    } else if (arg == "--repeats") {
      o.repeats = std::stoi(value());
    } else if (arg == "--tokens") {
      o.tokens = std::stoi(value());
    } else if (arg == "--rank") {
      o.rank = std::stoi(value());
    } else if (arg == "--methods") {
      o.methods.clear();
      std::stringstream list(value());
      for (std::string name; std::getline(list, name, ',');) o.methods.push_back(name);
    } else {
      serq::fail("bench_methods: unknown argument {} (see --help)", arg);
    }
  }
  SERQ_CHECK(o.model == "stories" || o.model == "7b-layer", "bench_methods: --model {} is not stories or 7b-layer",
             o.model);
  return o;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options options = parse(argc, argv);
  const bool stories = options.model == "stories";
  serq::Model pristine = stories ? serq::load_model(serq::assets_root() / "models/stories260K-hf")
                                 : serq::bench::seven_b_shaped_layer(options.tokens);
  serq::TokenStream calib_stream;
  if (stories) {
    const serq::Tokenizer tokenizer = serq::Tokenizer::load(serq::assets_root() / "models/stories260K/tok512.model");
    calib_stream = serq::load_dataset("tinystories-calib", tokenizer, pristine.config.bos_id, serq::assets_root());
  } else {
    calib_stream = serq::bench::random_tokens(pristine.config.vocab_size, 64 * 512);
  }
  const serq::CalibrationSettings calib{stories ? 128 : 16, 512, 0};
  const int group = stories ? 32 : 128;

  serq::QuantParams params;
  params.weight = {4, true, group};
  params.activation = {4, false, group};
  params.rank = options.rank > 0 ? options.rank : (stories ? 16 : 128);

  // Prefill input: a batch of 8 × 512 stories tokens through the whole model, or T tokens through the one layer.
  const int batch = stories ? 8 : 1, seq = stories ? 512 : options.tokens;
  std::vector<int> tokens(static_cast<std::size_t>(batch) * seq);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = calib_stream.tokens[i % calib_stream.tokens.size()];
  auto prefill = [&](const serq::Model& model) { serq::forward_hidden(model, tokens, batch, seq); };

  const serq::BuildInfo info = serq::build_info();
  std::printf("bench_methods: %s, W4A4 g%d (a asym), rank %d, calibration %d × %d tokens; prefill %d × %d tokens, "
              "median of %d\n", stories ? "stories260K-hf" : "LLaMA-2-7B-shaped layer (RANDOM weights)", group,
              params.rank, calib.samples, calib.seq_len, batch, seq, options.repeats);
  std::printf("BLAS: %s, %d threads; commit %s; %s\n", info.blas.c_str(), info.blas_threads, info.git_commit.c_str(),
              info.compiler.c_str());
  std::printf("| method | calibration s | quantization s | fp32 prefill s | prefill s | prefill vs fp32 |\n"
              "|---|---|---|---|---|---|\n");
  serq::Progress::set_enabled(false);
  for (const std::string& name : options.methods) {
    const auto method = serq::make_method(name);
    serq::QuantParams run = params;
    if (method->requires_gptq()) run.weight_quantizer = serq::WeightQuantizerKind::gptq;
    serq::Model model = pristine;
    const serq::Calibration calibration = serq::calibrate(model, *method, run, calib_stream, calib);
    const serq::MethodReport report = method->quantize(model, run, calibration);
    serq::fold_input_transforms(model);  // the runtime form serq-run evaluates
    const serq::bench::PairedMedians prefill_seconds = serq::bench::paired_median_seconds(
        options.repeats, [&] { prefill(pristine); }, [&] { prefill(model); });
    std::printf("| %s | %.2f | %.2f | %.3f | %.3f | %.2f× |\n", name.c_str(), calibration.seconds,
                report.quantize_seconds, prefill_seconds.baseline, prefill_seconds.candidate,
                prefill_seconds.candidate / prefill_seconds.baseline);
    std::fflush(stdout);
  }
  return 0;
} catch (const serq::Error& e) {
  std::fprintf(stderr, "bench_methods: error: %s\n", e.what());
  return 1;
}
