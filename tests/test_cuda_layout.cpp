// The CUDA backend's host-compiled arithmetic (core/backend/cuda/lowbit_layout.h, lowbit_weight.h), checked on the
// CPU with or without a GPU: the 4-bit widening over every input, the activation quantizer's codes and values
// against the CPU's fake quantization bit for bit, MXFP4 likewise, the weight layout against Int8Weight, and the
// low-bit GEMM's whole schedule (tile loads, shared-memory offsets, fragments, per-group scales) emulated block by
// block and lane by lane against the integer GEMM's plain reference. The emulated mma follows the PTX ISA's
// fragment table element by element, written apart from the helpers it checks.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/backend/cpu/int_gemm.h"
#include "core/backend/cuda/lowbit_layout.h"
#include "core/backend/cuda/lowbit_weight.h"
#include "core/quant/int_quant.h"
#include "core/quant/mxfp4.h"
#include "core/quant/packed_weight.h"
#include "tests/support/random.h"

using namespace serq;
using namespace serq::cuda;

namespace {

using test::random_matrix;

std::uint32_t word(const std::uint8_t* bytes) {
  std::uint32_t w;
  std::memcpy(&w, bytes, 4);
  return w;
}

std::int32_t byte_of(std::uint32_t w, int i, bool is_signed) {
  const auto b = static_cast<std::uint8_t>(w >> (8 * i));
  return is_signed ? static_cast<std::int8_t>(b) : b;
}

// mma.sync m16n8k32 .u8 × .s8 as the PTX ISA tabulates it: A element i (0..15) of a lane sits in register i / 4,
// byte i % 4, at row groupID (+8 for i in 4..7 and 12..15) and column 4 · threadID_in_group + (i & 3) (+16 for
// i ≥ 8); B element i (0..7) at row 4 · threadID_in_group + (i & 3) (+16 for i ≥ 4) and column groupID; C element
// i (0..3) at row groupID (+8 for i ≥ 2) and column 2 · threadID_in_group + (i & 1).
void emulated_mma(std::array<std::array<std::int32_t, 4>, 32>& c, const std::array<std::array<std::uint32_t, 4>, 32>& a,
                  const std::array<std::array<std::uint32_t, 2>, 32>& b) {
  std::int32_t A[16][32], B[32][8];
  for (int lane = 0; lane < 32; ++lane) {
    const int group = lane / 4, thread = lane % 4;
    for (int i = 0; i < 16; ++i) {
      const int row = group + ((i / 4) % 2 == 1 ? 8 : 0), col = 4 * thread + (i & 3) + (i >= 8 ? 16 : 0);
      A[row][col] = byte_of(a[lane][i / 4], i % 4, false);
    }
    for (int i = 0; i < 8; ++i) {
      B[4 * thread + (i & 3) + (i >= 4 ? 16 : 0)][group] = byte_of(b[lane][i / 4], i % 4, true);
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 4; ++i) {
      const int row = lane / 4 + (i >= 2 ? 8 : 0), col = 2 * (lane % 4) + (i & 1);
      for (int k = 0; k < 32; ++k) c[lane][i] += A[row][k] * B[k][col];
    }
  }
}

// lowbit_gemm.cu's schedule on the host: per block, per K step, each thread's tile load into shared memory, then
// per warp the fragments, the mma, and at each group's end the scale step; finally divisor and bias.
Matrix emulated_lowbit_gemm(const LowbitActivations& a, const LowbitWeight& w, const Vector& bias) {
  Matrix y = Matrix::Zero(a.rows, w.rows);
  const std::int64_t k_pad = w.k_pad();
  const int steps_per_group = w.group_pad / kTileK, steps = w.groups * steps_per_group;
  constexpr int m_tiles = kWarpM / 16, n_tiles = kWarpN / 8;
  std::vector<std::uint8_t> act_smem(kTileM * kSmemRowBytes), weight_smem(kTileN * kSmemRowBytes);
  for (int row0 = 0; row0 < a.rows_pad; row0 += kTileM) {
    for (int n0 = 0; n0 < w.n_pad; n0 += kTileN) {
      // acc[warp][lane][m tile][n tile][element], and the int32 sums of the group under way
      std::vector<float> acc(kWarps * 32 * m_tiles * n_tiles * 4, 0.0f);
      std::vector<std::array<std::array<std::int32_t, 4>, 32>> dot(kWarps * m_tiles * n_tiles);
      for (auto& d : dot) for (auto& l : d) l.fill(0);
      for (int step = 0; step < steps; ++step) {
        const int k0 = step * kTileK;
        for (int tid = 0; tid < kThreads; ++tid) {
          const int row = tile_load_row(tid), col = tile_load_col(tid);
          std::memcpy(&act_smem[smem_offset(row, col)], &a.codes[(row0 + row) * k_pad + k0 + col], 16);
          if (w.bits == 4) {
            const std::uint8_t* packed = &w.codes[(n0 + row) * (k_pad / 2) + (k0 + col) / 2];
            for (int q = 0; q < 4; ++q) {
              const std::uint32_t wide = widen_nibbles(packed[2 * q] | (packed[2 * q + 1] << 8));
              std::memcpy(&weight_smem[smem_offset(row, col) + 4 * q], &wide, 4);
            }
          } else {
            std::memcpy(&weight_smem[smem_offset(row, col)], &w.codes[(n0 + row) * k_pad + k0 + col], 16);
          }
        }
        for (int warp = 0; warp < kWarps; ++warp) {
          const int warp_row = (warp / (kTileN / kWarpN)) * kWarpM, warp_col = (warp % (kTileN / kWarpN)) * kWarpN;
          for (int i = 0; i < m_tiles; ++i) {
            for (int j = 0; j < n_tiles; ++j) {
              std::array<std::array<std::uint32_t, 4>, 32> fa;
              std::array<std::array<std::uint32_t, 2>, 32> fb;
              for (int lane = 0; lane < 32; ++lane) {
                for (int reg = 0; reg < 4; ++reg) {
                  fa[lane][reg] = word(&act_smem[smem_offset(warp_row + 16 * i + mma_a_row(lane, reg),
                                                             mma_a_col(lane, reg))]);
                }
                for (int reg = 0; reg < 2; ++reg) {
                  fb[lane][reg] = word(&weight_smem[smem_offset(warp_col + 8 * j + mma_b_col(lane),
                                                                mma_b_row(lane, reg))]);
                }
              }
              emulated_mma(dot[(warp * m_tiles + i) * n_tiles + j], fa, fb);
            }
          }
          if ((step + 1) % steps_per_group != 0) continue;
          const int group = step / steps_per_group;
          for (int lane = 0; lane < 32; ++lane) {
            for (int i = 0; i < m_tiles; ++i) {
              for (int j = 0; j < n_tiles; ++j) {
                auto& d = dot[(warp * m_tiles + i) * n_tiles + j][lane];
                for (int e = 0; e < 4; ++e) {
                  const std::size_t t = row0 + warp_row + 16 * i + mma_c_row(lane, e);
                  const std::size_t n = n0 + warp_col + 8 * j + mma_c_col(lane, e);
                  acc[(((warp * 32 + lane) * m_tiles + i) * n_tiles + j) * 4 + e] +=
                      group_term(d[e], a.offsets[t * w.groups + group], w.sums[n * w.groups + group],
                                 a.scales[t * w.groups + group], w.scales[n * w.groups + group]);
                  d[e] = 0;
                }
              }
            }
          }
        }
      }
      for (int warp = 0; warp < kWarps; ++warp) {
        const int warp_row = (warp / (kTileN / kWarpN)) * kWarpM, warp_col = (warp % (kTileN / kWarpN)) * kWarpN;
        for (int lane = 0; lane < 32; ++lane) {
          for (int i = 0; i < m_tiles; ++i) {
            for (int j = 0; j < n_tiles; ++j) {
              for (int e = 0; e < 4; ++e) {
                const int t = row0 + warp_row + 16 * i + mma_c_row(lane, e);
                const int n = n0 + warp_col + 8 * j + mma_c_col(lane, e);
                if (t >= a.rows || n >= w.rows) continue;
                y(t, n) = acc[(((warp * 32 + lane) * m_tiles + i) * n_tiles + j) * 4 + e] / w.divisors[n] +
                          (bias.size() > 0 ? bias[n] : 0.0f);
              }
            }
          }
        }
      }
    }
  }
  return y;
}

}  // namespace

