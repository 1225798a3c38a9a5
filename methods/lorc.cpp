// `lorc`: the plain truncated SVD of the error, Σ split evenly (B = U_k Σ_k^½, A = Σ_k^½ V_kᵀ), no quantization
// of the factors or of the intermediate.
#include "methods/lorc.h"

namespace serq {

LowRankRecipe LowRankCompensation::recipe(const QuantParams& params) const {
  LowRankRecipe recipe;
  recipe.method = name();
  recipe.rank = params.rank;
  recipe.split = SingularValueSplit::balanced;
  return recipe;
}

}  // namespace serq
