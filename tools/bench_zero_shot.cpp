// Benchmark: zero-shot scoring of SmolLM2-135M with shared contexts (each context once, the choices over its KV cache;
// core/eval/shared_context.h) against every request's whole input (lm-eval's way, the baseline), timed in alternation
// (paired medians) on the first N items of HellaSwag and BoolQ, in fp32 and RTN W4A4 g64. Prints both accuracies,
// which must agree, and the backend's per-op profile of one more fp32 run of each way.
//
// usage: bench_zero_shot [--items N] [--repeats N] [--batch-size N]
#include <cstdio>
#include <string>

#include "core/common/build_info.h"
#include "core/common/error.h"
#include "core/common/paths.h"
#include "core/common/progress.h"
#include "core/data/tasks.h"
#include "core/eval/zero_shot.h"
#include "core/model/loader.h"
#include "core/tokenizer/tokenizer.h"
#include "methods/registry.h"
#include "tools/bench_support.h"

namespace {

constexpr const char* kModel = "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf";

}  // namespace

int main(int argc, char** argv) try {
  int items = 100, repeats = 3, batch_size = 8;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: bench_zero_shot [--items N] [--repeats N] [--batch-size N]\nZero-shot HellaSwag and BoolQ on "
                  "SmolLM2-135M (first N items, default 100): shared contexts against whole inputs per request, paired "
                  "medians of N runs (default 3), fp32 and RTN W4A4 g64, eval.batch_size N (default 8).\n");
      return 0;
    }
    SERQ_CHECK(i + 1 < argc && (arg == "--items" || arg == "--repeats" || arg == "--batch-size"),
               "bench_zero_shot: unknown argument {} (see --help)", arg);
    (arg == "--items" ? items : arg == "--repeats" ? repeats : batch_size) = std::stoi(argv[++i]);
  }
  serq::Progress::set_enabled(false);
  const std::filesystem::path path = serq::assets_root() / kModel;
  const serq::Model fp = serq::load_model(path);
  const serq::Tokenizer tokenizer = serq::Tokenizer::load(path);
  serq::Model w4a4 = fp;
  serq::QuantParams params;
  params.weight = {4, true, 64};
  params.activation = {4, false, 64};
  serq::make_method("rtn")->quantize(w4a4, params, serq::Calibration{});

  const serq::BuildInfo info = serq::build_info();
  std::printf("bench_zero_shot: SmolLM2-135M, first %d items, batch size %d, paired medians of %d runs\n", items,
              batch_size, repeats);
  std::printf("BLAS: %s, %d threads; commit %s; %s\n", info.blas.c_str(), info.blas_threads, info.git_commit.c_str(),
              info.compiler.c_str());
  std::printf("| task | model | whole inputs s | shared contexts s | speedup | acc (whole / shared) | acc_norm |\n"
              "|---|---|---|---|---|---|---|\n");
  std::string profiles;
  for (const char* name : {"hellaswag", "boolq"}) {
    const serq::Task task = serq::load_task(name, serq::assets_root(), serq::BadLinePolicy::error, items);
    const std::pair<const char*, const serq::Model*> models[] = {{"fp32", &fp}, {"RTN W4A4 g64", &w4a4}};
    for (const auto& [label, model] : models) {
      serq::TaskResult whole, shared;
      const serq::bench::PairedMedians seconds = serq::bench::paired_median_seconds(
          repeats,
          [&] {
            whole = serq::evaluate_task(*model, tokenizer, task, {.batch_size = batch_size, .share_contexts = false});
          },
          [&] { shared = serq::evaluate_task(*model, tokenizer, task, {.batch_size = batch_size}); });
      std::printf("| %s | %s | %.2f | %.2f | %.2f× | %.4f / %.4f | %.4f / %.4f |\n", name, label, seconds.baseline,
                  seconds.candidate, seconds.baseline / seconds.candidate, whole.acc, shared.acc,
                  whole.acc_norm.value_or(0.0), shared.acc_norm.value_or(0.0));
    }
    for (const bool share : {false, true}) {
      fp.backend->kernels().clear();
      serq::evaluate_task(fp, tokenizer, task, {.batch_size = batch_size, .share_contexts = share});
      profiles += std::string("\nprofile, ") + name + " fp32, " + (share ? "shared contexts" : "whole inputs") +
                  ":\n```\n" + fp.backend->kernels().profile() + "```\n";
    }
  }
  std::printf("%s", profiles.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_zero_shot: %s\n", e.what());
  return 1;
}