TEST_CASE("cuda layout: widen_nibbles turns every 16-bit input into four int8 weights nibble − 8") {
  for (std::uint32_t packed = 0; packed < 65536; ++packed) {
    const std::uint32_t wide = widen_nibbles(packed);
    for (int i = 0; i < 4; ++i) {
      REQUIRE(byte_of(wide, i, true) == static_cast<int>((packed >> (4 * i)) & 0xF) - 8);
    }
  }
  CHECK(pack_nibbles(-8, 7) == 0xF0);
  CHECK(widen_nibbles(pack_nibbles(-3, 5) | (pack_nibbles(0, -1) << 8)) == 0xFF0005FDu);
}

TEST_CASE("cuda layout: the activation quantizer's values and codes equal the CPU's fake quantization bit for bit") {
  std::mt19937 rng(11);
  for (const int bits : {4, 8}) {
    for (const bool symmetric : {true, false}) {
      Matrix x = random_matrix(5, 96, rng, 3.0f);
      x.row(2).setZero();                      // an all-zero group
      x(3, 7) = 0.5f * x.row(3).cwiseAbs().maxCoeff();  // values near ties
      const QuantSpec spec{bits, symmetric, 32};
      Matrix expected = x;
      fake_quant_rows(expected, spec);
      const IntActivations codes = quantize_activations(x, spec);
      for (int r = 0; r < x.rows(); ++r) {
        for (int g = 0; g < 3; ++g) {
          const auto group = x.row(r).segment(32 * g, 32);
          const GroupQuant q = group_quant(std::min(group.minCoeff(), 0.0f), std::max(group.maxCoeff(), 0.0f), bits,
                                           symmetric);
          const std::size_t at = static_cast<std::size_t>(r) * codes.groups + g;
          CHECK(q.scale == codes.scales[at]);
          CHECK(q.offset == codes.offsets[at]);
          for (int k = 0; k < 32; ++k) {
            INFO("bits " << bits << " symmetric " << symmetric << " row " << r << " column " << 32 * g + k);
            REQUIRE(fake_quant_value(group[k], q) == expected(r, 32 * g + k));
            REQUIRE(activation_code(group[k], q) ==
                    codes.codes[r * codes.groups * codes.padded_group + g * codes.padded_group + k]);
          }
        }
      }
    }
  }
}

