// calibrate(): decides what to observe from the method and the weight quantizer, then runs the observers.
#include "experiments/calibrate.h"

#include <chrono>
#include <cmath>

#include "core/data/calibration_sampler.h"
#include "methods/weight_quantizer.h"

namespace serq {

bool full_precision_hessians(const Method& method, const QuantParams& params, const CalibrationSettings& settings) {
  return uses_gptq(method, params) && !settings.sequential;
}

int percentile_top_k(const QuantParams& params, const CalibrationSettings& settings) {
  if (params.flatten_percentile >= 100.0) return 0;
  const double tokens = static_cast<double>(settings.samples) * settings.seq_len;
  return static_cast<int>(std::floor((1.0 - params.flatten_percentile / 100.0) * tokens)) + 1;
}

Calibration calibrate(const Model& model, const Method& method, const QuantParams& params, const TokenStream& stream,
                      const CalibrationSettings& settings) {
  Calibration calibration;
  const bool gptq = full_precision_hessians(method, params, settings);
  if (!method.needs_activation_stats() && !gptq) return calibration;
  const auto start = std::chrono::steady_clock::now();
  StatsRequest request;
  request.hessian = gptq;
  request.top_k = percentile_top_k(params, settings);
  for (const QuantLinear* layer : model.linears()) {
    if (layer->name != model.lm_head.name || params.quantize_lm_head) request.layers.insert(layer->name);
  }
  const auto samples =
      sample_calibration(stream, settings.samples, settings.seq_len, settings.sampling, settings.seed);
  calibration.stats = collect_calibration_stats(model, samples, request);
  calibration.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return calibration;
}

}  // namespace serq
