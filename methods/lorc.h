// `lorc`: ZeroQuant-V2 LoRC: SVD of the weight error W − Q(W) into two full-precision factors.
#pragma once

#include "methods/method.h"

namespace serq {

class Lorc final : public Method {
 public:
  std::string name() const override { return "lorc"; }
  std::string describe() const override { return "ZeroQuant-V2 LoRC: SVD of the weight error W − Q(W) into two full-precision factors"; }
  std::vector<std::string> parameters() const override { return {"quant.rank"}; }
  bool needs_activation_stats() const override { return false; }
  MethodReport quantize(Model& model, const QuantParams& params, const Calibration& calibration) const override;
};

}  // namespace serq
