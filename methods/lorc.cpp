// `lorc`: the two-factor error reconstruction recipe of methods/low_rank.h.
#include "methods/lorc.h"

#include "methods/low_rank.h"

namespace serq {

MethodReport Lorc::quantize(Model& model, const QuantParams& params, const Calibration& calibration) const {
  return quantize_with_error_factors(model, params, calibration, {"lorc", false, false});
}

}  // namespace serq
