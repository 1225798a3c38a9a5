// The CUDA backend's arithmetic that device and host share: the low-bit GEMM's operand layout, the 4-bit → int8
// widening, the mma.sync m16n8k32 fragment coordinates, the per-group scale step, and the activation quantizer's
// formulas. Everything here compiles for the host as well (SERQ_HD), so tests/test_cuda_layout.cpp checks it on the
// CPU against the references, with or without a GPU.
//
// The low-bit GEMM (lowbit_gemm.cu) computes, as the CPU's int_gemm.h does,
//   Y[t, n] = (Σ_g (Σ_{k ∈ g} u[t, k] · w[n, k] − c[t, g] · Σ_{k ∈ g} w[n, k]) · s_a[t, g] · s_w[n, g]) / d[n] + b[n]
// over G groups: the weight's main groups, then SERQ's R as extra groups that read the codes of activation group
// g − main_groups (core/backend/cpu/int_gemm.h). Each group is padded with zeros to a multiple of kTileK columns,
// so one group is a whole number of mma steps and its integer sum is exact before its scales apply.
//
// Layouts (row-major, bytes):
//   activation codes  u8,  rows_pad × (G · group_pad), a group's codes at g · group_pad, zeros after its columns
//   activation scales f32 and offsets i32, rows_pad × G (a copy per group, R's groups too)
//   weight codes      4-bit: n_pad × (G · group_pad / 2), value w + 8 in a nibble, low nibble first
//                     8-bit: n_pad × (G · group_pad), int8 w
//   weight scales f32 and sums i32, n_pad × G; divisors f32, n_pad (1 where none)
// rows_pad and n_pad are multiples of the block tile (kTileM, kTileN); the padding is zeros.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SERQ_HD __host__ __device__ __forceinline__
#else
#define SERQ_HD inline
#endif

