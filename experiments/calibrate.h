// Calibration for one method: samples from the calibration stream, one full-precision pass with observers on the
// layers the method will quantize, and only the statistics it needs (Hessians only for the GPTQ weight quantizer).
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
};

// Empty (and instant) when the method needs no statistics and weights are not quantized by GPTQ.
Calibration calibrate(const Model& model, const Method& method, const QuantParams& params, const TokenStream& stream,
                      const CalibrationSettings& settings);

}  // namespace serq
