// The 16-bit float formats of checkpoints (IEEE half and bfloat16) widened exactly to float32.
#pragma once

#include <cstdint>

namespace serq {

// Exact conversions: subnormals, infinities and NaNs (with their payload) included.
float bf16_to_f32(std::uint16_t bits);
float f16_to_f32(std::uint16_t bits);

}  // namespace serq
