// KL divergence, top-1 agreement and Δp against the full-precision model: the backend's kld op per position, and
// the statistics over positions.
#include "core/eval/kld.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/common/error.h"

namespace serq {

double quantile(const std::vector<double>& sorted, double q) {
  SERQ_CHECK(!sorted.empty(), "quantile of no values");
  const double position = q * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(position));
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (position - static_cast<double>(below)) * (sorted[above] - sorted[below]);
}

KldAccumulator::KldAccumulator(Backend& backend) : backend_(backend) {}

KldAccumulator::Sums KldAccumulator::add(const Tensor& reference_logits, const Tensor& logits, const Tensor& targets) {
  SERQ_CHECK(reference_logits.rows == logits.rows && reference_logits.cols == logits.cols &&
             logits.rows == targets.rows,
             "KL divergence needs logits of the same shape from both models and one target per row");
  rows_.clear();
  backend_.kld(reference_logits, logits, targets, rows_);
  Sums sums;
  for (const KldRow& row : rows_) {
    kld_.push_back(row.kld);
    delta_p_.push_back(row.delta_p);
    top1_agree_ += row.top1_agrees;
    reference_nll_ += row.reference_nll;
    sums.kld += row.kld;
    sums.nll += row.nll;
  }
  return sums;
}

KldResult KldAccumulator::result() const {
  SERQ_CHECK(!kld_.empty(), "KL divergence over no positions; evaluate at least one window of 2 or more tokens");
  SERQ_CHECK(std::all_of(kld_.begin(), kld_.end(), [](double x) { return std::isfinite(x); }),
             "KL divergence is not finite: a model produced NaN/Inf logits; check the weights and quantization");
  KldResult result;
  const double n = static_cast<double>(kld_.size());
  result.positions = static_cast<std::int64_t>(kld_.size());
  result.mean = std::accumulate(kld_.begin(), kld_.end(), 0.0) / n;
  double squares = 0.0;
  for (const double x : kld_) squares += (x - result.mean) * (x - result.mean);
  result.mean_stderr = kld_.size() > 1 ? std::sqrt(squares / (n - 1) / n) : 0.0;
  std::vector<double> sorted = kld_;
  std::sort(sorted.begin(), sorted.end());
  result.median = quantile(sorted, 0.5);
  result.p99 = quantile(sorted, 0.99);
  result.max = sorted.back();
  result.top1_agreement = static_cast<double>(top1_agree_) / n;
  result.dp_mean = std::accumulate(delta_p_.begin(), delta_p_.end(), 0.0) / n;
  sorted = delta_p_;
  std::sort(sorted.begin(), sorted.end());
  result.dp_p01 = quantile(sorted, 0.01);
  result.dp_p05 = quantile(sorted, 0.05);
  result.dp_median = quantile(sorted, 0.5);
  result.dp_p95 = quantile(sorted, 0.95);
  result.dp_p99 = quantile(sorted, 0.99);
  result.reference_ppl = std::exp(reference_nll_ / n);
  return result;
}

}  // namespace serq
