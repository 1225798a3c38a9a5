// bench_cuda: the CUDA backend's low-bit GEMM against cuBLAS BF16 and INT8 on LLaMA-2-7B and LLaMA-3-8B layer shapes,
// the cost of SERQ's fused correction (R as extra K), and the fused activation kernel's bandwidth against the GPU's
// peak. Medians of repeated runs timed by CUDA events, every baseline in the same run. Built where nvcc is found;
// needs a GPU (sm_80 or later). tools/gpu_check.sh runs it.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/backend/cuda/cuda_kernels.h"
#include "core/backend/cuda/device_buffer.h"
#include "core/backend/cuda/lowbit_layout.h"

using namespace serq;
using namespace serq::cuda;

namespace {

constexpr const char* kHelp = R"(bench_cuda: the low-bit GEMM, its fused correction and the activation kernel, on a GPU

  bench_cuda [--repeats N] [--group G] [--rank R] [--quick]

For LLaMA-2-7B (4096x4096, 11008x4096, 4096x11008) and LLaMA-3-8B (1024x4096, 14336x4096, 4096x14336) linears at
M = 1, 16, 256, 2048, 4096 tokens: milliseconds and TOPS of cuBLAS BF16 (FP32 accumulation), cuBLAS INT8 (INT32
accumulation), serq's W4A4 GEMM (INT weights in groups of G, default 128) and the same with SERQ's R of rank R
(default 128) fused as extra K; then the activation kernel (scale, gather, quantize, pack) in GB/s against the
memory's peak. Each figure is the median of N runs (default 20) after 3 warm-ups. --quick: M = 2048 only.
)";

struct Shape {
  const char* model;
  int n, k;
};

float median_ms(cudaStream_t stream, int repeats, const auto& body) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  for (int i = 0; i < 3; ++i) body();
  std::vector<float> times;
  for (int i = 0; i < repeats; ++i) {
    check(cudaEventRecord(start, stream), "cudaEventRecord");
    body();
    check(cudaEventRecord(stop, stream), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

template <class T>
DeviceBuffer<T> random_buffer(std::size_t count, std::mt19937& rng, cudaStream_t stream, T lo, T hi) {
  std::vector<T> host(count);
  if constexpr (std::is_floating_point_v<T>) {
    std::uniform_real_distribution<T> dist(lo, hi);
    for (T& v : host) v = dist(rng);
  } else {
    std::uniform_int_distribution<int> dist(static_cast<int>(lo), static_cast<int>(hi));
    for (T& v : host) v = static_cast<T>(dist(rng));
  }
  return DeviceBuffer<T>(std::span<const T>(host), stream);
}

// Random values (cuBLAS runs faster on zeros, so the baseline gets real data).
DeviceBuffer<__nv_bfloat16> random_bf16(std::size_t count, std::mt19937& rng, cudaStream_t stream) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<__nv_bfloat16> host(count);
  for (auto& v : host) v = __float2bfloat16(dist(rng));
  return DeviceBuffer<__nv_bfloat16>(std::span<const __nv_bfloat16>(host), stream);
}

// The low-bit GEMM's operands for rows × k against n × k in groups of `group`, with `extra` more groups (R).
struct LowbitCase {
  DeviceBuffer<std::uint8_t> act_codes, weight_codes;
  DeviceBuffer<float> act_scales, weight_scales, divisors;
  DeviceBuffer<std::int32_t> act_offsets, weight_sums;
  LowbitOperands op;
};

LowbitCase lowbit_case(int rows, int n, int k, int group, int extra, std::mt19937& rng, cudaStream_t stream) {
  LowbitCase c;
  const int rows_pad = round_up(rows, kTileM), n_pad = round_up(n, kTileN), groups = k / group + extra;
  const std::size_t k_pad = static_cast<std::size_t>(groups) * group;
  c.act_codes = random_buffer<std::uint8_t>(rows_pad * k_pad, rng, stream, 0, 15);
  c.weight_codes = random_buffer<std::uint8_t>(n_pad * k_pad / 2, rng, stream, 0, 255);
  c.act_scales = random_buffer<float>(std::size_t(rows_pad) * groups, rng, stream, 0.01f, 0.1f);
  c.weight_scales = random_buffer<float>(std::size_t(n_pad) * groups, rng, stream, 0.01f, 0.1f);
  c.divisors = random_buffer<float>(n_pad, rng, stream, 1.0f, 2.0f);
  c.act_offsets = random_buffer<std::int32_t>(std::size_t(rows_pad) * groups, rng, stream, 8, 8);
  c.weight_sums = random_buffer<std::int32_t>(std::size_t(n_pad) * groups, rng, stream, -64, 64);
  c.op = {.act_codes = c.act_codes.data(), .act_scales = c.act_scales.data(), .act_offsets = c.act_offsets.data(),
          .weight_codes = c.weight_codes.data(), .weight_scales = c.weight_scales.data(),
          .weight_sums = c.weight_sums.data(), .divisors = c.divisors.data(), .bias = nullptr, .rows = rows,
          .rows_pad = rows_pad, .n = n, .n_pad = n_pad, .groups = groups, .group_pad = group, .bits = 4};
  return c;
}

double tops(int m, int n, int k, float ms) { return 2.0 * m * n * k / (ms * 1e-3) / 1e12; }

}  // namespace

