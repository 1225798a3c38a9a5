// The 16-bit float formats of checkpoints (IEEE half and bfloat16) widened exactly to float32, and float32 narrowed
// to IEEE half (how packed weights store their group scales).
#pragma once

#include <cstdint>

namespace serq {

// Exact conversions: subnormals, infinities and NaNs (with their payload) included.
float bf16_to_f32(std::uint16_t bits);
float f16_to_f32(std::uint16_t bits);

// float32 to IEEE half, round to nearest with ties to even: values from 65520 up become infinity, those below 2^-25
// become ±0, subnormal halves are kept, and a NaN stays a (quiet) NaN.
std::uint16_t f32_to_f16(float value);
// value rounded to the nearest IEEE half, as a float: f16_to_f32(f32_to_f16(value)).
float round_to_f16(float value);

}  // namespace serq
