// `rtn`: quantizes each weight in place with the run's weight quantizer (RTN by default, or GPTQ) and attaches the
// dynamic activation quantizer. No input transform, no correction.
#include "methods/rtn.h"

#include "methods/weight_quantizer.h"

namespace serq {

void RoundToNearest::quantize_linear(QuantLinear& layer, const QuantParams& params,
                                     const Calibration& calibration) const {
  quantize_main_weight(layer, params, calibration);
  layer.act_quant = params.activation;
}

}  // namespace serq
