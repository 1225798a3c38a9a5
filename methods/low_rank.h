// The two-factor error correction shared by `lorc`, `lqer` and `l2qer`: the main weight is quantized as usual, and
// its error E = W − main (d_out × d_in) is approximated at rank k by B·A, A (k × d_in), B (d_out × k), from a
// truncated SVD (Eckart–Young). The layer then computes Y = Q(X)·mainᵀ + Q_i(Q(X)·Aᵀ)·Bᵀ
// (core/linear/quant_linear.h).
//
// The methods differ only in their LowRankRecipe: how Σ_k is shared between the factors, whether the error is
// weighted by the calibration activations before the SVD (L2QER), and the formats of the factors and of the
// intermediate Q(X)·Aᵀ.
#pragma once

#include <algorithm>

#include <string>

#include "core/linear/quant_linear.h"
#include "methods/method.h"

namespace serq {

// How the singular values Σ_k of the truncated SVD U_k Σ_k V_kᵀ are shared between the factors.
enum class SingularValueSplit {
  balanced,  // B = U_k Σ_k^½, A = Σ_k^½ V_kᵀ (LoRC, LQER): both factors in the same range
  into_b,    // B = U_k Σ_k,   A = V_kᵀ       (L2QER, as in the paper)
};

// What a two-factor method builds for each layer.
struct LowRankRecipe {
  std::string method;            // "lorc", "lqer", "l2qer": the start of each layer's transform text
  int rank = 0;                  // k; 0 = no correction
  SingularValueSplit split = SingularValueSplit::balanced;
  bool activation_weighted = false;  // weight E's columns by the calibration mean |x_j| before the SVD (L2QER)
  QuantSpec factor_quant;        // format of A and B; bits 16 = kept in full precision
  QuantSpec intermediate_quant;  // per-token re-quantization of Q(X)·Aᵀ; bits 16 = none
};

// The rank-k factors of E: with s the per-channel weights (empty = all 1), the rank-k truncated SVD of E·diag(s)
// (core/linear/truncated_svd.h, in double) is split as `split` says, then A ← A·diag(s)⁻¹. B·A minimizes
// ||(E − BA)·diag(s)||_F over rank-k matrices (exactly with the exact SVD; the randomized one comes within a small
// fraction of it). The factors are returned in full precision (factor_quant and intermediate_quant off).
// 0 ≤ rank ≤ min(d_in, d_out) (an assert; quantize_low_rank_layer checks it for the user).
LowRankCorrection low_rank_factors(const Matrix& error, int rank, const Eigen::VectorXd& scale,
                                   SingularValueSplit split, const SvdOptions& svd = {});

// LQER's factor format for a run: factor_bits (16 = full precision), symmetric, the weights' group size. MXFP4
// when the weights are MXFP4 and factor_bits is 4; INT otherwise (MXFP4 has no other width, and INT-b factors
// keep the bit budget the user asked for).
QuantSpec lqer_factor_quant(const QuantParams& params);
// LQER's re-quantization of the intermediate Q(X)·Aᵀ: INT factor_bits per token (one group of k values), with the
// activations' symmetry; off when requant_intermediate is false or factor_bits is 16.
QuantSpec lqer_intermediate_quant(const QuantParams& params);

// Quantizes layer.weight with the run's weight quantizer (methods/weight_quantizer.h), attaches the recipe's
// correction of its error (quant.svd's SVD, its sketch seeded by quant.seed and the layer's name) and the run's
// activation quantizer, and describes it in layer.transform. A rank outside
// 0..min(d_in, d_out) is a serq::Error naming the layer, raised before the layer is changed.
void quantize_low_rank_layer(QuantLinear& layer, const LowRankRecipe& recipe, const QuantParams& params,
                             const Calibration& calibration);

// A method whose layers are quantize_low_rank_layer with its recipe. prepare_model() checks the recipe against every
// layer before any changes, so a bad quant.rank or quant.factor_bits leaves the model as it was.
class LowRankMethod : public Method {
 public:
  virtual LowRankRecipe recipe(const QuantParams& params) const = 0;
  void prepare_model(Model& model, const QuantParams& params, const Calibration& calibration) const final;
  void quantize_linear(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) const final;
  int max_rank(const QuantLinear& layer) const final { return std::min(layer.d_in(), layer.d_out()); }
};

}  // namespace serq
