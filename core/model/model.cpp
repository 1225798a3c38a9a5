// Model layout: allocation and the stable naming of linear layers.
#include "core/model/model.h"

#include <fmt/format.h>

namespace serq {
namespace {

QuantLinear make_linear(std::string name, int d_out, int d_in, bool allocate) {
  QuantLinear linear;
  linear.name = std::move(name);
  if (allocate) linear.weight = Matrix::Zero(d_out, d_in);
  return linear;
}

void restore_unquantized(QuantLinear& linear) {
  if (!linear.weight_quant.enabled()) linear.restore_weight();
}

}  // namespace

std::int64_t ModelConfig::parameter_count() const {
  const std::int64_t d = dim, h = hidden_dim, kv = kv_dim(), v = vocab_size;
  const std::int64_t per_layer = 2 * d + d * d * 2 + d * kv * 2 + 3 * d * h + (qkv_bias ? d + 2 * kv : 0);
  return v * d * (tied_embeddings ? 1 : 2) + n_layers * per_layer + d;
}

Model make_empty_model(const ModelConfig& config, bool allocate_linears) {
  Model model;
  model.config = config;
  const int d = config.dim, h = config.hidden_dim, kv = config.kv_dim();
  model.embed = Matrix::Zero(config.vocab_size, d);
  model.layers.resize(config.n_layers);
  for (int i = 0; i < config.n_layers; ++i) {
    DecoderLayer& layer = model.layers[i];
    const std::string prefix = fmt::format("layers.{}.", i);
    layer.attn_norm = Vector::Zero(d);
    layer.ffn_norm = Vector::Zero(d);
    layer.q_proj = make_linear(prefix + "self_attn.q_proj", d, d, allocate_linears);
    layer.k_proj = make_linear(prefix + "self_attn.k_proj", kv, d, allocate_linears);
    layer.v_proj = make_linear(prefix + "self_attn.v_proj", kv, d, allocate_linears);
    layer.o_proj = make_linear(prefix + "self_attn.o_proj", d, d, allocate_linears);
    layer.gate_proj = make_linear(prefix + "mlp.gate_proj", h, d, allocate_linears);
    layer.up_proj = make_linear(prefix + "mlp.up_proj", h, d, allocate_linears);
    layer.down_proj = make_linear(prefix + "mlp.down_proj", d, h, allocate_linears);
    if (config.qkv_bias) {
      layer.q_proj.bias = Vector::Zero(d);
      layer.k_proj.bias = Vector::Zero(kv);
      layer.v_proj.bias = Vector::Zero(kv);
    }
  }
  model.final_norm = Vector::Zero(d);
  model.lm_head = make_linear("lm_head", config.vocab_size, d, allocate_linears);
  return model;
}

void restore_weights(Model& model) {
  for (DecoderLayer& layer : model.layers) restore_layer_weights(layer);
  restore_head_weight(model);
}

void restore_layer_weights(DecoderLayer& layer) {
  for (QuantLinear* linear : layer.linears()) restore_unquantized(*linear);
}

void restore_head_weight(Model& model) { restore_unquantized(model.lm_head); }

void release_layer_weights(DecoderLayer& layer) {
  for (QuantLinear* linear : layer.linears()) linear->release_weight();
  release_layer_pages(layer);
}

void release_layer_pages(const DecoderLayer& layer) {
  for (const QuantLinear* linear : layer.linears()) linear->packed.release_pages();
}

std::vector<QuantLinear*> DecoderLayer::linears() {
  return {&q_proj, &k_proj, &v_proj, &o_proj, &gate_proj, &up_proj, &down_proj};
}

std::vector<const QuantLinear*> DecoderLayer::linears() const {
  return {&q_proj, &k_proj, &v_proj, &o_proj, &gate_proj, &up_proj, &down_proj};
}

std::vector<QuantLinear*> Model::linears() {
  std::vector<QuantLinear*> out;
  for (DecoderLayer& l : layers) {
    for (QuantLinear* p : l.linears()) out.push_back(p);
  }
  out.push_back(&lm_head);
  return out;
}

std::vector<const QuantLinear*> Model::linears() const {
  std::vector<const QuantLinear*> out;
  for (QuantLinear* p : const_cast<Model*>(this)->linears()) out.push_back(p);
  return out;
}

}  // namespace serq
