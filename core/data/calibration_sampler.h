// Calibration samples: n sequences of seq_len tokens cut from a token stream, consecutively or at seeded offsets.
#pragma once

#include <cstdint>
#include <vector>

#include "core/data/token_stream.h"

namespace serq {

// consecutive: the first n non-overlapping windows. random: GPTQ-style start offsets drawn uniformly from
// [0, size − seq_len] by splitmix64, so the samples depend on the seed alone, on every platform and compiler.
enum class CalibrationSampling { consecutive, random };

std::vector<std::vector<int>> sample_calibration(const TokenStream& stream, int n_samples, int seq_len,
                                                 CalibrationSampling mode, std::uint64_t seed);

}  // namespace serq
