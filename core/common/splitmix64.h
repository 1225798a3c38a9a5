// splitmix64 (Steele, Lea, Flood 2014): a fixed, fully specified 64-bit sequence for a given seed, so everything
// seeded with it (calibration offsets, random rotations) is the same on every platform and compiler.
#pragma once

#include <cstdint>

namespace serq {

class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

// The seed of sub-stream `stream` of `seed` (one per use, e.g. one per layer): the stream index is spread over all
// 64 bits and the result mixed once, so neighbouring streams share no obvious structure.
inline std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream) {
  return SplitMix64(seed ^ (stream * 0xD1B54A32D192ED03ull)).next();
}

}  // namespace serq
