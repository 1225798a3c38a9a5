// `l2qer`: the two-factor error reconstruction recipe of methods/low_rank.h.
#include "methods/l2qer.h"

#include "methods/low_rank.h"

namespace serq {

MethodReport L2qer::quantize(Model& model, const QuantParams& params, const Calibration& calibration) const {
  return quantize_with_error_factors(model, params, calibration, {"l2qer", true, true});
}

}  // namespace serq
