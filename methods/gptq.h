// `gptq`: GPTQ weights (Frantar et al., ICLR 2023) and dynamic activations, whatever quant.weight_quantizer says.
#pragma once

#include "methods/method.h"

namespace serq {

class Gptq final : public Method {
 public:
  std::string name() const override { return "gptq"; }
  std::string describe() const override {
    return "GPTQ weights (Hessian-aware error feedback) and dynamic per-token activations";
  }
  bool requires_gptq() const override { return true; }
  void quantize_linear(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) const override;
};

}  // namespace serq
