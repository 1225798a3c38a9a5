// The shared recipe of the two-factor error reconstruction methods (lorc, lqer, l2qer): quantize the main weight,
// factor its error E = W − Q(W) into B·A by a truncated SVD (optionally of the activation-scaled error), quantize the
// factors, and attach them to the layer as a LowRankCorrection.
#pragma once

#include <string>

#include "methods/method.h"

namespace serq {

struct LowRankRecipe {
  std::string method;             // for messages and the layer's transform string
  bool quantized_factors = false; // factors and intermediate in params.factor_bits (lqer, l2qer); else full precision
  bool activation_scaled = false; // SVD of E·diag(s), s = normalized calibration mean |x| (l2qer)
};

// B (d_out × k) and A (k × d_in) with E ≈ B·A: the best rank-k approximation of E·diag(s), mapped back by
// diag(s)⁻¹ (s empty: s = 1). The singular values go to B when s is given (L²QER's A = diag(s)⁻¹U_k, B = Σ_kV_kᵀ
// in the paper's orientation), and are split evenly (√Σ on each side) otherwise (LoRC).
struct ErrorFactors {
  Matrix a, b;
};
ErrorFactors factor_error(const Matrix& error, int rank, const Vector& channel_scale);

// L²QER's activation-induced scale: mean |x_j| divided by its geometric mean of min and max (√(min·max)), so the
// scale is centred around 1 whatever the layer's activation magnitude; channels never seen (0) get the minimum
// non-zero value.
Vector activation_scale(const Eigen::VectorXd& mean_abs, const std::string& layer);

// Quantizes every layer of layers_to_quantize with the recipe and returns the report.
MethodReport quantize_with_error_factors(Model& model, const QuantParams& params, const Calibration& calibration,
                                         const LowRankRecipe& recipe);

}  // namespace serq
