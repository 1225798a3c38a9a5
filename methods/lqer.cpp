// `lqer`: the plain truncated SVD of the error, Σ split evenly, factors and intermediate in LQER's formats
// (methods/low_rank.h: lqer_factor_quant, lqer_intermediate_quant).
#include "methods/lqer.h"

namespace serq {

LowRankRecipe LowRankErrorReconstruction::recipe(const QuantParams& params) const {
  LowRankRecipe recipe;
  recipe.method = name();
  recipe.rank = params.rank;
  recipe.split = SingularValueSplit::balanced;
  recipe.factor_quant = lqer_factor_quant(params);
  recipe.intermediate_quant = lqer_intermediate_quant(params);
  return recipe;
}

}  // namespace serq
