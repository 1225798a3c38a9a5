// Paired bootstrap intervals and McNemar's exact test; see paired_stats.h.
#include "core/eval/paired_stats.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/common/error.h"
#include "core/common/splitmix64.h"
#include "core/eval/kld.h"

namespace serq {

Interval bootstrap_interval(std::size_t units, const std::function<double(std::span<const double> weights)>& statistic,
                            int resamples, std::uint64_t seed, double level) {
  SERQ_CHECK(units > 0, "a bootstrap needs at least one unit (window)");
  SERQ_CHECK(resamples >= 1, "a bootstrap needs at least one resample, not {}", resamples);
  SERQ_CHECK(level > 0.0 && level < 1.0, "a confidence level is between 0 and 1, not {}", level);
  SplitMix64 random(seed);
  std::vector<double> weights(units), values;
  values.reserve(static_cast<std::size_t>(resamples));
  for (int r = 0; r < resamples; ++r) {
    std::fill(weights.begin(), weights.end(), 0.0);
    for (std::size_t i = 0; i < units; ++i) {
      // An index uniform in [0, units): the high 64 bits of a 64 × 64-bit product (Lemire), no modulo bias to speak of.
      const auto index = static_cast<std::size_t>((static_cast<unsigned __int128>(random.next()) * units) >> 64);
      weights[index] += 1.0;
    }
    values.push_back(statistic(weights));
  }
  std::sort(values.begin(), values.end());
  return {quantile(values, (1.0 - level) / 2.0), quantile(values, (1.0 + level) / 2.0)};
}

double mcnemar_exact_p(std::int64_t only_a, std::int64_t only_b) {
  SERQ_CHECK(only_a >= 0 && only_b >= 0, "McNemar's test needs counts of 0 or more, not {} and {}", only_a, only_b);
  const std::int64_t n = only_a + only_b, k = std::min(only_a, only_b);
  if (n == 0) return 1.0;
  // P(X ≤ k) for X ~ Binomial(n, 1/2), term by term in logs: C(n, j) / 2^n.
  const double log_half_n = static_cast<double>(n) * std::log(0.5);
  double tail = 0.0;
  for (std::int64_t j = 0; j <= k; ++j) {
    const double log_choose = std::lgamma(static_cast<double>(n + 1)) - std::lgamma(static_cast<double>(j + 1)) -
                              std::lgamma(static_cast<double>(n - j + 1));
    tail += std::exp(log_choose + log_half_n);
  }
  return std::min(1.0, 2.0 * tail);
}

}  // namespace serq
