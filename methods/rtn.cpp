// `rtn`: quantizes each weight in place with the run's weight quantizer (RTN by default, or GPTQ) and attaches the
// dynamic activation quantizer. No input transform, no correction.
#include "methods/rtn.h"

#include "methods/weight_quantizer.h"

namespace serq {

MethodReport RoundToNearest::quantize(Model& model, const QuantParams& params, const Calibration& calibration) const {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<QuantLinear*> layers = layers_to_quantize(model, params);
  for (QuantLinear* layer : layers) {
    quantize_main_weight(*layer, params, calibration);
    layer->act_quant = params.activation;
  }
  return summarize(layers, start);
}

}  // namespace serq
