// Benchmark: the integer W4A4/W4A8 GEMM (core/backend/cpu/int_gemm.h) against OpenBLAS SGEMM and against the
// fake-quant float path, on LLaMA-2-7B and SmolLM2-135M linear shapes with RANDOM weights and activations.
// Each row times, medians of repeated runs in one process:
//   sgemm      X · Wᵀ in float32 (the FP baseline);
//   fake-quant fake_quant_rows(X) then X̂ · Ŵᵀ in float32 (what serq evaluates today);
//   int        quantize_activations(X) then int_gemm (codes, int32 dot products per group, float scales);
//   int gemm   int_gemm alone, the activations already quantized.
// GOP/s count 2·M·N·K for every row. Weights are INT4 symmetric, activations asymmetric, both in groups of --group.
// The int8 peak is measured in the same run: the kernel's multiply-add instructions (vpdpbusd, or AVX2's
// vpmaddubsw + vpmaddwd + vpaddd) on register-resident operands, 12 independent chains a thread, on the GEMM's threads.
//
// usage: bench_int_gemm [--tokens M] [--repeats N] [--group G] [--a-bits B] [--threads T]
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>
#include <random>
#include <string>

#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/int_gemm.h"
#include "core/common/build_info.h"
#include "core/common/error.h"
#include "tools/bench_support.h"

using namespace serq;

namespace {

struct Options {
  int tokens = 2048, repeats = 5, group = 64, a_bits = 4, threads = 0;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> int {
      SERQ_CHECK(i + 1 < argc, "bench_int_gemm: {} needs a value", arg);
      return std::stoi(argv[++i]);
    };
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: bench_int_gemm [--tokens M] [--repeats N] [--group G] [--a-bits B] [--threads T]\n"
                  "Integer W4 GEMM against OpenBLAS SGEMM and the fake-quant float path (RANDOM data).\n");
      std::exit(0);
    } else if (arg == "--tokens") {
      o.tokens = value();
    } else if (arg == "--repeats") {
      o.repeats = value();
    } else if (arg == "--group") {
      o.group = value();
    } else if (arg == "--a-bits") {
      o.a_bits = value();
    } else if (arg == "--threads") {
      o.threads = value();
    } else {
      fail("bench_int_gemm: unknown option '{}'; see --help", arg);
    }
  }
  return o;
}

Matrix random_matrix(int rows, int cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  return serq::bench::random_normal(rows, cols, 1.0f, rng);
}

// u8 × s8 multiply-adds on registers: `iterations` × 12 instructions, each 64 (VNNI) or 32 (AVX2) multiply-adds.
__attribute__((target("avx512f,avx512vnni"))) int vnni_chains(long iterations) {
  __m512i acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);
  const __m512i a = _mm512_set1_epi32(0x01010101), b = _mm512_set1_epi32(0x02020202);
  for (long n = 0; n < iterations; ++n)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
  int sum = 0;
  alignas(64) int lanes[16];
  for (int i = 0; i < 12; ++i) {
    _mm512_store_si512(lanes, acc[i]);
    for (int lane : lanes) sum += lane;
  }
  return sum;
}

__attribute__((target("avx2,fma"))) int avx2_chains(long iterations) {
  __m256i acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_epi32(i);
  const __m256i a = _mm256_set1_epi32(0x01010101), b = _mm256_set1_epi32(0x02020202), ones = _mm256_set1_epi16(1);
  for (long n = 0; n < iterations; ++n)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i)
      acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones));
  int sum = 0;
  alignas(32) int lanes[8];
  for (int i = 0; i < 12; ++i) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc[i]);
    for (int lane : lanes) sum += lane;
  }
  return sum;
}

// GOP/s (2 per multiply-add) of the kernel's instructions on `threads` threads.
double int8_peak_gops(IntKernel kernel, int threads) {
  const long iterations = 20'000'000;
  const bool vnni = kernel == IntKernel::avx512_vnni;
  std::vector<std::thread> pool;
  std::vector<int> sink(static_cast<std::size_t>(threads));
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      sink[static_cast<std::size_t>(t)] = vnni ? vnni_chains(iterations) : avx2_chains(iterations);
    });
  }
  for (std::thread& thread : pool) thread.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return threads * iterations * 12.0 * (vnni ? 64 : 32) * 2 / seconds / 1e9;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  const BuildInfo build = build_info();
  std::printf("bench_int_gemm: M = %d tokens, W4 sym g%d, A%d asym g%d, median of %d; kernel %s, %d threads\n",
              o.tokens, o.group, o.a_bits, o.group, o.repeats, int_kernel_name(int_gemm_kernel()),
              o.threads > 0 ? o.threads : build.blas_threads);
  std::printf("BLAS: %s, %d threads; commit %s; %s\n", build.blas.c_str(), build.blas_threads,
              build.git_commit.c_str(), build.compiler.c_str());
  const int threads = o.threads > 0 ? o.threads : build.blas_threads;
  const double peak = int8_peak_gops(int_gemm_kernel(), threads);
  std::printf("int8 peak of the %s kernel's instructions on %d threads (measured): %.1f GOP/s\n\n",
              int_kernel_name(int_gemm_kernel()), threads, peak);
  std::printf("| shape (N × K) | sgemm s | GOP/s | fake-quant s | int s | int gemm s | GOP/s | of peak | "
              "sgemm / int |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  struct Shape {
    const char* name;
    int n, k;
  };
  const QuantSpec act{o.a_bits, false, o.group};
  for (const Shape s : {Shape{"7B q/o", 4096, 4096}, Shape{"7B gate/up", 11008, 4096}, Shape{"7B down", 4096, 11008},
                        Shape{"SmolLM2 q/o", 576, 576}, Shape{"SmolLM2 gate/up", 1536, 576},
                        Shape{"SmolLM2 down", 576, 1536}}) {
    const Matrix x = random_matrix(o.tokens, s.k, 1);
    const PackedWeight packed = PackedWeight::quantize(random_matrix(s.n, s.k, 2) * 0.02f,
                                                       stored_weight_spec(QuantSpec{4, true, o.group}));
    const Matrix w = packed.dequantize();
    const Int8Weight int8(packed);
    Matrix y, xq;
    const double sgemm = bench::median_seconds(o.repeats, [&] { gemm_xwt(x, w, y); });
    const double fake = bench::median_seconds(o.repeats, [&] {
      xq = x;
      fake_quant_rows(xq, act);
      gemm_xwt(xq, w, y);
    });
    const double full =
        bench::median_seconds(o.repeats, [&] { int_gemm(quantize_activations(x, act), int8, y, o.threads); });
    const IntActivations codes = quantize_activations(x, act);
    const double gemm_only = bench::median_seconds(o.repeats, [&] { int_gemm(codes, int8, y, o.threads); });
    const double ops = 2.0 * o.tokens * s.n * double(s.k) / 1e9;
    std::printf("| %s (%d × %d) | %.4f | %.1f | %.4f | %.4f | %.4f | %.1f | %.0f%% | %.2f× |\n", s.name, s.n, s.k,
                sgemm, ops / sgemm, fake, full, gemm_only, ops / gemm_only, 100.0 * ops / gemm_only / peak,
                sgemm / full);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_int_gemm: error: %s\n", e.what());
  return 1;
}
