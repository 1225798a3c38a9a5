// `rtn`: round-to-nearest INT weights (per channel or group) and dynamic INT activations (per token or group).
#pragma once

#include "methods/method.h"

namespace serq {

class RoundToNearest final : public Method {
 public:
  std::string name() const override { return "rtn"; }
  std::string describe() const override { return "round-to-nearest INT weights and dynamic per-token activations"; }
  MethodReport quantize(Model& model, const QuantParams& params) const override;
};

}  // namespace serq
