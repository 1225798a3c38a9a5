// `smoothquant` (Xiao et al. 2023): migrates activation outliers into the weights with a per-channel input scale
// s_j = max|X_j|^α / max|W_j|^(1−α), then quantizes the scaled weights and the smoothed activations. Also the
// input-scaling building blocks that serq's flattening reuses (it is SmoothQuant's scale with α = 1).
#pragma once

#include <vector>

#include "methods/method.h"

namespace serq {

// Linears that read the same input and so must share one input scale (it folds into the RMSNorm γ or into the
// previous layer): per decoder layer {q, k, v}, {o}, {gate, up}, {down}; then {lm_head} if params.quantize_lm_head.
using InputGroup = std::vector<QuantLinear*>;
std::vector<InputGroup> input_groups(Model& model, const QuantParams& params);

// max |x_j| over the calibration tokens of a group's input: the element-wise max of its layers' abs_max (they read
// the same input, so these agree). A serq::Error names the layer whose statistics are missing or mis-sized.
Eigen::VectorXf group_abs_max(const InputGroup& group, const Calibration& calibration);

// SmoothQuant's scales for one group, with max|W_j| over the rows of every layer of the group (column j).
// A channel with abs_max_j = 0 or max|W_j| = 0 gets s_j = 1: the formula would give 0 or ∞ there, and such a
// channel carries nothing to migrate. alpha outside [0, 1] is a serq::Error.
Vector smoothing_scales(const InputGroup& group, const Eigen::VectorXf& abs_max, double alpha);

// Puts the input scale s on a layer without changing what it computes: input.scale = s, W ← W·diag(s).
void scale_input_channels(QuantLinear& layer, const Vector& scale);

class SmoothQuant final : public Method {
 public:
  std::string name() const override { return "smoothquant"; }
  std::string describe() const override {
    return "per-channel smoothing s = max|X|^alpha / max|W|^(1-alpha), then weights and activations quantized";
  }
  std::vector<std::string> parameters() const override { return {"quant.alpha"}; }
  bool needs_activation_stats() const override { return true; }
  MethodReport quantize(Model& model, const QuantParams& params, const Calibration& calibration) const override;
};

}  // namespace serq
