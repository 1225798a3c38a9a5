// Benchmark: SmolLM2-135M WikiText-2 evaluation throughput (the perplexity pass serq-run runs: forward, lm_head and
// log-softmax) in full precision and with RTN W4A4 g64, fake-quantized in float and on the integer kernel
// (runtime.kernels: int), beside OpenBLAS SGEMM in the same run. Model FLOPs per token: 2·(linear weights + lm_head)
// plus the causal attention 2·L·d·(T+1). Each W4A4 evaluation is timed in alternation with fp32's (fp, w4a4, fp,
// ...) and the medians compared, so machine load cancels in the ratio. A last evaluation of each prints the
// backend's per-op profile (core/backend/backend.h): where the time goes.
//
// usage: bench_smollm2_eval [--windows N] [--repeats N]
#include <cblas.h>

#include <cstdio>
#include <utility>
#include <vector>
#include <string>

#include "core/backend/cpu/int_gemm.h"
#include "core/common/build_info.h"
#include "core/common/error.h"
#include "core/common/paths.h"
#include "core/common/progress.h"
#include "core/data/windows.h"
#include "core/eval/perplexity.h"
#include "core/model/fold.h"
#include "core/model/loader.h"
#include "core/tokenizer/tokenizer.h"
#include "methods/registry.h"
#include "tools/bench_support.h"

namespace {

constexpr const char* kModel = "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf";
constexpr int kSeq = 2048;

// FLOPs of one evaluated token averaged over a window of T positions.
double flops_per_token(const serq::ModelConfig& c, int seq) {
  const double d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), layers = c.n_layers;
  const double linear = layers * (2 * d * d + 2 * d * kv + 3 * d * h) + d * c.vocab_size;
  return 2 * linear + 2 * layers * d * (seq + 1);
}

}  // namespace

