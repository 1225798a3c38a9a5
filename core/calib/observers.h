// Calibration statistics of linear-layer inputs: per-channel abs-max, per-channel mean |x|, and the Hessian XᵀX
// (for GPTQ). Collected by running the model over calibration samples with an observer on every linear input,
// only for the layers that ask for them.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "core/model/forward.h"

namespace serq {

struct ChannelStats {
  Eigen::VectorXf abs_max;   // max |x_j| over calibration tokens (d_in)
  Eigen::VectorXd mean_abs;  // mean |x_j| over calibration tokens (d_in)
  Eigen::MatrixXd hessian;   // Σ xᵀx over tokens (d_in × d_in); empty unless requested
  Eigen::MatrixXf top_abs;   // the top_k largest |x_j| over tokens, decreasing down each column (top_k × d_in), for
                             // percentiles; empty unless requested
  std::int64_t tokens = 0;
};

struct StatsRequest {
  std::set<std::string> layers;  // linear names, e.g. "layers.0.mlp.down_proj"
  bool hessian = false;
  int top_k = 0;  // keep the top_k largest |x_j| of each channel (ChannelStats::top_abs); the inputs then cross to
                  // the host, counted as "activations for percentiles"
};

// Accumulates ChannelStats for the requested layers as the forward pass runs, with the backend's observe op.
class CalibrationObserver final : public LinearInputObserver {
 public:
  CalibrationObserver(Backend& backend, StatsRequest request);
  void observe(const QuantLinear& layer, const Tensor& input) override;
  // Finalizes the means and checks every channel: an all-zero or non-finite channel is a serq::Error naming the
  // layer and channel (a scale derived from it would be 0 or NaN).
  std::map<std::string, ChannelStats> finish();

 private:
  Backend& backend_;
  StatsRequest request_;
  std::map<std::string, ChannelSums> sums_;
  std::map<std::string, Eigen::MatrixXf> top_;
};

// Runs the model over the samples (each one sequence) and returns the requested statistics. Layer by layer: every
// sample's hidden states (samples × seq_len × dim floats) go through decoder layer i before layer i+1, so only one
// layer's weights need be resident (release_layer_pages); each layer sees the samples in order, so the statistics
// equal those of one whole-model pass per sample.
std::map<std::string, ChannelStats> collect_calibration_stats(const Model& model,
                                                              const std::vector<std::vector<int>>& samples,
                                                              const StatsRequest& request);

}  // namespace serq
