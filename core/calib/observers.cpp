// Calibration observers: running per-channel statistics of linear inputs, finalized and checked by name.
#include "core/calib/observers.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "core/common/error.h"
#include "core/common/progress.h"
#include "core/model/sample_states.h"

namespace serq {

namespace {

// top (k × d, each column decreasing; empty at first) ← the k largest |x| of each column among top and x's rows.
void keep_largest(const Matrix& x, int k, Eigen::MatrixXf& top) {
  const Eigen::Index d = x.cols();
  std::vector<float> column;
  Eigen::MatrixXf merged(std::min<Eigen::Index>(k, top.rows() + x.rows()), d);
  for (Eigen::Index j = 0; j < d; ++j) {
    column.assign(top.rows() > 0 ? top.col(j).data() : nullptr, top.rows() > 0 ? top.col(j).data() + top.rows() : nullptr);
    for (Eigen::Index r = 0; r < x.rows(); ++r) column.push_back(std::fabs(x(r, j)));
    const auto keep = static_cast<std::ptrdiff_t>(merged.rows());
    std::partial_sort(column.begin(), column.begin() + keep, column.end(), std::greater<>());
    for (Eigen::Index i = 0; i < merged.rows(); ++i) merged(i, j) = column[static_cast<std::size_t>(i)];
  }
  top.swap(merged);
}

}  // namespace

CalibrationObserver::CalibrationObserver(Backend& backend, StatsRequest request)
    : backend_(backend), request_(std::move(request)) {}

void CalibrationObserver::observe(const QuantLinear& layer, const Tensor& input) {
  if (!request_.layers.contains(layer.name)) return;
  ChannelSums& s = sums_[layer.name];
  const auto d = static_cast<Eigen::Index>(input.cols);
  if (s.tokens == 0) {
    s.abs_max = Eigen::VectorXf::Zero(d);
    s.sum_abs = Eigen::VectorXd::Zero(d);
    if (request_.hessian) s.gram = Eigen::MatrixXd::Zero(d, d);
  }
  backend_.observe(input, s);
  if (request_.top_k > 0) keep_largest(backend_.download(input, "activations for percentiles"), request_.top_k,
                                       top_[layer.name]);
}

std::map<std::string, ChannelStats> CalibrationObserver::finish() {
  for (const std::string& name : request_.layers) {
    SERQ_CHECK(sums_.contains(name), "calibration: layer {} was never run; check the layer name", name);
  }
  std::map<std::string, ChannelStats> stats;
  for (auto& [name, sums] : sums_) {
    ChannelStats& s = stats[name];
    s.abs_max = std::move(sums.abs_max);
    s.mean_abs = sums.sum_abs / static_cast<double>(sums.tokens);
    s.hessian = std::move(sums.gram);
    if (const auto top = top_.find(name); top != top_.end()) s.top_abs = std::move(top->second);
    s.tokens = sums.tokens;
    for (Eigen::Index j = 0; j < s.abs_max.size(); ++j) {
      SERQ_CHECK(std::isfinite(s.abs_max[j]), "calibration: {} input channel {} has NaN/Inf values; check the model "
                 "weights and the calibration data", name, j);
      SERQ_CHECK(s.abs_max[j] > 0.0f, "calibration: {} input channel {} is zero on every calibration token, so no "
                 "scale can be derived from it; use more or different calibration samples", name, j);
    }
  }
  return stats;
}

std::map<std::string, ChannelStats> collect_calibration_stats(const Model& model,
                                                              const std::vector<std::vector<int>>& samples,
                                                              const StatsRequest& request) {
  CalibrationObserver observer(*model.backend, request);
  const int layers = model.config.n_layers;
  const bool head = request.layers.contains(model.lm_head.name);
  Progress progress("calibration", static_cast<std::int64_t>(samples.size()) * (layers + (head ? 1 : 0)),
                    "sample-layers");
  SampleStates states(model, samples);  // on the backend from here on: only the statistics come back
  const auto count = static_cast<std::int64_t>(samples.size());
  for (int l = 0; l < layers; ++l) {
    states.run_layer(model, l, &observer, true);
    progress.advance(count);
    release_layer_pages(model.layers[static_cast<std::size_t>(l)]);  // one layer's 16-bit values resident at a time
  }
  if (head) {
    states.observe_head(model, observer);
    progress.advance(count);
  }
  progress.finish();
  return observer.finish();
}

}  // namespace serq
