// `fp`: the full-precision reference; leaves the model untouched.
#pragma once

#include "methods/method.h"

namespace serq {

class FullPrecision final : public Method {
 public:
  std::string name() const override { return "fp"; }
  std::string describe() const override { return "full precision (float32), the reference every method is compared to"; }
  bool quantizes() const override { return false; }
  void quantize_linear(QuantLinear&, const QuantParams&, const Calibration&) const override {}
};

}  // namespace serq
