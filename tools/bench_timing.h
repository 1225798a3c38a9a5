// Timing for the benchmarks under tools/: the median wall time of repeated runs after one warm-up.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace serq::bench {

template <class F>
double median_seconds(int repeats, F&& f) {
  f();  // warm-up
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace serq::bench
