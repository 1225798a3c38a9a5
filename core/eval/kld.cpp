// KL divergence, top-1 agreement and Δp against the full-precision model, position by position, in double.
#include "core/eval/kld.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/common/error.h"

namespace serq {
namespace {

// log softmax of one row of logits, in double (Eigen's exp is vectorized for doubles).
void log_softmax(const float* row, Eigen::Index n, Eigen::ArrayXd& out) {
  out = Eigen::Map<const Eigen::ArrayXf>(row, n).cast<double>();
  const double max = out.maxCoeff();
  out -= max + std::log((out - max).exp().sum());
}

}  // namespace

double quantile(const std::vector<double>& sorted, double q) {
  SERQ_CHECK(!sorted.empty(), "quantile of no values");
  const double position = q * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(position));
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (position - static_cast<double>(below)) * (sorted[above] - sorted[below]);
}

double KldAccumulator::add(const Matrix& reference_logits, const Matrix& logits, std::span<const int> targets) {
  SERQ_CHECK(reference_logits.rows() == logits.rows() && reference_logits.cols() == logits.cols() &&
             static_cast<std::size_t>(logits.rows()) == targets.size(),
             "KL divergence needs logits of the same shape from both models and one target per row");
  Eigen::ArrayXd log_p, log_q;
  double nll = 0.0;
  const Eigen::Index vocab = logits.cols();
  for (Eigen::Index r = 0; r < logits.rows(); ++r) {
    log_softmax(reference_logits.row(r).data(), vocab, log_p);
    log_softmax(logits.row(r).data(), vocab, log_q);
    const double kld = (log_p.exp() * (log_p - log_q)).sum();
    // Rounding can leave a tiny negative sum where the distributions are equal; KL is never below 0.
    kld_.push_back(std::max(kld, 0.0));
    Eigen::Index argmax_p = 0, argmax_q = 0;
    log_p.maxCoeff(&argmax_p);
    log_q.maxCoeff(&argmax_q);
    top1_agree_ += argmax_p == argmax_q;
    const auto target = static_cast<Eigen::Index>(targets[static_cast<std::size_t>(r)]);
    delta_p_.push_back(std::exp(log_q[target]) - std::exp(log_p[target]));
    reference_nll_ -= log_p[target];
    nll -= log_q[target];
  }
  return nll;
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
