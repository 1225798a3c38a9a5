// QuantLinear: the one runtime form of every linear layer of the model, quantized or not.
//
// W is (d_out × d_in) as in core/common/matrix.h, and a layer computes, for X (tokens × d_in):
//   X̂  = T(X)                     input transform: X·diag(s)⁻¹, then a column permutation, then X·R (orthogonal)
//   Xq = Q_a(X̂)                   dynamic activation quantizer (per token or per group)
//   Y  = Xq · Wᵀ                  main weight, already transformed to the X̂ basis and fake-quantized
//      + Q_i(Xq · Aᵀ) · Bᵀ        two-factor correction (LoRC/LQER/L2QER): A (k × d_in), B (d_out × k), with an
//                                 optional re-quantization Q_i of the intermediate
//      + Xq[:, :r] · Rᵀ           SERQ's correction: R (d_out × r) on the first r (most salient) channels of Xq
//      + b                        optional bias (d_out; Qwen2's q/k/v), kept in full precision
// At most one correction path is present. Quantized weights are stored packed (core/quant/packed_weight.h): the
// main weight, A, B and R each keep their codes and scales beside the float values the fake-quant path reads, and
// release_weight() drops the main weight's floats, which forward() then dequantizes into a per-thread workspace.
// Methods are offline transforms that produce this form; the backends run it (Op::quant_linear) and never know
// which method made it.
// Folding a transform into the previous operation (core/model/fold.h) is an optimization of this form that keeps
// its outputs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/common/matrix.h"
#include "core/linear/rotation.h"
#include "core/quant/int_quant.h"
#include "core/quant/packed_weight.h"

namespace serq {

// The input transform T: X̂ = ((X · diag(scale)⁻¹)[:, order]) · R. Each part is optional (empty = absent).
struct InputTransform {
  Vector scale;              // s (d_in): column j of X is divided by s_j (SmoothQuant, SERQ flattening)
  std::vector<int> order;    // X̂[:, j] = X[:, order[j]] (SERQ's saliency order); a permutation of 0..d_in-1
  InputRotation rotation;    // applied last (QuaRot's online Hadamard)

  bool empty() const { return scale.size() == 0 && order.empty() && !rotation.enabled(); }
  // The same transform, part for part (linears of one input group built alike: their T(X) is one matrix).
  bool same_as(const InputTransform& other) const;
  // x ← T(x) in place (a permutation goes through a second matrix).
  void apply(Matrix& x) const;
  // out = T(x), resized to x's shape; scale and permutation in one pass over x.
  void apply(ConstMatrixRef x, Matrix& out) const;
  // The Gram matrix of T(X) from that of X (d_in × d_in): Ĥ = Tᵀ H T with T the matrix of the transform, so GPTQ
  // can use the Hessian of the inputs a transformed layer really sees.
  Eigen::MatrixXd transform_gram(const Eigen::MatrixXd& gram) const;
};

// Two factors, W ≈ W_main + B·A: Y += Q_i(Xq · Aᵀ) · Bᵀ.
struct LowRankCorrection {
  Matrix a;                     // A (k × d_in), fake-quantized with factor_quant
  Matrix b;                     // B (d_out × k), fake-quantized with factor_quant
  PackedWeight packed_a, packed_b;  // their stored form; empty when factor_quant keeps them in full precision
  QuantSpec factor_quant;       // how A and B were quantized (bits 16 = kept in full precision); for accounting
  QuantSpec intermediate_quant; // dynamic re-quantization of Xq·Aᵀ (per token); bits 16 = none

  int rank() const { return static_cast<int>(a.rows()); }
};

// SERQ's single matrix: Y += Xq[:, :r] · Rᵀ with R (d_out × r), fake-quantized with quant.
struct SalientCorrection {
  Matrix r;
  PackedWeight packed;  // R as stored; empty when R is kept in full precision
  QuantSpec quant;  // how R was quantized (symmetric per row over its r columns by default); for accounting

  int rank() const { return static_cast<int>(r.cols()); }
};

struct QuantLinear {
  std::string name;        // stable, e.g. "layers.3.mlp.down_proj" or "lm_head"
  Matrix weight;           // main weight (d_out × d_in) in the X̂ basis; dequantized values once quantized; may be
                           // empty once released, when `packed` alone holds it
  PackedWeight packed;     // the main weight as stored: codes once quantized (the weight quantizer writes both), or a
                           // 16-bit checkpoint's values as loaded
  InputTransform input;    // T
  QuantSpec act_quant;     // dynamic activation quantizer on the rows of X̂; bits = 16 means none
  QuantSpec weight_quant;  // how `weight` was quantized (bits = 16: full precision); for accounting
  LowRankCorrection low_rank;  // present when low_rank.rank() > 0
  SalientCorrection salient;   // present when salient.rank() > 0
  Vector bias;             // b (d_out) added to every row of Y; empty = none
  bool int_kernel = false;  // set by use_int_kernel(): a backend runs the main weight on integer codes
  std::string transform;   // what the method built, for result files, e.g. "rotation hadamard(64); online ..."

  int d_in() const { return static_cast<int>(weight.size() > 0 || packed.empty() ? weight.cols() : packed.cols()); }
  int d_out() const { return static_cast<int>(weight.size() > 0 || packed.empty() ? weight.rows() : packed.rows()); }

  // Frees the main weight's float values where `packed` holds them (a quantized layer, or 16-bit checkpoint values);
  // a backend then reads the stored form (main_weight()). restore_weight() brings them back, for a method or diagnostic that
  // edits or reads them; a full-precision stored form is dropped then, since the floats may change.
  void release_weight();
  void restore_weight();

  // The main weight's float values: `weight`, or `packed` dequantized into this thread's workspace (valid until the
  // thread's next call).
  const Matrix& main_weight() const;

  // The integer kernel (the CPU's int_gemm, the GPU's low-bit GEMM) for the main weight: it applies to an INT main
  // weight whose codes fit int8, read by INT activations in the same groups. use_int_kernel() chooses it (after
  // folding, which edits `packed`); a backend's resident copy (Backend::make_resident) lays the codes out for its
  // kernel, with SERQ's R as extra K where its packed form fits. A low-rank correction, or an R that does not fit,
  // stays a float GEMM on Xq.
  bool int_kernel_applies() const;
  void use_int_kernel();

  // Storage in bits, measured from what is stored: the packed main weight and correction factors (codes, scales,
  // zero points, folded row divisors), 16 bits per weight of whatever is kept in full precision, and 16 bits per
  // bias entry. Input scales and permutations are not counted: folded, they cost nothing.
  double storage_bits() const;
  // Parameters of the correction path (A and B, or R).
  std::int64_t extra_parameters() const;
  // The main weight plus its correction path as one d_out × d_in matrix in the X̂ basis (activation quantization
  // aside): what the layer applies to Q_a(T(X)).
  Matrix effective_weight() const;

};

}  // namespace serq
