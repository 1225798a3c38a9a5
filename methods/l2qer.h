// `l2qer`: L2QER: LQER on the error scaled by the calibration mean |x| per input channel.
#pragma once

#include "methods/method.h"

namespace serq {

class L2qer final : public Method {
 public:
  std::string name() const override { return "l2qer"; }
  std::string describe() const override { return "L2QER: LQER on the error scaled by the calibration mean |x| per input channel"; }
  std::vector<std::string> parameters() const override { return {"quant.rank", "quant.factor_bits", "quant.requant_intermediate"}; }
  bool needs_activation_stats() const override { return true; }
  MethodReport quantize(Model& model, const QuantParams& params, const Calibration& calibration) const override;
};

}  // namespace serq
