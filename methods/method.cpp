// Helpers shared by the methods: which layers to quantize, calibration lookup, the report of a quantized model.
#include "methods/method.h"

#include <algorithm>

#include "core/common/error.h"

namespace serq {

const ChannelStats& Calibration::at(const std::string& layer) const {
  const auto found = stats.find(layer);
  SERQ_CHECK(found != stats.end(), "{}: no calibration statistics were collected for this layer (a bug: the method "
             "must say what it needs in needs_activation_stats())", layer);
  return found->second;
}

bool QuantParams::skips(std::string_view layer) const {
  const auto rule = matching_override(overrides, layer);
  return rule && overrides[*rule].skip;
}

QuantParams QuantParams::for_layer(std::string_view layer) const {
  const auto index = matching_override(overrides, layer);
  QuantParams p = index ? with_rule(overrides[*index]) : *this;
  p.overrides.clear();
  const auto allocated = layer_ranks.find(std::string(layer));
  if (allocated != layer_ranks.end() && !(index && overrides[*index].rank)) p.rank = allocated->second;
  return p;
}

QuantParams QuantParams::with_rule(const LayerOverride& rule) const {
  QuantParams p = *this;
  p.overrides.clear();
  if (rule.w_bits) p.weight.bits = *rule.w_bits;
  if (rule.a_bits) p.activation.bits = *rule.a_bits;
  if (rule.group_size) p.weight.group_size = p.activation.group_size = *rule.group_size;
  if (rule.a_group_size) p.activation.group_size = *rule.a_group_size;
  if (rule.format) {
    p.weight.format = p.activation.format = *rule.format == "mxfp4" ? NumberFormat::mxfp4 : NumberFormat::integer;
  }
  if (rule.rank) p.rank = *rule.rank;
  if (rule.weight_quantizer) {
    p.weight_quantizer = *rule.weight_quantizer == "gptq" ? WeightQuantizerKind::gptq : WeightQuantizerKind::rtn;
  }
  return p;
}

bool QuantParams::gptq_anywhere() const {
  if (weight.enabled() && weight_quantizer == WeightQuantizerKind::gptq) return true;
  return std::any_of(overrides.begin(), overrides.end(), [&](const LayerOverride& rule) {
    const bool enabled = rule.w_bits ? *rule.w_bits < 16 : weight.enabled();
    return !rule.skip && enabled && rule.weight_quantizer == "gptq";
  });
}

void quantize_planned(const Method& method, QuantLinear& layer, const QuantParams& params,
                      const Calibration& calibration) {
  if (params.skips(layer.name)) {
    if (params.progress) params.progress->advance(1);
    return;
  }
  const bool planned = !params.overrides.empty() || !params.layer_ranks.empty();
  method.quantize_linear(layer, planned ? params.for_layer(layer.name) : params, calibration);
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
    for (QuantLinear* linear : layer.linears()) quantize_planned(*this, *linear, params, calibration);
    if (params.release_floats) release_layer_weights(layer);
    release_layer_pages(layer);
  }
  restore_head_weight(model);
  prepare_head(model, params, calibration);
  if (params.quantize_lm_head) quantize_planned(*this, model.lm_head, params, calibration);
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
