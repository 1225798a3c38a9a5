// KL divergence of a model's next-token distribution from the full-precision model's, as llama.cpp's
// --kl-divergence reports it: per scored position, KL(P_fp ‖ Q) = Σ_v p_fp(v)·(log p_fp(v) − log q(v)) in nats,
// whether the two models' top-1 tokens agree, and Δp = q(correct) − p_fp(correct) of the token that comes next.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/backend/backend.h"
#include "core/common/matrix.h"

namespace serq {

struct KldResult {
  std::int64_t positions = 0;
  double mean = 0, mean_stderr = 0, median = 0, p99 = 0, max = 0;  // KL(P_fp ‖ Q), nats
  double top1_agreement = 0;  // fraction of positions where both models' argmax tokens are the same
  // Δp of the correct token; a quantized model that loses confidence has a negative mean.
  double dp_mean = 0, dp_p01 = 0, dp_p05 = 0, dp_median = 0, dp_p95 = 0, dp_p99 = 0;
  double reference_ppl = 0;  // perplexity of the full-precision model on the same positions
};

// Collects the per-position statistics over chunks of logits; one value of each per position is kept (16 bytes a
// position), so the percentiles are exact.
class KldAccumulator {
 public:
  // The per-position values come from `backend`'s kld op.
  explicit KldAccumulator(Backend& backend);
  // rows × vocab logits of the full-precision and the evaluated model at the same positions, and the next tokens.
  // Returns the rows' Σ KL and the evaluated model's Σ −log q(target), as the nll op gives it, so that a caller
  // computing both needs one log-softmax of the logits.
  struct Sums {
    double kld = 0.0, nll = 0.0;
  };
  Sums add(const Tensor& reference_logits, const Tensor& logits, const Tensor& targets);
  KldResult result() const;

 private:
  Backend& backend_;
  std::vector<KldRow> rows_;  // one chunk's, reused
  std::vector<double> kld_, delta_p_;
  std::int64_t top1_agree_ = 0;
  double reference_nll_ = 0;
};

// The q-quantile (0 ≤ q ≤ 1) of ascending `sorted` values, interpolating linearly between order statistics
// (numpy's default).
double quantile(const std::vector<double>& sorted, double q);

}  // namespace serq
