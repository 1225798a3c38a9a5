// `lqer`: LQER, low-rank quantization error reconstruction (Zhang et al. 2024, arXiv 2402.02446): LoRC's rank-k SVD
// of the weight error with the factors quantized (quant.factor_bits) and the intermediate Q(X)·Aᵀ re-quantized per
// token (quant.requant_intermediate).
#pragma once

#include "methods/low_rank.h"

namespace serq {

class LowRankErrorReconstruction final : public LowRankMethod {
 public:
  std::string name() const override { return "lqer"; }
  std::string describe() const override {
    return "LQER: quantized weight plus a rank-k SVD of its error, factors and intermediate quantized";
  }
  std::vector<std::string> parameters() const override {
    return {"quant.rank",        "quant.rank_allocation",      "quant.rank_budget", "quant.factor_bits",
            "quant.requant_intermediate", "quant.svd", "quant.seed"};
  }
  LowRankRecipe recipe(const QuantParams& params) const override;
};

}  // namespace serq
