// Benchmark: causal attention prefill on the CPU, the flash-style kernel (core/backend/cpu/flash_attention.h)
// against the kernel it replaced, kept here as the baseline: per head, blocks of 256 queries, scores by one OpenBLAS
// SGEMM, a vectorized softmax over each visible row, and a second SGEMM with the values. Shapes of SmolLM2-135M
// (9 query heads on 3 key heads of 64) and LLaMA-2-7B (32 heads of 128) at T tokens, batch 1; random q, k, v.
// Paired medians (baseline and flash in alternation), GFLOP/s of the useful causal work 2·T·(T+1)·heads·head_dim, for
// each flash kernel this CPU has (the backend runs the widest).
//
// usage: bench_attention [--tokens T] [--repeats N] [--shape all|smollm2|llama7b]
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "core/backend/cpu/flash_attention.h"
#include "core/common/build_info.h"
#include "core/common/matrix.h"
#include "tools/bench_support.h"

namespace {

// The replaced kernel for one sequence and one query head (the baseline; not used by serq itself).
void blocked_sgemm_head(const float* q, int q_stride, const float* k, const float* v, int kv_stride, int seq,
                        int head_dim, float* out, int out_stride, Eigen::VectorXf& scores) {
  constexpr int kBlock = 256;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  for (int t0 = 0; t0 < seq; t0 += kBlock) {
    const int rows = std::min(kBlock, seq - t0), keys = t0 + rows, stride = (keys + 7) & ~7;
    scores.resize(static_cast<Eigen::Index>(rows) * stride);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, head_dim, scale,
                q + static_cast<std::size_t>(t0) * q_stride, q_stride, k, kv_stride, 0.0f, scores.data(), stride);
    for (int r = 0; r < rows; ++r) {
      float* row = scores.data() + static_cast<std::size_t>(r) * stride;
      const int visible = t0 + r + 1;
      Eigen::Map<Eigen::ArrayXf> p(row, visible);
      p = (p - p.maxCoeff()).exp();
      p *= 1.0f / p.sum();
      std::fill(row + visible, row + keys, 0.0f);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, head_dim, keys, 1.0f, scores.data(), stride, v,
                kv_stride, 0.0f, out + static_cast<std::size_t>(t0) * out_stride, out_stride);
  }
}

void bench_shape(const char* name, int heads, int kv_heads, int head_dim, int tokens, int repeats,
                 serq::FlashKernel kernel) {
  const int width = heads * head_dim, kv_width = kv_heads * head_dim, group = heads / kv_heads;
  std::mt19937 rng(1234);
  serq::Matrix q(tokens, width), k(tokens, kv_width), v(tokens, kv_width), base_out(tokens, width),
      flash_out(tokens, width);
  for (serq::Matrix* m : {&q, &k, &v}) serq::bench::fill_normal(*m, rng, 1.0f);
  const serq::AttentionShape shape{.n_heads = heads, .n_kv_heads = kv_heads, .head_dim = head_dim, .batch = 1,
                                   .seq = tokens, .pos0 = 0, .kv_rows = tokens};
  Eigen::VectorXf scores;
  const auto times = serq::bench::paired_median_seconds(
      repeats,
      [&] {
        for (int h = 0; h < heads; ++h) {
          blocked_sgemm_head(q.data() + h * head_dim, width, k.data() + (h / group) * head_dim,
                             v.data() + (h / group) * head_dim, kv_width, tokens, head_dim,
                             base_out.data() + h * head_dim, width, scores);
        }
      },
      [&] {
        serq::flash_attention(q.data(), k.data(), v.data(), shape, flash_out.data(), kernel, 0);
      });
  const double flops = 2.0 * tokens * (tokens + 1.0) * width;
  const double difference = (flash_out - base_out).norm() / base_out.norm();
  std::printf("%-32s %-7s %10.4f %10.4f %9.1f %9.1f %8.2fx %12.1e\n", name, serq::flash_kernel_name(kernel),
              times.baseline, times.candidate,
              flops / times.baseline / 1e9, flops / times.candidate / 1e9, times.baseline / times.candidate,
              difference);
}

}  // namespace

int main(int argc, char** argv) {
  int tokens = 2048, repeats = 5;
  std::string shape = "all";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: bench_attention [--tokens T] [--repeats N] [--shape all|smollm2|llama7b]\n"
                  "Causal attention prefill: the flash-style CPU kernel against the blocked-SGEMM kernel it\n"
                  "replaced, at SmolLM2-135M's and LLaMA-2-7B's head shapes (paired medians).\n");
      return 0;
    } else if (arg == "--tokens" && i + 1 < argc) {
      tokens = std::stoi(argv[++i]);
    } else if (arg == "--repeats" && i + 1 < argc) {
      repeats = std::stoi(argv[++i]);
    } else if (arg == "--shape" && i + 1 < argc) {
      shape = argv[++i];
    } else {
      std::fprintf(stderr, "bench_attention: unknown argument %s (see --help)\n", arg.c_str());
      return 2;
    }
  }
  const serq::BuildInfo info = serq::build_info();
  std::printf("bench_attention: causal prefill of %d tokens, batch 1, paired medians of %d runs\n", tokens, repeats);
  std::printf("BLAS: %s, %d threads; commit %s; %s\n", info.blas.c_str(), info.blas_threads, info.git_commit.c_str(),
              info.compiler.c_str());
  std::printf("%-32s %-7s %10s %10s %9s %9s %9s %12s\n", "shape", "kernel", "sgemm s", "flash s", "GFLOP/s",
              "GFLOP/s", "speedup", "rel. diff");
  if (shape != "all" && shape != "smollm2" && shape != "llama7b") {
    std::fprintf(stderr, "bench_attention: --shape %s: expected all, smollm2 or llama7b\n", shape.c_str());
    return 2;
  }
  for (const serq::FlashKernel kernel : {serq::FlashKernel::avx512, serq::FlashKernel::avx2}) {
    if (!serq::cpu_has(kernel)) continue;
    if (shape != "llama7b") bench_shape("SmolLM2-135M (9 on 3 heads, 64)", 9, 3, 64, tokens, repeats, kernel);
    if (shape != "smollm2") bench_shape("LLaMA-2-7B (32 heads of 128)", 32, 32, 128, tokens, repeats, kernel);
  }
  return 0;
}
