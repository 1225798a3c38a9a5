// `lqer`: the two-factor error reconstruction recipe of methods/low_rank.h.
#include "methods/lqer.h"

#include "methods/low_rank.h"

namespace serq {

MethodReport Lqer::quantize(Model& model, const QuantParams& params, const Calibration& calibration) const {
  return quantize_with_error_factors(model, params, calibration, {"lqer", true, false});
}

}  // namespace serq
