// `l2qer`: SVD of E·diag(s), s the normalized calibration mean |x_j|, with B = U_k Σ_k and A = V_kᵀ·diag(s)⁻¹
// (the paper's A = diag(s)⁻¹U_k, B = Σ_kV_kᵀ in its transposed orientation); factors and intermediate as in lqer.
#include "methods/l2qer.h"

namespace serq {

LowRankRecipe ActivationScaledErrorReconstruction::recipe(const QuantParams& params) const {
  LowRankRecipe recipe;
  recipe.method = name();
  recipe.rank = params.rank;
  recipe.split = SingularValueSplit::into_b;
  recipe.activation_weighted = true;
  recipe.factor_quant = lqer_factor_quant(params);
  recipe.intermediate_quant = lqer_intermediate_quant(params);
  return recipe;
}

}  // namespace serq
