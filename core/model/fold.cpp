// Offline folding (core/model/fold.h): input scales move into RMSNorm γ or the previous linear's output rows,
// input permutations into the previous linear's output rows, and the folded parts leave the InputTransform.
#include "core/model/fold.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cassert>

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
bool fold_scale_into_norm(const std::vector<QuantLinear*>& group, Vector& gamma) {
  const Vector& s = group.front()->input.scale;
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
bool fold_order_into_rows(QuantLinear& layer, const std::vector<QuantLinear*>& producers) {
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

// A linear's name without its layer and block: "q_proj".
std::string short_name(const QuantLinear& linear) { return linear.name.substr(linear.name.rfind('.') + 1); }

// "layers.0.self_attn.q_proj/k_proj/v_proj": the first linear's full name, then the others' last parts.
std::string names(const std::vector<QuantLinear*>& linears) {
  std::string out = linears.front()->name;
  for (std::size_t i = 1; i < linears.size(); ++i) out += "/" + short_name(*linears[i]);
  return out;
}

}  // namespace

std::vector<std::string> fold_input_transforms(Model& model) {
  const ModelConfig& config = model.config;
  std::vector<std::string> folds;
  for (DecoderLayer& layer : model.layers) {
    for (const InputGroupDesc& group : layer_input_groups_desc()) {
      std::vector<QuantLinear*> readers, producers;
      for (const LinearId id : group.readers) readers.push_back(&layer.linear(id));
      for (const LinearId id : group.producers) producers.push_back(&layer.linear(id));
      if (group.norm) {
        const char* norm = norm_desc(*group.norm).name;
        if (fold_scale_into_norm(readers, layer.norm(*group.norm)))
          folds.push_back(fmt::format("{}: scale -> {} γ", names(readers), norm));
        continue;
      }
      // With GQA a value channel feeds several heads' attention outputs, which o_proj may scale or order differently.
      if (group.through_attention && config.n_heads != config.n_kv_heads) continue;
      assert(readers.size() == 1 && group.scaled_producer);
      QuantLinear& reader = *readers.front();
      QuantLinear& scaled = layer.linear(*group.scaled_producer);
      if (fold_scale_into_rows(reader, scaled))
        folds.push_back(fmt::format("{}: scale -> {} rows", reader.name, short_name(scaled)));
      const bool order_folds =
          !group.through_attention || keeps_channels_in_heads(reader.input.order, config.head_dim());
      if (order_folds && fold_order_into_rows(reader, producers)) {
        std::vector<std::string> rows;
        for (const QuantLinear* producer : producers) rows.push_back(short_name(*producer));
        folds.push_back(fmt::format("{}: order -> {} rows", reader.name, fmt::join(rows, " and ")));
      }
    }
  }
  return folds;
}

}  // namespace serq
