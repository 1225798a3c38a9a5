// Helpers shared by the methods: which layers to quantize, calibration lookup, the report of a quantized model.
#include "methods/method.h"

#include "core/common/error.h"

namespace serq {

const ChannelStats& Calibration::at(const std::string& layer) const {
  const auto found = stats.find(layer);
  SERQ_CHECK(found != stats.end(), "{}: no calibration statistics were collected for this layer (a bug: the method "
             "must say what it needs in needs_activation_stats())", layer);
  return found->second;
}

std::vector<QuantLinear*> layers_to_quantize(Model& model, const QuantParams& params) {
  std::vector<QuantLinear*> layers = model.linears();
  if (!params.quantize_lm_head) layers.pop_back();  // lm_head is last in forward order
  return layers;
}

void Method::prepare_model(Model&, const QuantParams&, const Calibration&) const {}
void Method::prepare_layer(Model&, int, const QuantParams&, const Calibration&) const {}
void Method::prepare_head(Model&, const QuantParams&, const Calibration&) const {}

void Method::prepare(Model& model, const QuantParams& params, const Calibration& calibration) const {
  prepare_model(model, params, calibration);
  for (int i = 0; i < model.config.n_layers; ++i) prepare_layer(model, i, params, calibration);
  prepare_head(model, params, calibration);
}

MethodReport Method::quantize(Model& model, const QuantParams& params, const Calibration& calibration) const {
  if (!quantizes()) return MethodReport{};
  const auto start = std::chrono::steady_clock::now();
  prepare_model(model, params, calibration);
  for (int i = 0; i < model.config.n_layers; ++i) {
    DecoderLayer& layer = model.layers[static_cast<std::size_t>(i)];
    restore_layer_weights(layer);  // methods edit float weights
    prepare_layer(model, i, params, calibration);
    for (QuantLinear* linear : layer.linears()) quantize_linear(*linear, params, calibration);
    if (params.release_floats) release_layer_weights(layer);
    release_layer_pages(layer);
  }
  restore_head_weight(model);
  prepare_head(model, params, calibration);
  if (params.quantize_lm_head) quantize_linear(model.lm_head, params, calibration);
  return summarize(layers_to_quantize(model, params), start);
}

MethodReport summarize(const std::vector<QuantLinear*>& layers, std::chrono::steady_clock::time_point start) {
  MethodReport report;
  double bits = 0.0;
  for (const QuantLinear* layer : layers) {
    bits += layer->storage_bits();
    report.quantized_weights += static_cast<std::int64_t>(layer->d_out()) * layer->d_in();
    report.extra_parameters += layer->extra_parameters();
  }
  if (report.quantized_weights > 0) report.bits_per_weight = bits / static_cast<double>(report.quantized_weights);
  report.quantize_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace serq
