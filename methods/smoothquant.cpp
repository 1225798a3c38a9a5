// `smoothquant`: one smoothing scale per input group, folded into every layer of the group, then the run's weight
// quantizer on the scaled weights and the dynamic activation quantizer on the smoothed inputs.
#include "methods/smoothquant.h"

#include <fmt/format.h>

#include <cmath>

#include "core/common/error.h"
#include "methods/weight_quantizer.h"

namespace serq {
namespace {

void check_alpha(double alpha) {
  SERQ_CHECK(alpha >= 0.0 && alpha <= 1.0, "quant.alpha: {} is outside [0, 1]; use a migration strength in 0..1",
             alpha);
}

}  // namespace

Vector smoothing_scales(const InputGroup& group, const Eigen::VectorXf& abs_max, double alpha) {
  check_alpha(alpha);
  const std::string& name = group.front()->name;
  SERQ_CHECK(abs_max.size() == group.front()->d_in(), "{}: abs_max has {} channels but the layer takes d_in = {}",
             name, abs_max.size(), group.front()->d_in());
  Eigen::VectorXf weight_max = Eigen::VectorXf::Zero(abs_max.size());
  for (const QuantLinear* layer : group) {
    weight_max = weight_max.cwiseMax(layer->weight.cwiseAbs().colwise().maxCoeff().transpose());
  }
  Vector scale(abs_max.size());
  for (Eigen::Index j = 0; j < scale.size(); ++j) {
    if (abs_max[j] == 0.0f || weight_max[j] == 0.0f) {  // nothing to migrate; the formula would give 0 or ∞
      scale[j] = 1.0f;
      continue;
    }
    scale[j] = static_cast<float>(std::pow(static_cast<double>(abs_max[j]), alpha) /
                                  std::pow(static_cast<double>(weight_max[j]), 1.0 - alpha));
    SERQ_CHECK(std::isfinite(scale[j]) && scale[j] > 0.0f,
               "{}: input channel {} gets smoothing scale {} (abs_max {}, max|W| {}); check the calibration "
               "statistics and weights for NaN/Inf", name, j, scale[j], abs_max[j], weight_max[j]);
  }
  return scale;
}

namespace {

// Each group's smoothing scale, computed for all groups before any layer changes, then folded into its layers.
void smooth(const std::vector<InputGroup>& groups, const QuantParams& params, const Calibration& calibration) {
  std::vector<Vector> scales;
  for (const InputGroup& group : groups) {
    scales.push_back(smoothing_scales(group, group_abs_max(group, calibration), params.alpha));
  }
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (QuantLinear* layer : groups[g]) {
      scale_input_channels(*layer, scales[g]);
      layer->transform = fmt::format("smoothquant alpha={}", params.alpha);
    }
  }
}

}  // namespace

// The scales also read the weights (max |W_j|), which are checked as each layer is reached.
void SmoothQuant::prepare_model(Model& model, const QuantParams& params, const Calibration& calibration) const {
  check_alpha(params.alpha);
  for (const InputGroup& group : input_groups(model, params)) group_abs_max(group, calibration);
}

void SmoothQuant::prepare_layer(Model& model, int index, const QuantParams& params,
                                const Calibration& calibration) const {
  smooth(layer_input_groups(model.layers[static_cast<std::size_t>(index)]), params, calibration);
}

void SmoothQuant::prepare_head(Model& model, const QuantParams& params, const Calibration& calibration) const {
  if (params.quantize_lm_head) smooth({{&model.lm_head}}, params, calibration);
}

void SmoothQuant::quantize_linear(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) const {
  quantize_main_weight(layer, params, calibration);
  layer.act_quant = params.activation;
}

}  // namespace serq
