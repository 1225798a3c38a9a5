// Offline folding (core/linear/fold.h): input scales move into RMSNorm γ or the previous linear's output rows,
// input permutations into the previous linear's output rows, and the folded parts leave the InputTransform.
#include "core/linear/fold.h"

#include <fmt/format.h>

#include <cassert>
#include <initializer_list>

#include "core/common/error.h"

namespace serq {
namespace {

void check_scale(const QuantLinear& layer) {
  SERQ_CHECK(layer.input.scale.size() == layer.d_in(),
             "{}: input scale has {} channels but the layer takes d_in = {}; give one scale per input channel",
             layer.name, layer.input.scale.size(), layer.d_in());
}

void check_order(const QuantLinear& layer) {
  const std::vector<int>& order = layer.input.order;
  SERQ_CHECK(static_cast<int>(order.size()) == layer.d_in(),
             "{}: input order has {} channels but the layer takes d_in = {}; give a permutation of 0..{}", layer.name,
             order.size(), layer.d_in(), layer.d_in() - 1);
  std::vector<bool> seen(order.size(), false);
  for (const int channel : order) {
    SERQ_CHECK(channel >= 0 && channel < layer.d_in() && !seen[static_cast<std::size_t>(channel)],
               "{}: input order names channel {} twice or out of range; give a permutation of 0..{}", layer.name,
               channel, layer.d_in() - 1);
    seen[static_cast<std::size_t>(channel)] = true;
  }
}

// Output j of the layer (row j of the main weight, of B, of R, and bias entry j) is divided by s_j.
// Packed forms carry the divisor and dequantize to the same values; released floats (empty) have nothing to divide.
void divide_output_rows(QuantLinear& layer, const Vector& s) {
  if (layer.weight.size() > 0) layer.weight.array().colwise() /= s.array();
  if (!layer.packed.empty()) layer.packed.divide_rows(s);
  if (layer.low_rank.rank() > 0) layer.low_rank.b.array().colwise() /= s.array();
  if (!layer.low_rank.packed_b.empty()) layer.low_rank.packed_b.divide_rows(s);
  if (layer.salient.rank() > 0) layer.salient.r.array().colwise() /= s.array();
  if (!layer.salient.packed.empty()) layer.salient.packed.divide_rows(s);
  if (layer.bias.size() > 0) layer.bias.array() /= s.array();
}

Matrix permute_rows(const Matrix& m, const std::vector<int>& order) {
  Matrix permuted(m.rows(), m.cols());
  for (std::size_t j = 0; j < order.size(); ++j) permuted.row(static_cast<Eigen::Index>(j)) = m.row(order[j]);
  return permuted;
}

// Output row j of the layer becomes its old output row order[j], corrections and bias included.
void permute_output_rows(QuantLinear& layer, const std::vector<int>& order) {
  if (layer.weight.size() > 0) layer.weight = permute_rows(layer.weight, order);
  layer.packed.permute_rows(order);
  if (layer.low_rank.rank() > 0) layer.low_rank.b = permute_rows(layer.low_rank.b, order);
  layer.low_rank.packed_b.permute_rows(order);
  if (layer.salient.rank() > 0) layer.salient.r = permute_rows(layer.salient.r, order);
  layer.salient.packed.permute_rows(order);
  if (layer.bias.size() > 0) layer.bias = Vector(permute_rows(layer.bias, order));
}

// The layers of a group share one RMSNorm output; their common scale folds into its γ.
bool fold_scale_into_norm(std::initializer_list<QuantLinear*> group, Vector& gamma) {
  const Vector& s = (*group.begin())->input.scale;
  for (const QuantLinear* layer : group) {
    if (layer->input.scale.size() == 0) return false;
    check_scale(*layer);
    if (layer->input.scale != s) return false;
  }
  gamma.array() /= s.array();
  for (QuantLinear* layer : group) layer->input.scale.resize(0);
  return true;
}

// The layer's input is `producer`'s output, channel for channel: its scale folds into the producer's rows.
bool fold_scale_into_rows(QuantLinear& layer, QuantLinear& producer) {
  if (layer.input.scale.size() == 0) return false;
  check_scale(layer);
  divide_output_rows(producer, layer.input.scale);
  layer.input.scale.resize(0);
  return true;
}

// The layer's input channels are the producers' output channels (one producer, or gate and up through the
// elementwise SwiGLU product): the permutation folds into the producers' rows. Callers fold the scale first, so
// the permutation is what the transform applies first.
bool fold_order_into_rows(QuantLinear& layer, std::initializer_list<QuantLinear*> producers) {
  assert(layer.input.scale.size() == 0);
  if (layer.input.order.empty()) return false;
  check_order(layer);
  for (QuantLinear* producer : producers) permute_output_rows(*producer, layer.input.order);
  layer.input.order.clear();
  return true;
}

bool keeps_channels_in_heads(const std::vector<int>& order, int head_dim) {
  for (std::size_t j = 0; j < order.size(); ++j)
    if (order[j] / head_dim != static_cast<int>(j) / head_dim) return false;
  return true;
}

}  // namespace

std::vector<std::string> fold_input_transforms(Model& model) {
  const ModelConfig& config = model.config;
  std::vector<std::string> folds;
  for (std::size_t i = 0; i < model.layers.size(); ++i) {
    DecoderLayer& layer = model.layers[i];
    if (fold_scale_into_norm({&layer.q_proj, &layer.k_proj, &layer.v_proj}, layer.attn_norm))
      folds.push_back(fmt::format("layers.{}.self_attn.q_proj/k_proj/v_proj: scale -> attn_norm γ", i));
    if (fold_scale_into_norm({&layer.gate_proj, &layer.up_proj}, layer.ffn_norm))
      folds.push_back(fmt::format("layers.{}.mlp.gate_proj/up_proj: scale -> ffn_norm γ", i));
    if (fold_scale_into_rows(layer.down_proj, layer.up_proj))
      folds.push_back(layer.down_proj.name + ": scale -> up_proj rows");
    if (fold_order_into_rows(layer.down_proj, {&layer.gate_proj, &layer.up_proj}))
      folds.push_back(layer.down_proj.name + ": order -> gate_proj and up_proj rows");
    // With GQA a value channel feeds several heads' attention outputs, which o_proj may scale or order differently.
    if (config.n_heads != config.n_kv_heads) continue;
    if (fold_scale_into_rows(layer.o_proj, layer.v_proj))
      folds.push_back(layer.o_proj.name + ": scale -> v_proj rows");
    if (keeps_channels_in_heads(layer.o_proj.input.order, config.head_dim()) &&
        fold_order_into_rows(layer.o_proj, {&layer.v_proj}))
      folds.push_back(layer.o_proj.name + ": order -> v_proj rows");
  }
  return folds;
}

}  // namespace serq