int main(int argc, char** argv) try {
  int windows = 2, repeats = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: bench_smollm2_eval [--windows N] [--repeats N]\nSmolLM2-135M WikiText-2 evaluation "
                  "(N windows of 2048) in fp32 and RTN W4A4 g64, fake-quantized and on the integer kernel, tokens/s "
                  "and share of the OpenBLAS SGEMM rate measured in the same run (medians of N runs).\n");
      return 0;
    }
    SERQ_CHECK(i + 1 < argc && (arg == "--windows" || arg == "--repeats"),
               "bench_smollm2_eval: unknown argument {} (see --help)", arg);
    (arg == "--windows" ? windows : repeats) = std::stoi(argv[++i]);
  }
  serq::Progress::set_enabled(false);
  const std::filesystem::path path = serq::assets_root() / kModel;
  const serq::Model fp = serq::load_model(path);
  const serq::Tokenizer tokenizer = serq::Tokenizer::load(path);
  const serq::TokenStream stream = serq::load_dataset("wikitext2", tokenizer, std::nullopt, serq::assets_root());
  const auto eval = serq::eval_windows(stream, kSeq, windows);

  serq::Model w4a4 = fp;
  serq::QuantParams params;
  params.weight = {4, true, 64};
  params.activation = {4, false, 64};
  serq::make_method("rtn")->quantize(w4a4, params, serq::Calibration{});
  serq::fold_input_transforms(w4a4);
  serq::Model w4a4_int = w4a4;
  for (serq::QuantLinear* layer : w4a4_int.linears()) {
    if (layer->int_kernel_applies()) layer->use_int_kernel();
  }

  // SGEMM rates in the same run: the peak (a large square product) and the model's FFN shape at the window's token
  // count, (2048 × 576)·(1536 × 576)ᵀ, whose short K = 576 keeps OpenBLAS below its peak.
  auto sgemm = [&](int m, int n, int k) {
    serq::Matrix a = serq::Matrix::Random(m, k), b = serq::Matrix::Random(n, k), c(m, n);
    const double seconds = serq::bench::median_seconds(2 * repeats + 1, [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(),
                  n);
    });
    return std::pair{seconds, 2.0 * m * n * k / seconds / 1e9};
  };
  const auto [peak_seconds, sgemm_rate] = sgemm(kSeq, kSeq, kSeq);
  const auto [ffn_seconds, ffn_rate] = sgemm(kSeq, fp.config.hidden_dim, fp.config.dim);

  double fp_ppl = 0, q_ppl = 0, int_ppl = 0;
  const serq::bench::PairedMedians seconds = serq::bench::paired_median_seconds(
      repeats, [&] { fp_ppl = serq::evaluate_perplexity(fp, eval, 1).ppl; },
      [&] { q_ppl = serq::evaluate_perplexity(w4a4, eval, 1).ppl; });
  const serq::bench::PairedMedians int_seconds = serq::bench::paired_median_seconds(
      repeats, [&] { fp_ppl = serq::evaluate_perplexity(fp, eval, 1).ppl; },
      [&] { int_ppl = serq::evaluate_perplexity(w4a4_int, eval, 1).ppl; });
  const double tokens = static_cast<double>(eval.size()) * kSeq;
  const double gflop = flops_per_token(fp.config, kSeq) * tokens / 1e9;

  const serq::BuildInfo info = serq::build_info();
  std::printf("bench_smollm2_eval: SmolLM2-135M (%s), WikiText-2, %zu windows of %d, median of %d paired runs\n",
              fp.source.c_str(), eval.size(), kSeq, repeats);
  std::printf("BLAS: %s, %d threads; commit %s; %s\n", info.blas.c_str(), info.blas_threads, info.git_commit.c_str(),
              info.compiler.c_str());
  std::printf("model FLOPs per token: %.1f M\n", flops_per_token(fp.config, kSeq) / 1e6);
  std::printf("| what | seconds | tokens/s | GFLOP/s | vs SGEMM | ppl |\n|---|---|---|---|---|---|\n");
  std::printf("| OpenBLAS SGEMM %dx%dx%d (peak) | %.4f | | %.1f | 100%% | |\n", kSeq, kSeq, kSeq, peak_seconds,
              sgemm_rate);
  std::printf("| OpenBLAS SGEMM %dx%dx%d (the FFN's shape) | %.4f | | %.1f | %.1f%% | |\n", kSeq,
              fp.config.hidden_dim, fp.config.dim, ffn_seconds, ffn_rate, 100.0 * ffn_rate / sgemm_rate);
  auto row = [&](const char* what, double s, double ppl) {
    std::printf("| %s | %.2f | %.0f | %.1f | %.1f%% | %.4f |\n", what, s, tokens / s, gflop / s,
                100.0 * gflop / s / sgemm_rate, ppl);
  };
  row("evaluation, fp32", seconds.baseline, fp_ppl);
  row("evaluation, RTN W4A4 g64 (fake quantization)", seconds.candidate, q_ppl);
  row("evaluation, fp32 (paired with the next row)", int_seconds.baseline, fp_ppl);
  const std::string int_row =
      std::string("evaluation, RTN W4A4 g64 (integer kernel, ") + serq::int_kernel_name(serq::int_gemm_kernel()) + ")";
  row(int_row.c_str(), int_seconds.candidate, int_ppl);
  std::printf("W4A4 fake-quant / fp32 time: %.2f×; integer kernel / fp32 time: %.2f× (fp32 is %.2f× the integer "
              "kernel's time)\n", seconds.candidate / seconds.baseline, int_seconds.candidate / int_seconds.baseline,
              int_seconds.baseline / int_seconds.candidate);
  // Where the time goes: one more evaluation of each, with the backend's per-op record.
  const std::vector<std::pair<const char*, const serq::Model*>> profiled = {
      {"fp32", &fp}, {"RTN W4A4 g64, fake quantization", &w4a4}, {"RTN W4A4 g64, integer kernel", &w4a4_int}};
  for (const auto& [what, model] : profiled) {
    model->backend->kernels().clear();
    serq::evaluate_perplexity(*model, eval, 1);
    std::printf("\nprofile, %s:\n```\n%s```\n", what, model->backend->kernels().profile().c_str());
  }
  return 0;
} catch (const serq::Error& e) {
  std::fprintf(stderr, "bench_smollm2_eval: error: %s\n", e.what());
  return 1;
}