TEST_CASE("cuda layout: MXFP4 values equal the CPU's: ties to even, saturation, signed zero, tiny and zero blocks") {
  std::mt19937 rng(5);
  Matrix x = random_matrix(4, 64, rng, 2.0f);
  const float ties[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 7.0f, -0.1f, -5.0f};
  for (int i = 0; i < 10; ++i) x(0, i) = ties[i];
  x(0, 31) = 6.0f;  // amax 7 → scale 1, so the ties above are exact
  x.row(1).segment(0, 32).setZero();
  x.row(2).segment(32, 32) *= 1e-30f;
  Matrix expected = x;
  mxfp4_fake_quant_rows(expected, 32);
  for (int r = 0; r < 4; ++r) {
    for (int b = 0; b < 2; ++b) {
      const float scale = mxfp4_block_scale(x.row(r).segment(32 * b, 32).cwiseAbs().maxCoeff());
      for (int k = 0; k < 32; ++k) {
        INFO("row " << r << " column " << 32 * b + k << " value " << x(r, 32 * b + k));
        const float got = mxfp4_value(x(r, 32 * b + k), scale), want = expected(r, 32 * b + k);
        REQUIRE(got == want);
        REQUIRE(std::signbit(got) == std::signbit(want));
      }
    }
  }
}

