// Seeded, platform-independent calibration sampling: splitmix64 reduced by an explicit modulo (bias < range/2^64).
#include "core/data/calibration_sampler.h"

#include "core/common/error.h"
#include "core/common/splitmix64.h"

namespace serq {

std::vector<std::vector<int>> sample_calibration(const TokenStream& stream, int n_samples, int seq_len,
                                                 CalibrationSampling mode, std::uint64_t seed) {
  SERQ_CHECK(n_samples >= 1, "calibration.samples: {} is not a count of samples; use 1 or more", n_samples);
  SERQ_CHECK(seq_len >= 2, "calibration.seq_len: {} is too short; use 2 or more", seq_len);
  const std::size_t size = stream.tokens.size();
  const std::size_t length = static_cast<std::size_t>(seq_len);
  const std::size_t needed = mode == CalibrationSampling::consecutive ? static_cast<std::size_t>(n_samples) * length
                                                                      : length;
  SERQ_CHECK(size >= needed, "calibration data '{}': {} samples of {} tokens ({}) need {} tokens but the stream has "
             "{}; use fewer or shorter samples or a larger dataset", stream.name, n_samples, seq_len,
             mode == CalibrationSampling::consecutive ? "consecutive" : "random", needed, size);

  std::vector<std::vector<int>> samples;
  samples.reserve(static_cast<std::size_t>(n_samples));
  SplitMix64 generator(seed);
  const std::uint64_t starts = size - length + 1;  // offsets 0 .. size − seq_len
  for (std::size_t i = 0; i < static_cast<std::size_t>(n_samples); ++i) {
    const std::size_t begin =
        mode == CalibrationSampling::consecutive ? i * length : static_cast<std::size_t>(generator.next() % starts);
    samples.emplace_back(stream.tokens.begin() + static_cast<std::ptrdiff_t>(begin),
                         stream.tokens.begin() + static_cast<std::ptrdiff_t>(begin + length));
  }
  return samples;
}

}  // namespace serq
