// What one run holds in memory at its peak, estimated from its config and the model's hyper-parameters alone, before
// any weight is read: serq-run --dry-run prints it for every run, so a sweep meant for a larger machine (the paper
// configs) can be sized here. Weights count as the checkpoint stores them (16-bit safetensors are read in place, so
// only the layer being worked on is resident), quantized ones as packed codes and scales.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config/run_config.h"
#include "core/model/config.h"

namespace serq {

struct MemoryItem {
  std::string what;
  std::int64_t bytes = 0;
  bool skipped_if_short = false;  // the run leaves it out, with a note, where it does not fit
};

// The run's parts: the model as stored, its quantized weights and one layer's floats, its full-precision copy
// (eval.kld), the reference of the per-layer diagnostics, one batch's forward workspace, calibration (the
// full-precision pass's hidden states and one-pass GPTQ Hessians of every layer, or the layer-wise pipeline's
// hidden states and one layer's Hessians) and the KLD reference's kept hidden states (eval.max_windows of them;
// "all windows" is bounded by a quarter of `available` bytes). An upper bound: a run skips its diagnostics
// reference, with a note, where that copy does not fit.
std::vector<MemoryItem> estimate_run_memory(const ResolvedConfig& config, const ModelConfig& model,
                                            std::int64_t available);

// "≈ 54.1 GiB: model 25.1, FP copy for eval.kld 25.1, ..." (GiB, one decimal).
std::string describe_memory(const std::vector<MemoryItem>& items);

}  // namespace serq
