// Two-factor error reconstruction: truncated SVD of the (activation-scaled) quantization error, factor formats and
// the intermediate re-quantization, for lorc, lqer and l2qer.
#include "methods/low_rank.h"

#include <fmt/format.h>

#include <Eigen/SVD>

#include <algorithm>

#include "core/common/error.h"
#include "methods/weight_quantizer.h"

namespace serq {

ErrorFactors factor_error(const Matrix& error, int rank, const Vector& channel_scale) {
  const bool scaled = channel_scale.size() > 0;
  Eigen::MatrixXd e = error.cast<double>();
  if (scaled) e = e * channel_scale.cast<double>().asDiagonal();
  const Eigen::BDCSVD<Eigen::MatrixXd> svd(e, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::VectorXd sigma = svd.singularValues().head(rank);
  Eigen::MatrixXd b = svd.matrixU().leftCols(rank);                // d_out × k
  Eigen::MatrixXd a = svd.matrixV().leftCols(rank).transpose();    // k × d_in
  if (scaled) {
    b = b * sigma.asDiagonal();
    a = a * channel_scale.cast<double>().cwiseInverse().asDiagonal();
  } else {
    const Eigen::VectorXd root = sigma.cwiseSqrt();
    b = b * root.asDiagonal();
    a = root.asDiagonal() * a;
  }
  return {a.cast<float>(), b.cast<float>()};
}

Vector activation_scale(const Eigen::VectorXd& mean_abs, const std::string& layer) {
  SERQ_CHECK(mean_abs.allFinite(), "{}: calibration mean |x| has NaN/Inf; check the model and recalibrate", layer);
  const double max = mean_abs.maxCoeff();
  SERQ_CHECK(max > 0.0, "{}: every input channel was zero during calibration; use other calibration data", layer);
  double min = max;
  for (const double v : mean_abs) {
    if (v > 0.0) min = std::min(min, v);
  }
  const Eigen::VectorXd s = mean_abs.cwiseMax(min) / std::sqrt(min * max);
  return s.cast<float>();
}

namespace {

void check_rank(const QuantLinear& layer, int rank) {
  const int limit = std::min(layer.d_in(), layer.d_out());
  SERQ_CHECK(rank >= 0 && rank <= limit, "{}: quant.rank {} is outside 0..{} (the factors of a {}×{} weight); use "
             "0..{}", layer.name, rank, limit, layer.d_out(), layer.d_in(), limit);
}

// A and B of lqer/l2qer: INT per row (groups of the weight's group size) in factor_bits, or MXFP4 blocks when the
// run is MXFP4 and factor_bits is 4. INT8 factors under MXFP4 keep the integer format: MXFP4 has no 8-bit form.
QuantSpec factor_spec(const QuantParams& params) {
  QuantSpec spec{params.factor_bits, true, params.weight.group_size, NumberFormat::integer};
  if (params.weight.format == NumberFormat::mxfp4 && params.factor_bits == 4) spec.format = NumberFormat::mxfp4;
  return spec;
}

}  // namespace

MethodReport quantize_with_error_factors(Model& model, const QuantParams& params, const Calibration& calibration,
                                         const LowRankRecipe& recipe) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<QuantLinear*> layers = layers_to_quantize(model, params);
  for (const QuantLinear* layer : layers) check_rank(*layer, params.rank);
  const QuantSpec factors = recipe.quantized_factors ? factor_spec(params) : QuantSpec{};
  QuantSpec intermediate;
  if (recipe.quantized_factors && params.requant_intermediate)
    intermediate = {params.factor_bits, params.activation.symmetric, 0, NumberFormat::integer};
  for (QuantLinear* layer : layers) {
    const Matrix original = layer->weight;
    quantize_main_weight(*layer, params, calibration);
    layer->act_quant = params.activation;
    layer->transform = fmt::format("{} k={} factors={}", recipe.method, params.rank, factors.describe());
    if (params.rank == 0 || !params.weight.enabled()) continue;
    const Vector scale =
        recipe.activation_scaled ? activation_scale(calibration.at(layer->name).mean_abs, layer->name) : Vector{};
    ErrorFactors f = factor_error(original - layer->weight, params.rank, scale);
    try {
      fake_quant_rows(f.a, factors);
      fake_quant_rows(f.b, factors);
    } catch (const Error& e) {
      fail("{}: error factors: {}", layer->name, e.what());
    }
    layer->low_rank = {std::move(f.a), std::move(f.b), factors, intermediate};
  }
  return summarize(layers, start);
}

}  // namespace serq
