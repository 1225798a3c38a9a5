// Model layout: allocation and the stable naming of linear layers.
#include "core/model/model.h"

#include <fmt/format.h>

#include <cstdlib>
#include <utility>

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

bool ModelConfig::has_bias(LinearId id) const {
  for (const LinearId biased : family_desc(family).biased) {
    if (biased == id) return true;
  }
  return false;
}

std::int64_t ModelConfig::layer_linear_weights() const {
  std::int64_t weights = 0;
  for (const LinearDesc& l : layer_linears()) weights += std::int64_t{width(*this, l.d_out)} * width(*this, l.d_in);
  return weights;
}

std::int64_t ModelConfig::parameter_count() const {
  std::int64_t per_layer = layer_linear_weights() + std::int64_t{dim} * static_cast<std::int64_t>(layer_norms().size());
  for (const LinearDesc& l : layer_linears()) {
    if (has_bias(l.id)) per_layer += width(*this, l.d_out);
  }
  return std::int64_t{vocab_size} * dim * (tied_embeddings ? 1 : 2) + n_layers * per_layer + dim;
}

Model make_empty_model(const ModelConfig& config, bool allocate_linears) {
  Model model;
  model.config = config;
  model.embed = Matrix::Zero(config.vocab_size, config.dim);
  model.layers.resize(config.n_layers);
  for (int i = 0; i < config.n_layers; ++i) {
    DecoderLayer& layer = model.layers[i];
    for (const NormDesc& n : layer_norms()) layer.norm(n.id) = Vector::Zero(config.dim);
    for (const LinearDesc& l : layer_linears()) {
      QuantLinear& linear = layer.linear(l.id);
      linear = make_linear(fmt::format("layers.{}.{}", i, l.name), width(config, l.d_out), width(config, l.d_in),
                           allocate_linears);
      if (config.has_bias(l.id)) linear.bias = Vector::Zero(width(config, l.d_out));
    }
  }
  model.final_norm = Vector::Zero(config.dim);
  model.lm_head = make_linear("lm_head", config.vocab_size, config.dim, allocate_linears);
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

QuantLinear& DecoderLayer::linear(LinearId id) {
  return const_cast<QuantLinear&>(std::as_const(*this).linear(id));
}

const QuantLinear& DecoderLayer::linear(LinearId id) const {
  switch (id) {
    case LinearId::q: return q_proj;
    case LinearId::k: return k_proj;
    case LinearId::v: return v_proj;
    case LinearId::o: return o_proj;
    case LinearId::gate: return gate_proj;
    case LinearId::up: return up_proj;
    case LinearId::down: return down_proj;
  }
  std::abort();
}

Vector& DecoderLayer::norm(NormId id) { return id == NormId::attn ? attn_norm : ffn_norm; }

const Vector& DecoderLayer::norm(NormId id) const { return id == NormId::attn ? attn_norm : ffn_norm; }

std::vector<QuantLinear*> DecoderLayer::linears() {
  std::vector<QuantLinear*> out;
  for (const LinearDesc& l : layer_linears()) out.push_back(&linear(l.id));
  return out;
}

std::vector<const QuantLinear*> DecoderLayer::linears() const {
  std::vector<const QuantLinear*> out;
  for (const LinearDesc& l : layer_linears()) out.push_back(&linear(l.id));
  return out;
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
