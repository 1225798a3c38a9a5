// `gptq`: the rtn method with the main weight always quantized by GPTQ (gptq.* options as given).
#include "methods/gptq.h"

#include "methods/rtn.h"

namespace serq {

MethodReport Gptq::quantize(Model& model, const QuantParams& params, const Calibration& calibration) const {
  QuantParams gptq_params = params;
  gptq_params.weight_quantizer = WeightQuantizerKind::gptq;
  return RoundToNearest().quantize(model, gptq_params, calibration);
}

}  // namespace serq
