// `l2qer`: L²QER (Zhang et al. 2024, arXiv 2402.02446): LQER with the weight error weighted by the activations
// before the SVD, so the rank-k budget goes to the input channels that carry large activations.
#pragma once

#include "methods/low_rank.h"

namespace serq {

class ActivationScaledErrorReconstruction final : public LowRankMethod {
 public:
  std::string name() const override { return "l2qer"; }
  std::string describe() const override {
    return "L2QER: LQER with the error weighted by the calibration mean |x| of each input channel before the SVD";
  }
  std::vector<std::string> parameters() const override {
    return {"quant.rank",        "quant.rank_allocation",      "quant.rank_budget", "quant.factor_bits",
            "quant.requant_intermediate", "quant.svd", "quant.seed"};
  }
  bool needs_activation_stats() const override { return true; }
  LowRankRecipe recipe(const QuantParams& params) const override;
};

}  // namespace serq
