// The W4A4/W4A8 GEMM on INT8 tensor cores (sm_80 and later; Hopper has no INT4 MMA): u8 activation codes times
// int8 weights by mma.sync m16n8k32, 4-bit weights widened to int8 on their way into shared memory, each group's
// exact int32 sum scaled into float accumulators as soon as it is complete, and SERQ's R as extra groups of K
// (lowbit_layout.h). One block computes a 128 × 128 tile of Y with 8 warps of 64 × 32; K goes in steps of 32
// through two shared-memory stages, the next step's global loads in flight while the tensor cores work.
//
// Numerics: each group's integer sum is exact, so Y differs from the CPU's integer GEMM only in the float rounding of
// the per-group scale step and the division by the row divisor: within 1e-6 of the largest output of
// int_gemm_reference (tests/test_cuda_layout.cpp runs this schedule on the host), which is itself within 2e-6 of the
// fake-quant float path (tests/test_int_gemm.cpp).
#include <cstdint>

#include "core/backend/cuda/cuda_kernels.h"
#include "core/backend/cuda/lowbit_layout.h"

namespace serq::cuda {
namespace {

constexpr int kMTiles = kWarpM / 16;  // m16 tiles per warp
constexpr int kNTiles = kWarpN / 8;   // n8 tiles per warp
constexpr int kStageBytes = kTileM * kSmemRowBytes;

__device__ __forceinline__ void mma_u8s8(std::int32_t (&c)[4], const std::uint32_t (&a)[4],
                                         const std::uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// This thread's 16 bytes of one K step: activation codes, and the weight's (8 packed bytes widened, or 16 int8).
template <int Bits>
struct StepLoad {
  uint4 act;
  uint4 weight;
};

template <int Bits>
__device__ __forceinline__ StepLoad<Bits> load_step(const LowbitOperands& op, int row0, int n0, int k0, int tid) {
  const int row = tile_load_row(tid), col = tile_load_col(tid);
  const std::int64_t k_pad = static_cast<std::int64_t>(op.groups) * op.group_pad;
  StepLoad<Bits> load;
  load.act = *reinterpret_cast<const uint4*>(op.act_codes + (row0 + row) * k_pad + k0 + col);
  if constexpr (Bits == 4) {
    const uint2 packed =
        *reinterpret_cast<const uint2*>(op.weight_codes + (n0 + row) * (k_pad / 2) + (k0 + col) / 2);
    load.weight = make_uint4(widen_nibbles(packed.x & 0xFFFFu), widen_nibbles(packed.x >> 16),
                             widen_nibbles(packed.y & 0xFFFFu), widen_nibbles(packed.y >> 16));
  } else {
    load.weight = *reinterpret_cast<const uint4*>(op.weight_codes + (n0 + row) * k_pad + k0 + col);
  }
  return load;
}

template <int Bits>
__device__ __forceinline__ void store_step(const StepLoad<Bits>& load, std::uint8_t* act_smem,
                                           std::uint8_t* weight_smem, int tid) {
  const int offset = smem_offset(tile_load_row(tid), tile_load_col(tid));
  *reinterpret_cast<uint4*>(act_smem + offset) = load.act;
  *reinterpret_cast<uint4*>(weight_smem + offset) = load.weight;
}

template <int Bits>
__global__ void __launch_bounds__(kThreads) lowbit_gemm_kernel(LowbitOperands op, float* y) {
  __shared__ __align__(16) std::uint8_t act_smem[2][kStageBytes];
  __shared__ __align__(16) std::uint8_t weight_smem[2][kStageBytes];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int row0 = blockIdx.y * kTileM, n0 = blockIdx.x * kTileN;
  const int warp_row = (warp / (kTileN / kWarpN)) * kWarpM, warp_col = (warp % (kTileN / kWarpN)) * kWarpN;
  const int steps_per_group = op.group_pad / kTileK, steps = op.groups * steps_per_group;

  float acc[kMTiles][kNTiles][4] = {};
  std::int32_t dot[kMTiles][kNTiles][4] = {};
  StepLoad<Bits> next = load_step<Bits>(op, row0, n0, 0, tid);
  for (int step = 0; step < steps; ++step) {
    const int stage = step & 1;
    store_step<Bits>(next, act_smem[stage], weight_smem[stage], tid);
    __syncthreads();
    if (step + 1 < steps) next = load_step<Bits>(op, row0, n0, (step + 1) * kTileK, tid);

    std::uint32_t b[kNTiles][2];
#pragma unroll
    for (int j = 0; j < kNTiles; ++j) {
#pragma unroll
      for (int reg = 0; reg < 2; ++reg) {
        b[j][reg] = *reinterpret_cast<const std::uint32_t*>(
            weight_smem[stage] + smem_offset(warp_col + 8 * j + mma_b_col(lane), mma_b_row(lane, reg)));
      }
    }
#pragma unroll
    for (int i = 0; i < kMTiles; ++i) {
      std::uint32_t a[4];
#pragma unroll
      for (int reg = 0; reg < 4; ++reg) {
        a[reg] = *reinterpret_cast<const std::uint32_t*>(
            act_smem[stage] + smem_offset(warp_row + 16 * i + mma_a_row(lane, reg), mma_a_col(lane, reg)));
      }
#pragma unroll
      for (int j = 0; j < kNTiles; ++j) mma_u8s8(dot[i][j], a, b[j]);
    }

    if ((step + 1) % steps_per_group == 0) {  // the group is complete: scale its exact sums into the floats
      const int group = step / steps_per_group;
#pragma unroll
      for (int i = 0; i < kMTiles; ++i) {
        float act_scale[2];
        std::int32_t offset[2];
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const std::int64_t at =
              static_cast<std::int64_t>(row0 + warp_row + 16 * i + mma_c_row(lane, 2 * half)) * op.groups + group;
          act_scale[half] = op.act_scales[at];
          offset[half] = op.act_offsets[at];
        }
#pragma unroll
        for (int j = 0; j < kNTiles; ++j) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const std::int64_t at =
                static_cast<std::int64_t>(n0 + warp_col + 8 * j + mma_c_col(lane, e)) * op.groups + group;
            acc[i][j][e] += group_term(dot[i][j][e], offset[e >> 1], op.weight_sums[at], act_scale[e >> 1],
                                       op.weight_scales[at]);
            dot[i][j][e] = 0;
          }
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kMTiles; ++i) {
#pragma unroll
    for (int j = 0; j < kNTiles; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = row0 + warp_row + 16 * i + mma_c_row(lane, e);
        const int n = n0 + warp_col + 8 * j + mma_c_col(lane, e);
        if (row < op.rows && n < op.n) {
          y[static_cast<std::int64_t>(row) * op.n + n] =
              acc[i][j][e] / op.divisors[n] + (op.bias ? op.bias[n] : 0.0f);
        }
      }
    }
  }
}

}  // namespace

void launch_lowbit_gemm(const LowbitOperands& op, float* y, cudaStream_t stream) {
  const dim3 grid(op.n_pad / kTileN, op.rows_pad / kTileM);
  if (op.bits == 4) {
    lowbit_gemm_kernel<4><<<grid, kThreads, 0, stream>>>(op, y);
  } else {
    lowbit_gemm_kernel<8><<<grid, kThreads, 0, stream>>>(op, y);
  }
}

}  // namespace serq::cuda
