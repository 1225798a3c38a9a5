// quantize_sequential: hidden states of the calibration samples carried layer by layer through the quantized model,
// one input group's Hessian observed per group.
#include "methods/sequential.h"

#include <algorithm>
#include <map>
#include <utility>

#include "core/calib/observers.h"
#include "core/model/sample_states.h"
#include "methods/input_groups.h"

namespace serq {
namespace {

// XᵀX of each group's input, accumulated once per group: its other layers see the same input.
class GroupHessians final : public LinearInputObserver {
 public:
  GroupHessians(Backend& backend, const std::vector<InputGroup>& groups) : backend_(backend) {
    for (const InputGroup& group : groups) leaders_[group.front()->name] = {};
  }
  void observe(const QuantLinear& layer, const Tensor& input) override {
    const auto found = leaders_.find(layer.name);
    if (found == leaders_.end()) return;
    ChannelSums& sums = found->second;
    if (sums.tokens == 0) {
      const auto d = static_cast<Eigen::Index>(input.cols);
      sums = {.abs_max = Eigen::VectorXf::Zero(d), .sum_abs = Eigen::VectorXd::Zero(d),
              .gram = Eigen::MatrixXd::Zero(d, d)};
    }
    backend_.observe(input, sums);
  }
  // The group's Hessian, handed over (it exists once).
  ChannelStats take(const InputGroup& group) {
    ChannelSums& sums = leaders_.at(group.front()->name);
    ChannelStats stats;
    stats.hessian = std::move(sums.gram);
    stats.tokens = sums.tokens;
    return stats;
  }

 private:
  Backend& backend_;
  std::map<std::string, ChannelSums> leaders_;  // by the group's first layer
};

// Turns a layer's activation (and intermediate) quantizers off while it produces the next layer's calibration
// inputs, and back on after.
class ActivationQuantOff {
 public:
  explicit ActivationQuantOff(std::vector<InputGroup> groups) : groups_(std::move(groups)) {
    for (const InputGroup& group : groups_) {
      for (QuantLinear* layer : group) {
        saved_.push_back({layer->act_quant, layer->low_rank.intermediate_quant});
        layer->act_quant = QuantSpec{};
        layer->low_rank.intermediate_quant = QuantSpec{};
      }
    }
  }
  ~ActivationQuantOff() {
    std::size_t i = 0;
    for (const InputGroup& group : groups_) {
      for (QuantLinear* layer : group) {
        layer->act_quant = saved_[i].first;
        layer->low_rank.intermediate_quant = saved_[i++].second;
      }
    }
  }
  ActivationQuantOff(const ActivationQuantOff&) = delete;
  ActivationQuantOff& operator=(const ActivationQuantOff&) = delete;

 private:
  std::vector<InputGroup> groups_;
  std::vector<std::pair<QuantSpec, QuantSpec>> saved_;
};

// Quantizes each group of linears with its observed Hessian (when GPTQ needs one) beside the activation statistics.
void quantize_groups(const std::vector<InputGroup>& groups, GroupHessians* hessians, const Method& method,
                     const QuantParams& params, const Calibration& activation_stats) {
  for (const InputGroup& group : groups) {
    Calibration calibration;
    ChannelStats observed = hessians ? hessians->take(group) : ChannelStats{};
    for (std::size_t i = 0; i < group.size(); ++i) {
      const std::string& name = group[i]->name;
      const auto stats = activation_stats.stats.find(name);
      ChannelStats& s = calibration.stats[name] =
          stats == activation_stats.stats.end() ? ChannelStats{} : stats->second;
      if (!hessians) continue;
      s.hessian = i + 1 < group.size() ? observed.hessian : std::move(observed.hessian);
    }
    for (QuantLinear* layer : group) quantize_planned(method, *layer, params, calibration);
  }
}

}  // namespace

std::int64_t sequential_calibration_bytes(const ModelConfig& model, int samples, int seq_len) {
  const std::int64_t widest = std::max(model.dim, model.hidden_dim);
  return static_cast<std::int64_t>(samples) * seq_len * model.dim * static_cast<std::int64_t>(sizeof(float)) +
         2 * widest * widest * static_cast<std::int64_t>(sizeof(double));
}

MethodReport quantize_sequential(Model& model, const Method& method, const QuantParams& params,
                                 const Calibration& activation_stats, const std::vector<std::vector<int>>& samples) {
  if (!method.quantizes()) return MethodReport{};
  const auto start = std::chrono::steady_clock::now();
  method.prepare_model(model, params, activation_stats);
  const bool observe = params.gptq_anywhere();
  SampleStates states(model, samples);  // on the backend; only the Hessians come back

  std::vector<double> layer_seconds;
  for (int i = 0; i < model.config.n_layers; ++i) {
    const auto layer_start = std::chrono::steady_clock::now();
    DecoderLayer& layer = model.layers[static_cast<std::size_t>(i)];
    restore_layer_weights(layer);  // methods edit float weights
    method.prepare_layer(model, i, params, activation_stats);
    const std::vector<InputGroup> groups = layer_input_groups(layer);
    GroupHessians hessians(*model.backend, groups);
    if (observe) states.run_layer(model, i, &hessians, false);
    quantize_groups(groups, observe ? &hessians : nullptr, method, params, activation_stats);
    if (params.release_floats) release_layer_weights(layer);
    if (i + 1 < model.config.n_layers || params.quantize_lm_head) {  // else nothing reads the last outputs
      const ActivationQuantOff off(groups);
      states.run_layer(model, i, nullptr, true);
    }
    release_layer_pages(layer);
    layer_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - layer_start).count());
  }
  restore_head_weight(model);
  method.prepare_head(model, params, activation_stats);
  if (params.quantize_lm_head) {
    const std::vector<InputGroup> head = {{&model.lm_head}};
    GroupHessians hessians(*model.backend, head);
    if (observe) states.observe_head(model, hessians);
    quantize_groups(head, observe ? &hessians : nullptr, method, params, activation_stats);
  }
  MethodReport report = summarize(layers_to_quantize(model, params), start);
  report.layer_seconds = std::move(layer_seconds);
  return report;
}

}  // namespace serq
