// Per-layer diagnostics (see layer_diagnostics.h): an observer on the reference model's linear inputs runs each
// measured layer of both models on them and accumulates the squared errors.
#include "experiments/layer_diagnostics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "core/common/error.h"
#include "core/common/progress.h"
#include "core/model/forward.h"

namespace serq {
namespace {

constexpr double kMaxQsnrDb = 300.0;  // −20·log10(1e-15): the stored value for an error of zero

// sqrt(error² / reference²); NaN when the reference is zero everywhere.
double relative_error(double error_squared, double reference_squared) {
  if (reference_squared == 0.0) return std::numeric_limits<double>::quiet_NaN();
  return std::sqrt(error_squared / reference_squared);
}

double qsnr_db(double relative) {
  if (std::isnan(relative)) return relative;
  return relative < 1e-15 ? kMaxQsnrDb : -20.0 * std::log10(relative);
}

struct Accumulated {
  const QuantLinear* quantized;
  double error_squared = 0.0, reference_squared = 0.0;
};

// Sees each linear input of the reference model and runs the measured layers of both models on it.
class LayerErrorObserver final : public LinearInputObserver {
 public:
  explicit LayerErrorObserver(std::map<std::string, Accumulated>& layers) : layers_(layers) {}

  void observe(const QuantLinear& reference, const Tensor& input_tensor) override {
    const auto found = layers_.find(reference.name);
    if (found == layers_.end()) return;
    Accumulated& sums = found->second;
    const Matrix input = input_tensor.backend->download(input_tensor, "diagnosed layer inputs");
    y_ = run_linear(cpu_backend(), reference, input);
    y_hat_ = run_linear(cpu_backend(), *sums.quantized, input);
    sums.error_squared += (y_hat_ - y_).cast<double>().squaredNorm();
    sums.reference_squared += y_.cast<double>().squaredNorm();
  }

 private:
  std::map<std::string, Accumulated>& layers_;
  Matrix y_, y_hat_;
};

}  // namespace

QuantParams without_quantization(QuantParams params) {
  params.weight.bits = 16;
  params.activation.bits = 16;
  params.factor_bits = 16;
  params.progress = nullptr;  // the reference is not the quantization the user waits for
  return params;
}

Model reference_model(const Model& full_precision, const Method& method, const QuantParams& params,
                      const Calibration& calibration) {
  Model reference = full_precision;
  method.quantize(reference, without_quantization(params), calibration);
  return reference;
}

std::vector<LayerDiagnostics> layer_diagnostics(const Model& reference, const Model& quantized,
                                                const std::vector<std::string>& layers,
                                                const std::vector<std::vector<int>>& windows) {
  std::map<std::string, const QuantLinear*> reference_layers;
  for (const QuantLinear* layer : reference.linears()) reference_layers[layer->name] = layer;
  std::map<std::string, Accumulated> sums;
  for (const QuantLinear* layer : quantized.linears()) {
    if (std::find(layers.begin(), layers.end(), layer->name) != layers.end()) {
      sums.emplace(layer->name, Accumulated{layer});
    }
  }
  for (const std::string& name : layers) {
    SERQ_CHECK(sums.contains(name) && reference_layers.contains(name), "{}: no such linear layer in both models to "
               "diagnose (a bug in the caller)", name);
  }

  LayerErrorObserver observer(sums);
  Progress progress("layer errors", static_cast<std::int64_t>(windows.size()), "windows");
  const bool head = sums.contains(reference.lm_head.name);
  for (const std::vector<int>& window : windows) {
    const Matrix hidden = forward_hidden(reference, window, 1, static_cast<int>(window.size()), &observer);
    if (head) forward_logits(reference, hidden, &observer);  // lm_head's input is only seen on the way to logits
    progress.advance(1);
  }
  progress.finish();

  std::vector<LayerDiagnostics> diagnostics;
  for (const QuantLinear* layer : quantized.linears()) {
    const auto found = sums.find(layer->name);
    if (found == sums.end()) continue;
    const Matrix reference_weight = reference_layers.at(layer->name)->effective_weight();
    const Matrix weight = layer->effective_weight();
    LayerDiagnostics d;
    d.name = layer->name;
    d.weight_rel_error = relative_error((weight - reference_weight).cast<double>().squaredNorm(),
                                        reference_weight.cast<double>().squaredNorm());
    d.output_rel_error = relative_error(found->second.error_squared, found->second.reference_squared);
    d.output_qsnr_db = qsnr_db(d.output_rel_error);
    d.bits_per_weight = layer->storage_bits() / (static_cast<double>(layer->d_out()) * layer->d_in());
    d.extra_parameters = layer->extra_parameters();
    diagnostics.push_back(std::move(d));
  }
  return diagnostics;
}

}  // namespace serq
