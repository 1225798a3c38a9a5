// `lorc`: LoRC, low-rank compensation (ZeroQuant-V2, Yao et al. 2023): the main weight plus a rank-k SVD of its
// quantization error, both factors kept in full precision.
#pragma once

#include "methods/low_rank.h"

namespace serq {

class LowRankCompensation final : public LowRankMethod {
 public:
  std::string name() const override { return "lorc"; }
  std::string describe() const override {
    return "LoRC: quantized weight plus a rank-k SVD of its error, factors in full precision";
  }
  std::vector<std::string> parameters() const override {
    return {"quant.rank", "quant.rank_allocation", "quant.rank_budget", "quant.svd", "quant.seed"};
  }
  LowRankRecipe recipe(const QuantParams& params) const override;
};

}  // namespace serq
