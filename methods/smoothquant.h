// `smoothquant` (Xiao et al. 2023): migrates activation outliers into the weights with a per-channel input scale
// s_j = max|X_j|^α / max|W_j|^(1−α), then quantizes the scaled weights and the smoothed activations.
#pragma once

#include "methods/input_groups.h"
#include "methods/method.h"

namespace serq {

// SmoothQuant's scales for one group, with max|W_j| over the rows of every layer of the group (column j).
// A channel with abs_max_j = 0 or max|W_j| = 0 gets s_j = 1: the formula would give 0 or ∞ there, and such a
// channel carries nothing to migrate. alpha outside [0, 1] is a serq::Error.
Vector smoothing_scales(const InputGroup& group, const Eigen::VectorXf& abs_max, double alpha);

class SmoothQuant final : public Method {
 public:
  std::string name() const override { return "smoothquant"; }
  std::string describe() const override {
    return "per-channel smoothing s = max|X|^alpha / max|W|^(1-alpha), then weights and activations quantized";
  }
  std::vector<std::string> parameters() const override { return {"quant.alpha"}; }
  bool needs_activation_stats() const override { return true; }
  void prepare_model(Model& model, const QuantParams& params, const Calibration& calibration) const override;
  void prepare_layer(Model& model, int index, const QuantParams& params, const Calibration& calibration) const override;
  void prepare_head(Model& model, const QuantParams& params, const Calibration& calibration) const override;
  void quantize_linear(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) const override;
};

}  // namespace serq
