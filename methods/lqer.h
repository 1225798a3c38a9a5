// `lqer`: LQER: LoRC with quantized factors and a re-quantized intermediate.
#pragma once

#include "methods/method.h"

namespace serq {

class Lqer final : public Method {
 public:
  std::string name() const override { return "lqer"; }
  std::string describe() const override { return "LQER: LoRC with quantized factors and a re-quantized intermediate"; }
  std::vector<std::string> parameters() const override { return {"quant.rank", "quant.factor_bits", "quant.requant_intermediate"}; }
  bool needs_activation_stats() const override { return false; }
  MethodReport quantize(Model& model, const QuantParams& params, const Calibration& calibration) const override;
};

}  // namespace serq
