// Exact widening of IEEE half and bfloat16 bit patterns to float32, and rounding of float32 to IEEE half.
#include "core/common/half.h"

#include <bit>
#include <cmath>

namespace serq {

float bf16_to_f32(std::uint16_t bits) { return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16); }

float f16_to_f32(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits >> 15) << 31;
  const std::uint32_t exponent = (bits >> 10) & 0x1f;
  const std::uint32_t mantissa = bits & 0x3ff;
  if (exponent == 0) {  // zero or subnormal: mantissa · 2^-24, exact in float32
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN (payload kept)
  return std::bit_cast<float>(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

std::uint16_t f32_to_f16(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7e00u | ((magnitude >> 13) & 0x1ffu);  // NaN: quiet, payload's top
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // 65520 (halfway from 65504 to 2^16) and up: infinity
  if (magnitude < 0x38800000u) {  // below 2^-14: a subnormal half, k · 2^-24 with k = rint(|value| · 2^24)
    const float units = std::nearbyint(std::ldexp(std::fabs(value), 24));  // exact scaling; rint ties to even
    return sign | static_cast<std::uint16_t>(units);  // k = 1024 is the smallest normal half, encoded the same
  }
  const std::uint32_t rebiased = magnitude - ((127u - 15u) << 23);  // exponent from float's bias to half's
  const std::uint32_t rounded = rebiased + 0x0fffu + ((rebiased >> 13) & 1u);  // nearest, ties to even mantissa
  return sign | static_cast<std::uint16_t>(rounded >> 13);  // a mantissa carry moves into the exponent, as it must
}

float round_to_f16(float value) { return f16_to_f32(f32_to_f16(value)); }

}  // namespace serq
