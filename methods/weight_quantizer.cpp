// quantize_main_weight: RTN through fake_quant_rows, or GPTQ with the layer's transformed input Hessian.
#include "methods/weight_quantizer.h"

#include "core/common/error.h"

namespace serq {

void quantize_main_weight(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) {
  layer.weight_quant = params.weight;
  if (!params.weight.enabled()) return;
  try {
    switch (params.weight_quantizer) {
      case WeightQuantizerKind::rtn:
        fake_quant_rows(layer.weight, params.weight);
        return;
      case WeightQuantizerKind::gptq:
        gptq_quantize(layer.weight, layer.input.transform_gram(calibration.at(layer.name).hessian), params.weight,
                      params.gptq, layer.name);
        return;
    }
  } catch (const Error& e) {
    fail("{}: weight: {}", layer.name, e.what());
  }
}

}  // namespace serq