namespace serq::cuda {

inline constexpr int kTileM = 128;        // block tile: activation rows
inline constexpr int kTileN = 128;        // block tile: weight rows (outputs)
inline constexpr int kTileK = 32;         // one mma.sync m16n8k32 step of K
inline constexpr int kWarps = 8;          // 2 × 4 warps, each 64 × 32 of the block tile
inline constexpr int kThreads = 32 * kWarps;
inline constexpr int kWarpM = 64, kWarpN = 32;
inline constexpr int kSmemRowBytes = 48;  // 32 bytes of K per row, padded so that fragment loads hit 32 banks

SERQ_HD int round_up(int x, int multiple) { return (x + multiple - 1) / multiple * multiple; }

// Two 4-bit weights in a byte, low nibble first, each stored as w + 8 (w in [−8, 7]).
SERQ_HD std::uint8_t pack_nibbles(int w_low, int w_high) {
  return static_cast<std::uint8_t>((w_low + 8) | ((w_high + 8) << 4));
}

// Four nibbles (bits 0–15, low first) → four int8 weights w = nibble − 8 in one 32-bit word, byte i = weight i.
// Spread each nibble into its own byte, then w = nibble & 7 for nibble ≥ 8 and 0xF8 | nibble below 8.
SERQ_HD std::uint32_t widen_nibbles(std::uint32_t packed16) {
  const std::uint32_t spread = (packed16 & 0xFu) | ((packed16 & 0xF0u) << 4) | ((packed16 & 0xF00u) << 8) |
                               ((packed16 & 0xF000u) << 12);
  const std::uint32_t below8 = (~spread >> 3) & 0x01010101u;
  return (spread & 0x07070707u) | (below8 * 0xF8u);
}

// Where a kThreads-thread block puts its share of one K step (kTileK columns) of a tile into shared memory: thread
// `tid` copies 16 bytes of row tid / 2 at column (tid % 2) · 16 (8 packed bytes of a 4-bit weight widen to them).
SERQ_HD int tile_load_row(int tid) { return tid >> 1; }
SERQ_HD int tile_load_col(int tid) { return (tid & 1) * 16; }
SERQ_HD int smem_offset(int row, int col) { return row * kSmemRowBytes + col; }

// mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 fragments (PTX ISA, "Matrix fragments for mma.m16n8k32"):
// lane = 4 · group + thread_in_group.
//   A (16 × 32, u8): register i of 4 holds 4 consecutive K bytes of row group + 8 · (i & 1), from column
//                    4 · thread_in_group + 16 · (i >> 1).
//   B (32 × 8, s8, "col": K runs within a column n): register i of 2 holds 4 consecutive K bytes of column group,
//                    from row 4 · thread_in_group + 16 · i.
//   C (16 × 8, s32): element i of 4 sits at row group + 8 · (i >> 1), column 2 · thread_in_group + (i & 1).
SERQ_HD int mma_a_row(int lane, int reg) { return (lane >> 2) + 8 * (reg & 1); }
SERQ_HD int mma_a_col(int lane, int reg) { return 4 * (lane & 3) + 16 * (reg >> 1); }
SERQ_HD int mma_b_col(int lane) { return lane >> 2; }
SERQ_HD int mma_b_row(int lane, int reg) { return 4 * (lane & 3) + 16 * reg; }
SERQ_HD int mma_c_row(int lane, int i) { return (lane >> 2) + 8 * (i >> 1); }
SERQ_HD int mma_c_col(int lane, int i) { return 2 * (lane & 3) + (i & 1); }

// One group's contribution to Y[t, n] once its integer sum is complete. dot − c · Σw is exact in int32
// (|c · Σw| ≤ 255 · 128 · K), so the only rounding is the float product.
SERQ_HD float group_term(std::int32_t dot, std::int32_t offset, std::int32_t weight_sum, float act_scale,
                         float weight_scale) {
  return static_cast<float>(dot - offset * weight_sum) * (act_scale * weight_scale);
}

// The INT quantizer of one group (core/quant/int_quant.h), as its range gives it: lo = min(min x, 0),
// hi = max(max x, 0). Fake quantization and the integer codes (int_gemm.h's quantize_activations) both use it, so
// s_a · (u − c) is the fake-quantized value.
struct GroupQuant {
  float scale = 0.0f;  // 0: an all-zero group
  float zero = 0.0f;   // asymmetric zero point (0 symmetric)
  float min = 0.0f, max = 0.0f;  // the code range: symmetric [−2^(b−1), 2^(b−1) − 1], asymmetric [0, 2^b − 1]
  int offset = 0;      // c: symmetric codes are stored as q + 2^(b−1); asymmetric c = zero
};

SERQ_HD GroupQuant group_quant(float lo, float hi, int bits, bool symmetric) {
  GroupQuant q;
  if (symmetric) {
    q.min = -static_cast<float>(1 << (bits - 1));
    q.max = static_cast<float>((1 << (bits - 1)) - 1);
    q.scale = (-lo > hi ? -lo : hi) / q.max;
    q.offset = 1 << (bits - 1);
    return q;
  }
  q.min = 0.0f;
  q.max = static_cast<float>((1 << bits) - 1);
  q.scale = (hi - lo) / q.max;
  if (q.scale != 0.0f) {
    const float zero = nearbyintf(-lo / q.scale);
    q.zero = zero < q.min ? q.min : (zero > q.max ? q.max : zero);
  }
  q.offset = static_cast<int>(q.zero);
  return q;
}

// The code q of x on the group's grid: clamp(round(x / scale) + zero) (symmetric: zero 0).
SERQ_HD float group_code(float x, const GroupQuant& q) {
  const float code = rintf(x / q.scale) + q.zero;
  return code < q.min ? q.min : (code > q.max ? q.max : code);
}

// x fake-quantized: (q − zero) · scale, and +0 for an all-zero group.
SERQ_HD float fake_quant_value(float x, const GroupQuant& q) {
  return q.scale == 0.0f ? 0.0f : (group_code(x, q) - q.zero) * q.scale;
}

// The stored unsigned code u (s_a · (u − c) = the fake-quantized value); an all-zero group stores c.
SERQ_HD std::uint8_t activation_code(float x, const GroupQuant& q) {
  if (q.scale == 0.0f) return static_cast<std::uint8_t>(q.offset);
  const float shift = static_cast<float>(q.offset) - q.zero;  // symmetric: 2^(b−1); asymmetric: 0
  return static_cast<std::uint8_t>(static_cast<int>(group_code(x, q) + shift));
}

// MXFP4 (core/quant/mxfp4.h): the block scale 2^(floor(log2 amax) − 2), exponent clamped to [−127, 127], and one
// element x · (1 / scale) rounded to E2M1 (ties to the even mantissa, saturating at ±6), times the scale.
SERQ_HD float mxfp4_block_scale(float amax) {
  if (amax == 0.0f) return 0.0f;
  int exponent = 0;
  frexpf(amax, &exponent);
  exponent -= 3;
  exponent = exponent < -127 ? -127 : (exponent > 127 ? 127 : exponent);
  return ldexpf(1.0f, exponent);
}

SERQ_HD float mxfp4_value(float x, float scale) {
  if (scale == 0.0f) return 0.0f;
  const float scaled = x * (1.0f / scale);
  const float magnitude = fabsf(scaled);
  const float step = 0.5f + (magnitude >= 2.0f ? 0.5f : 0.0f) + (magnitude >= 4.0f ? 1.0f : 0.0f);
  float element = rintf(scaled / step) * step;
  element = element < -6.0f ? -6.0f : (element > 6.0f ? 6.0f : element);
  return element * scale;
}

}  // namespace serq::cuda
