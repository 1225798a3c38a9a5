// `rtn`: fake-quantizes each weight in place and attaches the dynamic activation quantizer.
#include "methods/rtn.h"

#include <chrono>

namespace serq {

MethodReport RoundToNearest::quantize(Model& model, const QuantParams& params) const {
  const auto start = std::chrono::steady_clock::now();
  MethodReport report;
  double bits = 0.0;
  for (QuantLinear* layer : layers_to_quantize(model, params)) {
    if (params.weight.enabled()) fake_quant_rows(layer->weight, params.weight);
    layer->weight_quant = params.weight;
    layer->act_quant = params.activation;
    const std::int64_t n = layer->weight.size();
    bits += bits_per_weight(params.weight, layer->d_out(), layer->d_in()) * static_cast<double>(n);
    report.quantized_weights += n;
  }
  report.bits_per_weight = report.quantized_weights ? bits / static_cast<double>(report.quantized_weights) : 32.0;
  report.quantize_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace serq
