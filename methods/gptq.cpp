// `gptq`: the rtn method with the main weight always quantized by GPTQ (gptq.* options as given).
#include "methods/gptq.h"

#include "methods/rtn.h"

namespace serq {

void Gptq::quantize_linear(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) const {
  QuantParams gptq_params = params;
  gptq_params.weight_quantizer = WeightQuantizerKind::gptq;
  RoundToNearest().quantize_linear(layer, gptq_params, calibration);
}

}  // namespace serq
