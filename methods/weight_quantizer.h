// The weight quantizer every method uses for its main weight: round-to-nearest, or GPTQ with the Hessian of the
// inputs the layer really sees (the calibration Gram matrix carried through the layer's InputTransform).
#pragma once

#include "methods/method.h"

namespace serq {

// Quantizes layer.weight (already in the X̂ basis of layer.input) with params.weight (INT scales as IEEE halves,
// stored_weight_spec), by params.weight_quantizer: layer.packed holds the codes and layer.weight their values.
// Sets layer.weight_quant. GPTQ reads calibration.at(layer.name).hessian (raw inputs) and transforms it with
// layer.input.transform_gram; it is collected only when params.weight_quantizer is gptq. Advances params.progress.
void quantize_main_weight(QuantLinear& layer, const QuantParams& params, const Calibration& calibration);

// Whether the run's main weights go through GPTQ, and so something reads Hessians: the method quantizes, the weights
// are quantized, and params.weight_quantizer is gptq.
bool uses_gptq(const Method& method, const QuantParams& params);

}  // namespace serq
