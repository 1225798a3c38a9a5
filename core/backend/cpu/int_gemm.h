// The CPU's integer low-bit GEMM, Y = Q_a(X) · Q_w(W)ᵀ on integer codes: activations quantized to unsigned 8-bit
// codes per token and group, an INT weight (PackedWeight) widened to int8, exact int32 dot products per group,
// then the scales in float:
//
//   Y[t, n] = Σ_g s_a[t, g] · s_w[n, g] · (Σ_{k ∈ g} u[t, k] · w[n, k]  −  c[t, g] · Σ_{k ∈ g} w[n, k]) / d[n]
//
// where an activation is s_a · (u − c) (asymmetric: c is the zero point; symmetric: u = q + 2^(b−1), c = 2^(b−1)),
// a weight is s_w · w / d (w = code − zero, d the folded row divisor, or 1). Activation and weight groups must be
// the same columns. The dot product is an int32 sum; the centering − c · Σw is taken in float, exact while both terms
// stay below 2^24. The codes are those of fake quantization (core/quant/int_quant.h), so Y equals the fake-quant
// float path up to the float rounding of the scale products and of the sums.
//
// Kernels, chosen at run time: AVX-512 VNNI (vpdpbusd: four u8 × s8 products into each int32 lane) where the CPU has
// it, else AVX2 (vpmaddubsw + vpmaddwd, llama.cpp's Q4_0 × Q8_0 path), else the plain reference (int_gemm_reference).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/common/matrix.h"
#include "core/quant/int_quant.h"
#include "core/quant/packed_weight.h"

namespace serq {

// Activations as integer codes. Each group's codes are padded with zeros to a multiple of 4 (padded_group).
struct IntActivations {
  int rows = 0, cols = 0, group_width = 0, groups = 0, padded_group = 0;
  std::vector<std::uint8_t> codes;    // rows × (groups · padded_group)
  std::vector<float> scales;          // rows × groups: s_a
  std::vector<std::int32_t> offsets;  // rows × groups: c
};

// Quantizes x (rows × cols) per row and group with an INT spec of at most 8 bits, as fake_quant_rows does:
// s_a · (u − c) equals its fake-quantized value. A non-finite value is a serq::Error.
// Rows are split over `threads` (≤ 0: OpenBLAS's thread count); each row's codes are the same on any count.
IntActivations quantize_activations(ConstMatrixRef x, const QuantSpec& spec, int threads = 0);

// The same for an input made block by block (rows × cols in all): transform(begin, end, block) sets `block` to rows
// [begin, end) of the input (a layer's transform T(X), say), and each block is quantized while it is in cache, on the
// thread that made it. The codes equal quantize_activations of the whole input.
using RowBlockSource = std::function<void(int begin, int end, Matrix& block)>;
IntActivations quantize_activations(int rows, int cols, const RowBlockSource& source, const QuantSpec& spec,
                                    int threads = 0);

// An INT weight laid out for the kernels: rows padded to a multiple of 32 and each group to padded_group columns,
// blocks of 16 rows with 4 consecutive columns per lane.
//
// SERQ's correction Xq[:, :r] · Rᵀ can ride along as extra K: with `salient` (R, d_out × r, as packed), groups
// main_groups() .. groups()−1 hold R's columns cut at the activation groups, each reading the codes of activation
// group (g − main_groups()), so [Xq | Xq[:, :r]] · [W | R]ᵀ is one pass of the same loop.
class Int8Weight {
 public:
  explicit Int8Weight(const PackedWeight& weight, const PackedWeight* salient = nullptr);
  // Whether R can ride along with `weight`: INT codes that fit int8, one scale per row or groups that the activation
  // groups of `weight` cut without straddling, and the same folded row divisors.
  static bool fits_salient(const PackedWeight& weight, const PackedWeight& salient);

  int rows() const { return rows_; }
  int cols() const { return cols_; }
  int group_width() const { return group_width_; }
  int groups() const { return groups_; }            // main groups, then R's
  int main_groups() const { return main_groups_; }  // the activation's groups
  bool has_salient() const { return groups_ > main_groups_; }
  int activation_group(int group) const { return group < main_groups_ ? group : group - main_groups_; }
  int group_columns(int group) const;               // columns of a group (the last main one and R's may be short)
  int padded_group() const { return padded_group_; }
  std::int8_t value(int row, int col) const;  // w = code − zero, of the main weight
  std::int8_t group_value(int row, int group, int k) const;  // column k of a group, main or R's
  float scale(int row, int group) const;      // s_w
  std::int32_t group_sum(int row, int group) const;  // Σ_{k ∈ group} w
  float divisor(int row) const { return divisor_.size() > 0 ? divisor_[row] : 1.0f; }
  const float* divisors() const { return divisor_.size() > 0 ? divisor_.data() : nullptr; }  // null: all 1
  int max_abs_value() const { return max_abs_; }  // max |w|
  std::size_t bytes() const;  // what the kernels read: blocks, lane scales and sums, divisors

  // Kernel layout: block b of 16 rows, group g, column quad q: 64 bytes at ((b · groups + g) · padded_group/4 + q),
  // lane l (row 16b + l) holding columns 4q..4q+3 of the group. Scales and sums of (row, group) sit at
  // lane_index(row, group): the 16 rows of a block side by side for each group.
  const std::int8_t* blocks() const { return blocks_.data(); }
  const float* lane_scales() const { return scales_.data(); }
  const float* lane_sums() const { return sums_.data(); }
  std::size_t lane_index(int row, int group) const;
  int padded_rows() const { return padded_rows_; }

 private:
  int rows_ = 0, cols_ = 0, group_width_ = 0, groups_ = 0, main_groups_ = 0, salient_cols_ = 0, padded_group_ = 0,
      padded_rows_ = 0, max_abs_ = 0;
  std::vector<std::int8_t> blocks_;
  std::vector<float> scales_;       // padded_rows × groups, at lane_index
  std::vector<float> sums_;         // padded_rows × groups, at lane_index (exact integers)
  Vector divisor_;
};

enum class IntKernel { reference, avx2, avx512_vnni };
const char* int_kernel_name(IntKernel kernel);  // "reference", "avx2", "avx512-vnni"
bool cpu_has(IntKernel kernel);
// The fastest kernel this CPU has (within SERQ_CPU_ISA, cpu_isa.h); for a weight, the fastest that also fits it
// (AVX2's int16 pair sums need 2 · 255 · max|w| ≤ 32767: weights of up to 6 bits, or 7 symmetric), else the reference.
IntKernel int_gemm_kernel();
IntKernel int_gemm_kernel(const Int8Weight& w);

// y (x.rows × w.rows) as above, on `threads` threads (0: OpenBLAS's count), with int_gemm_kernel(w) or the kernel
// named. A mismatch of widths or groups, or a kernel this CPU lacks or that does not fit w, is a serq::Error.
void int_gemm(const IntActivations& x, const Int8Weight& w, Matrix& y, int threads = 0);
void int_gemm(const IntActivations& x, const Int8Weight& w, Matrix& y, IntKernel kernel, int threads = 0);
// The same into y already sized x.rows × w.rows() (a tensor's rows, say).
void int_gemm_into(const IntActivations& x, const Int8Weight& w, MatrixRef y, IntKernel kernel, int threads = 0);
// The same, one dot product at a time in plain loops (int64 sums, double scaling): the reference.
void int_gemm_reference(const IntActivations& x, const Int8Weight& w, Matrix& y);

}  // namespace serq
