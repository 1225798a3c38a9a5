// `serq`: flattening and saliency order per input group (shared by the group's layers, so they fold), then the
// residual pair (main weight, R) of every layer in the code or the paper order.
#include "methods/serq.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/common/error.h"
#include "core/common/hash.h"
#include "core/common/splitmix64.h"
#include "methods/input_groups.h"
#include "methods/smoothquant.h"
#include "methods/weight_quantizer.h"

namespace serq {
namespace {

void check_rank(const QuantLinear& layer, int rank) {
  SERQ_CHECK(rank >= 0, "{}: quant.rank {} is negative; use 0..{}", layer.name, rank, layer.d_in());
  SERQ_CHECK(rank <= layer.d_in(), "{}: quant.rank {} is above d_in = {}; use 0..{}", layer.name, rank, layer.d_in(),
             layer.d_in());
}

// The salient channels first: indices of the scores by decreasing value, equal scores in the order `ties` asks
// (seeded: by random keys from quant.seed's stream for this group, named by its first layer).
std::vector<int> saliency_order(const Vector& scale, const QuantParams& params, const std::string& group) {
  std::vector<int> order(static_cast<std::size_t>(scale.size()));
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::uint64_t> key(order.size());
  if (params.saliency_ties == SaliencyTies::seeded) {
    SplitMix64 random(stream_seed(params.seed, fnv1a64(group)));
    for (std::uint64_t& k : key) k = random.next();
  } else if (params.saliency_ties == SaliencyTies::last) {
    for (std::size_t j = 0; j < key.size(); ++j) key[j] = key.size() - j;
  }
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return scale[a] > scale[b] || (scale[a] == scale[b] && key[static_cast<std::size_t>(a)] < key[static_cast<std::size_t>(b)]);
  });
  return order;
}

// W ← W[:, order], so that X̂·Wᵀ is unchanged when X̂ = X[:, order].
void permute_columns(Matrix& weight, const std::vector<int>& order) {
  Matrix permuted(weight.rows(), weight.cols());
  for (Eigen::Index j = 0; j < weight.cols(); ++j) permuted.col(j) = weight.col(order[static_cast<std::size_t>(j)]);
  weight.swap(permuted);
}

QuantSpec salient_spec(const QuantParams& params) {
  const QuantSpec& weight = params.weight;
  if (weight.format == NumberFormat::mxfp4) return {4, true, weight.group_size, NumberFormat::mxfp4};
  return stored_weight_spec({weight.bits, true, 0, NumberFormat::integer}, params.half_scales);
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
  const QuantSpec spec = salient_spec(params);
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

// max |x_j| as quant.flatten_percentile takes it: the abs-max at 100, else the nearest-rank percentile of |x_j| over
// the calibration tokens, the value at index floor((1 − p/100) · tokens) of the decreasing top_abs.
Vector channel_max(const InputGroup& group, const Calibration& calibration, double percentile) {
  if (percentile >= 100.0) return group_abs_max(group, calibration);
  const ChannelStats& stats = calibration.at(group.front()->name);
  const auto index =
      static_cast<Eigen::Index>(std::floor((1.0 - percentile / 100.0) * static_cast<double>(stats.tokens)));
  SERQ_CHECK(index < stats.top_abs.rows(), "{}: quant.flatten_percentile {} needs the {} largest |x| of each channel "
             "but the calibration kept {}; calibrate again (a calibration cache from another percentile?)",
             group.front()->name, percentile, index + 1, stats.top_abs.rows());
  return stats.top_abs.row(index).transpose();
}

// The flattening scale of a group: s_j = max |x_j| over the calibration (the paper; or its percentile), 1 where a
// channel was never seen non-zero; with quant.flatten_alpha < 1, SmoothQuant's max|x_j|^α / max|W_j|^(1−α) over the
// group's weights.
Vector flattening_scale(const InputGroup& group, const Calibration& calibration, double alpha, double percentile) {
  Vector scale = channel_max(group, calibration, percentile);
  SERQ_CHECK(scale.allFinite(), "{}: calibration abs_max has NaN/Inf; calibrate again", group.front()->name);
  if (alpha < 1.0) return smoothing_scales(group, scale, alpha);
  for (float& s : scale) {
    if (s == 0.0f) s = 1.0f;  // nothing to flatten (calibration rejects these)
  }
  return scale;
}

// What orders a group's channels by saliency (quant.saliency): the abs-max (the paper), the mean |x_j|, or the mean
// |x_j| times the largest ‖W[:, j]‖₂ among the group's layers (the channel's share of the output).
Vector saliency_scores(const InputGroup& group, const Calibration& calibration, SaliencyOrder saliency) {
  if (saliency == SaliencyOrder::abs_max) return group_abs_max(group, calibration);
  Vector scores = calibration.at(group.front()->name).mean_abs.cast<float>();
  if (saliency == SaliencyOrder::act_weight) {
    Vector norms = Vector::Zero(scores.size());
    for (const QuantLinear* layer : group) norms = norms.cwiseMax(layer->weight.colwise().norm().transpose());
    scores = scores.cwiseProduct(norms);
  }
  return scores;
}

const char* saliency_name(SaliencyOrder saliency) {
  switch (saliency) {
    case SaliencyOrder::mean_abs:
      return "mean_abs";
    case SaliencyOrder::act_weight:
      return "act_weight";
    case SaliencyOrder::abs_max:
      break;
  }
  return "abs_max";
}

// Orders, flattens and permutes each group's layers (the order is taken before the weights are scaled).
void flatten_and_order(const std::vector<InputGroup>& groups, const QuantParams& params,
                       const Calibration& calibration) {
  const char* residual_order = params.paper_residual_order ? "paper" : "code";
  std::string flatten = params.flatten_percentile < 100.0 ? fmt::format("p{}", params.flatten_percentile) : "absmax";
  if (params.flatten_alpha < 1.0) flatten += fmt::format("-alpha{}", params.flatten_alpha);
  std::string saliency =
      params.saliency == SaliencyOrder::abs_max ? "" : fmt::format(" saliency={}", saliency_name(params.saliency));
  if (params.saliency_ties == SaliencyTies::last) saliency += " ties=last";
  if (params.saliency_ties == SaliencyTies::seeded) saliency += fmt::format(" ties=seeded({})", params.seed);
  for (const InputGroup& group : groups) {
    const std::vector<int> order =
        saliency_order(saliency_scores(group, calibration, params.saliency), params, group.front()->name);
    const Vector scale = flattening_scale(group, calibration, params.flatten_alpha, params.flatten_percentile);
    for (QuantLinear* layer : group) {
      scale_input_channels(*layer, scale);
      layer->input.order = order;
      permute_columns(layer->weight, order);
      layer->transform = fmt::format("serq r={} flatten={} order={}{}", effective_rank(params.for_layer(layer->name)),
                                     flatten, residual_order, saliency);
    }
  }
}

}  // namespace

void Serq::prepare_model(Model& model, const QuantParams& params, const Calibration& calibration) const {
  for (const QuantLinear* layer : layers_to_quantize(model, params)) {
    if (!params.skips(layer->name)) check_rank(*layer, params.for_layer(layer->name).rank);
  }
  for (const InputGroup& group : input_groups(model, params)) {
    // The statistics exist and are finite (and hold the percentile); weights are read per layer.
    flattening_scale(group, calibration, 1.0, params.flatten_percentile);
  }
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
