// The shared two-factor correction: truncated SVD of the (optionally activation-weighted) quantization error, the
// LQER factor formats, and the per-layer and whole-model quantization of lorc, lqer and l2qer.
#include "methods/low_rank.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>

#include "core/common/error.h"
#include "core/common/hash.h"
#include "core/common/splitmix64.h"
#include "methods/weight_quantizer.h"

namespace serq {
namespace {

// L2QER's activation-induced scale, as in the LQER code: s_j = max(mean |x_j|, 1e-4), divided by
// sqrt(min_j s_j · max_j s_j) so the scale is centred on 1 in log space. The normalization does not change B·A
// (scaling s by c scales Σ by c and A by 1/c); it keeps A and B in a well-conditioned range.
Eigen::VectorXd activation_scale(const ChannelStats& stats) {
  const Eigen::VectorXd s = stats.mean_abs.cwiseMax(1e-4);
  return s / std::sqrt(s.minCoeff() * s.maxCoeff());
}

void check_recipe(const QuantLinear& layer, const LowRankRecipe& recipe) {
  const int most = std::min(layer.d_in(), layer.d_out());
  SERQ_CHECK(recipe.rank >= 0, "{}: quant.rank {} is negative; use 0..{}", layer.name, recipe.rank, most);
  SERQ_CHECK(recipe.rank <= most, "{}: quant.rank {} is above min(d_in, d_out) = {}; use 0..{}", layer.name,
             recipe.rank, most, most);
  validate(recipe.factor_quant, "quant.factor_bits");
  validate(recipe.intermediate_quant, "quant.factor_bits");
}

}  // namespace

LowRankCorrection low_rank_factors(const Matrix& error, int rank, const Eigen::VectorXd& scale,
                                   SingularValueSplit split, const SvdOptions& svd_options) {
  assert(rank >= 0 && rank <= std::min(error.rows(), error.cols()));
  assert(scale.size() == 0 || scale.size() == error.cols());
  LowRankCorrection factors;
  if (rank == 0) return factors;
  Eigen::MatrixXd weighted = error.cast<double>();
  if (scale.size() > 0) weighted = weighted * scale.asDiagonal();
  const TruncatedSvd svd = truncated_svd(weighted, rank, svd_options);
  const Eigen::VectorXd& sigma = svd.sigma;
  const bool balanced = split == SingularValueSplit::balanced;
  const Eigen::VectorXd left = balanced ? Eigen::VectorXd(sigma.cwiseSqrt()) : sigma;
  const Eigen::VectorXd right = balanced ? Eigen::VectorXd(sigma.cwiseSqrt()) : Eigen::VectorXd::Ones(rank);
  Eigen::MatrixXd a = right.asDiagonal() * svd.v.transpose();
  if (scale.size() > 0) a = a * scale.cwiseInverse().asDiagonal();
  factors.a = a.cast<float>();
  factors.b = (svd.u * left.asDiagonal()).cast<float>();
  return factors;
}

QuantSpec lqer_factor_quant(const QuantParams& params) {
  QuantSpec spec;
  spec.bits = params.factor_bits;
  spec.symmetric = true;
  spec.group_size = params.weight.group_size;
  spec.format = params.weight.format == NumberFormat::mxfp4 && params.factor_bits == 4 ? NumberFormat::mxfp4
                                                                                       : NumberFormat::integer;
  spec.f16_scales = spec.format == NumberFormat::integer && params.half_scales;  // stored like every weight
  return spec;
}

QuantSpec lqer_intermediate_quant(const QuantParams& params) {
  QuantSpec spec;
  if (!params.requant_intermediate) return spec;
  spec.bits = params.factor_bits;
  spec.symmetric = params.activation.symmetric;
  spec.group_size = 0;
  return spec;
}

void quantize_low_rank_layer(QuantLinear& layer, const LowRankRecipe& recipe, const QuantParams& params,
                             const Calibration& calibration) {
  check_recipe(layer, recipe);
  const Matrix original = layer.weight;
  quantize_main_weight(layer, params, calibration);
  layer.act_quant = params.activation;
  const Eigen::VectorXd scale =
      recipe.activation_weighted && recipe.rank > 0 ? activation_scale(calibration.at(layer.name)) : Eigen::VectorXd();
  SERQ_CHECK(scale.size() == 0 || scale.size() == layer.d_in(),
             "{}: the calibration has {} channels but the layer takes d_in = {}; recalibrate this model", layer.name,
             scale.size(), layer.d_in());
  const SvdOptions svd{.algorithm = params.svd, .seed = stream_seed(params.seed, fnv1a64(layer.name))};
  layer.low_rank = low_rank_factors(original - layer.weight, recipe.rank, scale, recipe.split, svd);
  layer.low_rank.factor_quant = recipe.factor_quant;
  layer.low_rank.intermediate_quant = recipe.intermediate_quant;
  if (recipe.factor_quant.enabled() && layer.low_rank.rank() > 0) {
    LowRankCorrection& factors = layer.low_rank;
    try {
      factors.packed_a = PackedWeight::quantize(factors.a, recipe.factor_quant);
      factors.packed_b = PackedWeight::quantize(factors.b, recipe.factor_quant);
    } catch (const Error& e) {
      fail("{}: correction factors: {}", layer.name, e.what());
    }
    factors.packed_a.dequantize(factors.a);
    factors.packed_b.dequantize(factors.b);
  }
  layer.transform = fmt::format("{} k={} factors={} intermediate={} svd={}", recipe.method, recipe.rank,
                                recipe.factor_quant.describe(), recipe.intermediate_quant.describe(),
                                to_string(params.svd));
}

void LowRankMethod::prepare_model(Model& model, const QuantParams& params, const Calibration&) const {
  const LowRankRecipe plan = recipe(params);
  for (const QuantLinear* layer : layers_to_quantize(model, params)) check_recipe(*layer, plan);
}

void LowRankMethod::quantize_linear(QuantLinear& layer, const QuantParams& params,
                                    const Calibration& calibration) const {
  quantize_low_rank_layer(layer, recipe(params), params, calibration);
}

}  // namespace serq
