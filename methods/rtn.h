// `rtn`: round-to-nearest weights (per channel or group) and dynamic activations (per token or group), INT or MXFP4.
#pragma once

#include "methods/method.h"

namespace serq {

class RoundToNearest final : public Method {
 public:
  std::string name() const override { return "rtn"; }
  std::string describe() const override { return "round-to-nearest weights and dynamic per-token activations"; }
  void quantize_linear(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) const override;
};

}  // namespace serq
