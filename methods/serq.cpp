// `serq`: flattening and saliency order per input group (shared by the group's layers, so they fold), then the
// residual pair (main weight, R) of every layer in the code or the paper order.
#include "methods/serq.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "core/common/error.h"
#include "methods/input_groups.h"
#include "methods/weight_quantizer.h"

namespace serq {
namespace {

void check_rank(const QuantLinear& layer, int rank) {
  SERQ_CHECK(rank >= 0, "{}: quant.rank {} is negative; use 0..{}", layer.name, rank, layer.d_in());
  SERQ_CHECK(rank <= layer.d_in(), "{}: quant.rank {} is above d_in = {}; use 0..{}", layer.name, rank, layer.d_in(),
             layer.d_in());
}

// The salient channels first: indices of s by decreasing value, ties kept in channel order.
std::vector<int> saliency_order(const Vector& scale) {
  std::vector<int> order(static_cast<std::size_t>(scale.size()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scale[a] > scale[b]; });
  return order;
}

// W ← W[:, order], so that X̂·Wᵀ is unchanged when X̂ = X[:, order].
void permute_columns(Matrix& weight, const std::vector<int>& order) {
  Matrix permuted(weight.rows(), weight.cols());
  for (Eigen::Index j = 0; j < weight.cols(); ++j) permuted.col(j) = weight.col(order[static_cast<std::size_t>(j)]);
  weight.swap(permuted);
}

QuantSpec salient_spec(const QuantSpec& weight) {
  if (weight.format == NumberFormat::mxfp4) return {4, true, weight.group_size, NumberFormat::mxfp4};
  return {weight.bits, true, 0, NumberFormat::integer, true};
}

SalientCorrection quantize_salient(const Matrix& r, const QuantSpec& spec, const std::string& layer) {
  SalientCorrection salient;
  try {
    salient.packed = PackedWeight::quantize(r, spec);
  } catch (const Error& e) {
    fail("{}: salient correction R: {}", layer, e.what());
  }
  salient.r = salient.packed.dequantize();
  salient.quant = spec;
  return salient;
}

// layer.weight is W̃ (flattened and permuted); makes it the quantized main weight and sets R on its first r columns.
void quantize_residual_pair(QuantLinear& layer, int rank, const QuantParams& params, const Calibration& calibration) {
  if (rank == 0) {
    quantize_main_weight(layer, params, calibration);
    return;
  }
  const QuantSpec spec = salient_spec(params.weight);
  if (params.paper_residual_order) {
    const Matrix head = layer.weight.leftCols(rank);
    quantize_main_weight(layer, params, calibration);
    layer.salient = quantize_salient(head - layer.weight.leftCols(rank), spec, layer.name);
  } else {
    layer.salient = quantize_salient(layer.weight.leftCols(rank), spec, layer.name);
    layer.weight.leftCols(rank) -= layer.salient.r;
    quantize_main_weight(layer, params, calibration);
  }
}

// Full-precision weights leave no error to correct, so r acts as 0 there.
int effective_rank(const QuantParams& params) { return params.weight.enabled() ? params.rank : 0; }

// The flattening scale of a group: s_j = max |x_j| over the calibration, 1 where a channel was never seen non-zero.
Vector flattening_scale(const InputGroup& group, const Calibration& calibration) {
  Vector scale = group_abs_max(group, calibration);
  SERQ_CHECK(scale.allFinite(), "{}: calibration abs_max has NaN/Inf; calibrate again", group.front()->name);
  for (float& s : scale) {
    if (s == 0.0f) s = 1.0f;  // nothing to flatten (calibration rejects these)
  }
  return scale;
}

// Flattens and permutes each group's layers.
void flatten_and_order(const std::vector<InputGroup>& groups, const QuantParams& params,
                       const Calibration& calibration) {
  const char* residual_order = params.paper_residual_order ? "paper" : "code";
  for (const InputGroup& group : groups) {
    const Vector scale = flattening_scale(group, calibration);
    const std::vector<int> order = saliency_order(scale);
    for (QuantLinear* layer : group) {
      scale_input_channels(*layer, scale);
      layer->input.order = order;
      permute_columns(layer->weight, order);
      layer->transform = fmt::format("serq r={} flatten=absmax order={}", effective_rank(params), residual_order);
    }
  }
}

}  // namespace

void Serq::prepare_model(Model& model, const QuantParams& params, const Calibration& calibration) const {
  for (const QuantLinear* layer : layers_to_quantize(model, params)) check_rank(*layer, params.rank);
  for (const InputGroup& group : input_groups(model, params)) flattening_scale(group, calibration);
}

void Serq::prepare_layer(Model& model, int index, const QuantParams& params, const Calibration& calibration) const {
  flatten_and_order(layer_input_groups(model.layers[static_cast<std::size_t>(index)]), params, calibration);
}

void Serq::prepare_head(Model& model, const QuantParams& params, const Calibration& calibration) const {
  if (params.quantize_lm_head) flatten_and_order({{&model.lm_head}}, params, calibration);
}

void Serq::quantize_linear(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) const {
  quantize_residual_pair(layer, effective_rank(params), params, calibration);
  layer.act_quant = params.activation;
}

}  // namespace serq
