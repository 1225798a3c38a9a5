// Perplexity over evaluation windows: each window scores its tokens 1..end given its own prefix.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/eval/kld.h"
#include "core/eval/kld_reference.h"
#include "core/formats/result_file.h"
#include "core/model/model.h"
#include "core/model/resident_model.h"

namespace serq {

struct PerplexityResult {
  double ppl = 0.0;
  double mean_nll = 0.0;             // natural log
  std::int64_t scored_tokens = 0;
  std::int64_t windows = 0;
  double seconds = 0.0;
  std::optional<KldResult> kld;  // with a reference model: the same positions against full precision
  std::vector<WindowScore> window_scores;  // in window order (core/formats/result_file.h)
};

// Windows of equal length are batched `batch_size` at a time; batching does not change the result.
// Shows progress with an ETA on stderr under the label `what`. With a `reference` (the full-precision model), the
// KL divergence statistics are collected in the same pass from both models' logits of each batch, so logits stay
// bounded by one chunk whatever the number of windows (the reference's hidden states may be kept across calls).
// Per batch of windows only the token ids cross to the backend, and only per-position results (nll or kld rows)
// come back.
PerplexityResult evaluate_perplexity(const ResidentModel& model, const std::vector<std::span<const int>>& windows,
                                     int batch_size, const std::string& what = "perplexity",
                                     KldReference* reference = nullptr);
// The same with `model` made resident on model.backend for the call.
PerplexityResult evaluate_perplexity(const Model& model, const std::vector<std::span<const int>>& windows,
                                     int batch_size, const std::string& what = "perplexity",
                                     KldReference* reference = nullptr);

}  // namespace serq
