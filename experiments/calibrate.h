// Calibration for one method: samples from the calibration stream, one full-precision pass with observers on the
// layers the method will quantize, and only the statistics it needs (Hessians only for GPTQ weights calibrated in
// one pass; the layer-wise pipeline, methods/sequential.h, observes its own).
#pragma once

#include "core/data/calibration_sampler.h"
#include <cstdint>

#include "core/data/token_stream.h"
#include "methods/method.h"

namespace serq {

struct CalibrationSettings {
  int samples = 128;     // calib.samples
  int seq_len = 512;     // calib.seq_len
  std::uint64_t seed = 0;  // calib.seed: random window offsets (GPTQ-style)
  CalibrationSampling sampling = CalibrationSampling::random;  // calib.sampling
  bool sequential = false;  // calib.sequential: GPTQ Hessians come layer by layer, not from this pass
};

// How many of each channel's largest |x| the full-precision pass keeps: enough for quant.flatten_percentile's nearest
// rank over calib.samples × calib.seq_len tokens, or 0 where the percentile is 100 (the abs-max).
int percentile_top_k(const QuantParams& params, const CalibrationSettings& settings);

// Whether the full-precision pass collects GPTQ Hessians: GPTQ weights (uses_gptq) calibrated in one pass.
bool full_precision_hessians(const Method& method, const QuantParams& params, const CalibrationSettings& settings);

// Empty (and instant) when the method needs no statistics and the pass collects no Hessians.
Calibration calibrate(const Model& model, const Method& method, const QuantParams& params, const TokenStream& stream,
                      const CalibrationSettings& settings);

}  // namespace serq
