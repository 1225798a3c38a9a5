// Statistics for comparing two evaluations of the same windows and items: a paired percentile bootstrap over units
// (windows), and McNemar's exact test on paired right/wrong outcomes.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

namespace serq {

struct Interval {
  double low = 0.0, high = 0.0;
};

// The percentile interval (numpy's linear quantiles at (1 − level)/2 and (1 + level)/2) of `statistic` over
// `resamples` bootstrap resamples of `units` paired units. Each resample draws `units` indices uniformly with
// replacement from a SplitMix64 stream of `seed` and passes each unit's multiplicity (0, 1, 2, ...) as its weight, so
// a statistic of weighted sums sees the resampled data; both runs of a pair get the same weights. The same seed gives
// the same interval on every platform.
Interval bootstrap_interval(std::size_t units, const std::function<double(std::span<const double> weights)>& statistic,
                            int resamples, std::uint64_t seed, double level);

// The two-sided exact McNemar p-value for `only_a` units right under A only and `only_b` right under B only: twice the
// Binomial(only_a + only_b, 1/2) probability of a count at most min(only_a, only_b), capped at 1 (1 when both are 0),
// as statsmodels' mcnemar(exact=True).
double mcnemar_exact_p(std::int64_t only_a, std::int64_t only_b);

}  // namespace serq
