// Benchmark: prefill of one LLaMA-2-7B-shaped decoder layer (hidden 4096, FFN 11008, 32 heads; RANDOM weights)
// on T tokens, in GFLOP/s, beside OpenBLAS SGEMM GFLOP/s measured in the same run on the layer's largest GEMM
// shape, and the same layer with RTN W4A4 fake quantization. Prints medians of repeated runs.
//
// usage: bench_decoder_layer [--tokens T] [--repeats N]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/common/build_info.h"
#include "tools/bench_support.h"
#include "core/model/forward.h"
#include "methods/rtn.h"

namespace {

using serq::bench::median_seconds;


}  // namespace

int main(int argc, char** argv) {
  int tokens = 2048, repeats = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: bench_decoder_layer [--tokens T] [--repeats N]\n"
                  "Prefill of one LLaMA-2-7B-shaped decoder layer (random weights) vs OpenBLAS SGEMM peak.\n");
      return 0;
    } else if (arg == "--tokens" && i + 1 < argc) {
      tokens = std::stoi(argv[++i]);
    } else if (arg == "--repeats" && i + 1 < argc) {
      repeats = std::stoi(argv[++i]);
    } else {
      std::fprintf(stderr, "bench_decoder_layer: unknown argument %s (see --help)\n", arg.c_str());
      return 2;
    }
  }

  serq::Model model = serq::bench::seven_b_shaped_layer(tokens);
  const serq::ModelConfig& config = model.config;
  std::mt19937 rng(1234);
  serq::Matrix input(tokens, config.dim);
  serq::bench::fill_normal(input, rng, 1.0f);

  const double d = config.dim, h = config.hidden_dim, kv = config.kv_dim(), t = tokens;
  const double linear_flops = 2.0 * t * (2 * d * d + 2 * d * kv + 3 * d * h);
  const double attention_flops = 2.0 * t * (t + 1) * d;  // causal QKᵀ and PV, useful work only
  const double layer_flops = linear_flops + attention_flops;

  auto run_layer = [&] {
    serq::Matrix hidden = input;
    serq::decoder_layer_forward(model, 0, hidden, 1, tokens, nullptr);
  };
  const double fp_seconds = median_seconds(repeats, run_layer);

  // SGEMM reference on the layer's largest GEMM: (T × 4096) · (11008 × 4096)ᵀ.
  serq::Matrix a(tokens, config.dim), b(config.hidden_dim, config.dim), c(tokens, config.hidden_dim);
  serq::bench::fill_normal(a, rng, 1.0f);
  serq::bench::fill_normal(b, rng, 0.02f);
  const double sgemm_seconds = median_seconds(repeats, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tokens, config.hidden_dim, config.dim, 1.0f, a.data(),
                config.dim, b.data(), config.dim, 0.0f, c.data(), config.hidden_dim);
  });
  const double sgemm_flops = 2.0 * t * h * d;

  serq::QuantParams w4a4;
  w4a4.weight = {4, true, 128};
  w4a4.activation = {4, false, 128};
  serq::RoundToNearest().quantize(model, w4a4, serq::Calibration{});
  const double quant_seconds = median_seconds(repeats, run_layer);

  const serq::BuildInfo info = serq::build_info();
  std::printf("bench_decoder_layer: LLaMA-2-7B-shaped layer (RANDOM weights), %d tokens, median of %d runs\n", tokens,
              repeats);
  std::printf("BLAS: %s, %d threads; commit %s; %s\n", info.blas.c_str(), info.blas_threads, info.git_commit.c_str(),
              info.compiler.c_str());
  std::printf("%-34s %10s %12s %10s\n", "what", "seconds", "GFLOP/s", "vs SGEMM");
  const double sgemm_rate = sgemm_flops / sgemm_seconds / 1e9;
  std::printf("%-34s %10.3f %12.1f %9.1f%%\n", "OpenBLAS SGEMM 2048x11008x4096", sgemm_seconds, sgemm_rate, 100.0);
  const double fp_rate = layer_flops / fp_seconds / 1e9;
  std::printf("%-34s %10.3f %12.1f %9.1f%%\n", "decoder layer fp32", fp_seconds, fp_rate, 100.0 * fp_rate / sgemm_rate);
  const double q_rate = layer_flops / quant_seconds / 1e9;
  std::printf("%-34s %10.3f %12.1f %9.1f%%\n", "decoder layer RTN W4A4 g128 (fake)", quant_seconds, q_rate,
              100.0 * q_rate / sgemm_rate);
  std::printf("fake-quant / fp time: %.2fx\n", quant_seconds / fp_seconds);
  return 0;
}