int main(int argc, char** argv) {
  int repeats = 20, group = 128, rank = 128;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kHelp, stdout);
      return 0;
    }
    if (arg == "--quick") {
      quick = true;
    } else if ((arg == "--repeats" || arg == "--group" || arg == "--rank") && i + 1 < argc) {
      (arg == "--repeats" ? repeats : arg == "--group" ? group : rank) = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "bench_cuda: unknown argument '%s'; see --help\n", arg.c_str());
      return 2;
    }
  }
  if (repeats < 1 || group < kTileK || group % kTileK != 0 || rank < 0 || rank % group != 0) {
    std::fprintf(stderr, "bench_cuda: --repeats >= 1, --group a multiple of %d and --rank a multiple of the group\n",
                 kTileK);
    return 2;
  }
  try {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      std::fprintf(stderr, "bench_cuda: no CUDA device here\n");
      return 1;
    }
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    int memory_khz = 0;
    cudaDeviceGetAttribute(&memory_khz, cudaDevAttrMemoryClockRate, 0);
    const double peak_gbs = 2.0 * memory_khz * 1e3 * (prop.memoryBusWidth / 8) / 1e9;
    std::printf("GPU: %s (sm_%d%d, %d SMs, memory peak %.0f GB/s), repeats %d\n\n", prop.name, prop.major, prop.minor,
                prop.multiProcessorCount, peak_gbs, repeats);

    cudaStream_t stream;
    check(cudaStreamCreate(&stream), "cudaStreamCreate");
    cublasHandle_t blas;
    check(cublasCreate(&blas), "cublasCreate");
    check(cublasSetStream(blas, stream), "cublasSetStream");
    std::mt19937 rng(1);

    const Shape shapes[] = {{"7B q/k/v/o", 4096, 4096}, {"7B gate/up", 11008, 4096}, {"7B down", 4096, 11008},
                            {"8B k/v", 1024, 4096},     {"8B gate/up", 14336, 4096}, {"8B down", 4096, 14336}};
    std::vector<int> ms_list = quick ? std::vector<int>{2048} : std::vector<int>{1, 16, 256, 2048, 4096};
    std::printf("| layer | N × K | M | BF16 ms | INT8 ms | W4A4 ms | W4A4+R ms | W4A4 TOPS | W4A4 vs BF16 | "
                "R cost |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (const Shape& s : shapes) {
      for (const int m : ms_list) {
        const int k = s.k, n = s.n;
        const DeviceBuffer<__nv_bfloat16> a_bf16 = random_bf16(std::size_t(m) * k, rng, stream);
        const DeviceBuffer<__nv_bfloat16> w_bf16 = random_bf16(std::size_t(n) * k, rng, stream);
        DeviceBuffer<float> y(std::size_t(m) * n, stream);
        const float one = 1.0f, zero = 0.0f;
        const float bf16 = median_ms(stream, repeats, [&] {
          check(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w_bf16.data(), CUDA_R_16BF, k,
                             a_bf16.data(), CUDA_R_16BF, k, &zero, y.data(), CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT),
                "cublasGemmEx (bf16)");
        });
        const auto a8 = random_buffer<std::int8_t>(std::size_t(m) * k, rng, stream, -8, 7);
        const auto w8 = random_buffer<std::int8_t>(std::size_t(n) * k, rng, stream, -8, 7);
        DeviceBuffer<std::int32_t> y32(std::size_t(m) * n, stream);
        const std::int32_t one_i = 1, zero_i = 0;
        float int8 = -1.0f;
        if (m % 4 == 0) {  // cuBLAS's INT8 GEMM wants dimensions in multiples of 4
          int8 = median_ms(stream, repeats, [&] {
            check(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one_i, w8.data(), CUDA_R_8I, k, a8.data(),
                               CUDA_R_8I, k, &zero_i, y32.data(), CUDA_R_32I, n, CUBLAS_COMPUTE_32I,
                               CUBLAS_GEMM_DEFAULT),
                  "cublasGemmEx (int8)");
          });
        }
        const LowbitCase plain = lowbit_case(m, n, k, group, 0, rng, stream);
        const float w4 = median_ms(stream, repeats, [&] { launch_lowbit_gemm(plain.op, y.data(), stream); });
        check(cudaGetLastError(), "lowbit_gemm");
        const LowbitCase with_r = lowbit_case(m, n, k, group, rank / group, rng, stream);
        const float w4r = median_ms(stream, repeats, [&] { launch_lowbit_gemm(with_r.op, y.data(), stream); });
        std::printf("| %s | %d × %d | %d | %.4f | %s | %.4f | %.4f | %.1f | %.2f× | %+.1f%% |\n", s.model, n, k, m,
                    bf16, int8 > 0 ? fmt::format("{:.4f}", int8).c_str() : "—", w4, w4r, tops(m, n, k, w4), bf16 / w4,
                    100.0 * (w4r / w4 - 1.0));
        std::fflush(stdout);
      }
    }

    std::printf("\n| activation kernel | M × K | ms | GB/s | share of peak |\n|---|---|---|---|---|\n");
    for (const int k : {4096, 11008, 14336}) {
      const int m = 4096, groups = k / group;
      const auto x = random_buffer<float>(std::size_t(m) * k, rng, stream, -4.0f, 4.0f);
      const auto scale = random_buffer<float>(k, rng, stream, 0.5f, 2.0f);
      std::vector<int> order(k);
      for (int i = 0; i < k; ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), rng);
      const DeviceBuffer<int> d_order(std::span<const int>(order), stream);
      std::vector<int> activation_group(groups), group_columns(groups, group);
      for (int g = 0; g < groups; ++g) activation_group[g] = g;
      const DeviceBuffer<int> d_group(std::span<const int>(activation_group), stream);
      const DeviceBuffer<int> d_columns(std::span<const int>(group_columns), stream);
      DeviceBuffer<std::uint8_t> codes(std::size_t(m) * k, stream);
      DeviceBuffer<float> scales(std::size_t(m) * groups, stream);
      DeviceBuffer<std::int32_t> offsets(std::size_t(m) * groups, stream);
      DeviceBuffer<int> bad(1, stream);
      const ActivationPack pack{.rows = m, .cols = k, .group_width = group, .groups = groups, .main_groups = groups,
                                .group_pad = group, .bits = 4, .symmetric = true,
                                .activation_group = d_group.data(), .group_columns = d_columns.data()};
      const float ms = median_ms(stream, repeats, [&] {
        launch_pack_activations(x.data(), scale.data(), d_order.data(), pack, codes.data(), scales.data(),
                                offsets.data(), bad.data(), stream);
      });
      // Bytes that must move: the float input read once, the scales per column, the codes and group scales written.
      const double bytes = double(m) * k * (4 + 1) + double(k) * 8 + double(m) * groups * 8;
      const double gbs = bytes / (ms * 1e-3) / 1e9;
      std::printf("| scale→gather→quantize→pack, A4 g%d | %d × %d | %.4f | %.0f | %.0f%% |\n", group, m, k, ms, gbs,
                  100.0 * gbs / peak_gbs);
    }
    cublasDestroy(blas);
    cudaStreamDestroy(stream);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
