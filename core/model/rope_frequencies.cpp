// ModelConfig::rope_frequencies: the base frequencies of each RoPE pair and the llama3 long-context scaling.
#include <cmath>
#include <numbers>

#include "core/model/config.h"

namespace serq {

std::vector<float> ModelConfig::rope_frequencies() const {
  const int head = head_dim(), half = head / 2;
  std::vector<float> frequencies(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i) {
    frequencies[static_cast<std::size_t>(i)] =
        1.0f / std::pow(rope_theta, static_cast<float>(2 * i) / static_cast<float>(head));
  }
  if (rope_scaling.type == RopeScaling::Type::llama3) {
    const RopeScaling& s = rope_scaling;
    const float original = static_cast<float>(s.original_max_position_embeddings);
    const float low_wavelength = original / s.low_freq_factor, high_wavelength = original / s.high_freq_factor;
    for (float& f : frequencies) {
      const float wavelength = 2.0f * std::numbers::pi_v<float> / f;
      if (wavelength > low_wavelength) {
        f /= s.factor;
      } else if (wavelength >= high_wavelength) {
        const float smooth = (original / wavelength - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0f - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  return frequencies;
}

}  // namespace serq
