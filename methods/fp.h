// `fp`: the full-precision reference; leaves the model untouched.
#pragma once

#include "methods/method.h"

namespace serq {

class FullPrecision final : public Method {
 public:
  std::string name() const override { return "fp"; }
  std::string describe() const override { return "full precision (float32), the reference every method is compared to"; }
  bool quantizes() const override { return false; }
  MethodReport quantize(Model& model, const QuantParams& params, const Calibration& calibration) const override;
};

}  // namespace serq