TEST_CASE("cuda layout: the weight layout holds Int8Weight's values, scales, sums and divisors, R's groups too") {
  std::mt19937 rng(7);
  PackedWeight main = PackedWeight::quantize(random_matrix(40, 96, rng), stored_weight_spec({4, true, 32}));
  PackedWeight r = PackedWeight::quantize(random_matrix(40, 40, rng), stored_weight_spec({4, true, 32}));
  const Vector divisor = Vector::Constant(40, 1.0f) + random_matrix(40, 1, rng).col(0).cwiseAbs();
  main.divide_rows(divisor);
  r.divide_rows(divisor);
  const Int8Weight w(main, &r);
  const LowbitWeight l = lowbit_weight(w);
  CHECK(l.bits == 4);
  CHECK(l.n_pad == kTileN);
  CHECK(l.groups == 3 + 2);
  CHECK(l.group_pad == 32);
  CHECK(l.group_columns == std::vector<int>{32, 32, 32, 32, 8});
  CHECK(l.activation_group == std::vector<int>{0, 1, 2, 0, 1});
  for (int n = 0; n < l.n_pad; ++n) {
    for (int g = 0; g < l.groups; ++g) {
      for (int k = 0; k < l.group_pad; ++k) {
        const std::uint8_t byte = l.codes[n * l.row_bytes() + (g * l.group_pad + k) / 2];
        const int value = ((k % 2 == 0 ? byte : byte >> 4) & 0xF) - 8;
        const bool real = n < w.rows() && k < l.group_columns[g];
        REQUIRE(value == (real ? w.group_value(n, g, k) : 0));
      }
      const bool real = n < w.rows();
      CHECK(l.scales[n * l.groups + g] == (real ? w.scale(n, g) : 0.0f));
      CHECK(l.sums[n * l.groups + g] == (real ? w.group_sum(n, g) : 0));
    }
    CHECK(l.divisors[n] == (n < w.rows() ? divisor[n] : 1.0f));
  }
  const Int8Weight eight(PackedWeight::quantize(random_matrix(8, 64, rng), stored_weight_spec({8, true, 0})));
  CHECK(lowbit_weight(eight).bits == 8);
}

TEST_CASE("cuda layout: the low-bit GEMM's schedule, emulated lane by lane, equals the integer GEMM's reference") {
  std::mt19937 rng(13);
  struct Case {
    const char* name;
    int tokens, d_out, d_in, w_bits, a_bits, group, r;
    bool a_sym;
  };
  const Case cases[] = {
      {"W4A4 g64 with R of 40 columns, 3 row blocks", 130, 200, 192, 4, 4, 64, 40, true},
      {"W4A8 asymmetric activations, short group 43 padded to 64", 7, 50, 172, 4, 8, 43, 0, false},
      {"W8A8 per token, one token", 1, 129, 96, 8, 8, 0, 0, true},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    const PackedWeight main =
        PackedWeight::quantize(random_matrix(c.d_out, c.d_in, rng), stored_weight_spec({c.w_bits, true, c.group}));
    PackedWeight r;
    if (c.r > 0) r = PackedWeight::quantize(random_matrix(c.d_out, c.r, rng), stored_weight_spec({4, true, c.group}));
    const Int8Weight w(main, c.r > 0 ? &r : nullptr);
    const IntActivations x =
        quantize_activations(random_matrix(c.tokens, c.d_in, rng, 2.0f), {c.a_bits, c.a_sym, c.group});
    Matrix expected;
    int_gemm_reference(x, w, expected);
    const LowbitWeight l = lowbit_weight(w);
    CHECK(l.bits == c.w_bits);
    const Vector bias = random_matrix(c.d_out, 1, rng).col(0);
    const Matrix got = emulated_lowbit_gemm(lowbit_activations(x, l), l, bias);
    expected.rowwise() += bias.transpose();
    const double error = (got - expected).cwiseAbs().maxCoeff() / expected.cwiseAbs().maxCoeff();
    INFO("max error relative to the largest output: " << error);
    CHECK(error < 1e-6);
  }
}
