// Tests for float32 → IEEE half rounding (core/common/half.h): hand-worked values at the edges of the format, every
// half bit pattern round-tripped, and every midpoint between neighbouring halves rounded to the even one.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/common/half.h"

namespace serq {

TEST_CASE("f32_to_f16 on hand-worked values: normals, the largest half, subnormals, zeros, Inf and NaN") {
  CHECK(f32_to_f16(1.0f) == 0x3C00);
  CHECK(f32_to_f16(-2.0f) == 0xC000);
  CHECK(f32_to_f16(65504.0f) == 0x7BFF);                  // the largest finite half
  CHECK(f32_to_f16(65519.99f) == 0x7BFF);                 // below the midpoint to 2^16
  CHECK(f32_to_f16(65520.0f) == 0x7C00);                  // the midpoint: ties to even, and 65504's mantissa is odd
  CHECK(f32_to_f16(1e10f) == 0x7C00);
  CHECK(f32_to_f16(std::ldexp(1.0f, -14)) == 0x0400);     // the smallest normal
  CHECK(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);     // the smallest subnormal
  CHECK(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);     // half of it: a tie, to the even 0
  CHECK(f32_to_f16(std::ldexp(3.0f, -26)) == 0x0001);     // 0.75 of it: up
  CHECK(f32_to_f16(std::ldexp(1023.5f, -24)) == 0x0400);  // the largest subnormal's midpoint rounds up to a normal
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);       // a tie between 1 and 1 + 2^-10: to even
  CHECK(f32_to_f16(1.0f + std::ldexp(3.0f, -11)) == 0x3C02);       // a tie between 1 + 2^-10 and 1 + 2^-9: to even
  CHECK(f32_to_f16(2.0f - std::ldexp(1.0f, -12)) == 0x4000);       // the mantissa carries into the exponent
  CHECK(f32_to_f16(-0.0f) == 0x8000);
  CHECK(f32_to_f16(std::numeric_limits<float>::infinity()) == 0x7C00);
  CHECK(f32_to_f16(-std::numeric_limits<float>::infinity()) == 0xFC00);
  const std::uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7C00) == 0x7C00);
  CHECK((nan & 0x03FF) != 0);
  CHECK(round_to_f16(0.1f) == 0.0999755859375f);  // 0x2E66
}

TEST_CASE("every half survives f16 → f32 → f16, and every midpoint between two halves rounds to the even one") {
  for (std::uint32_t h = 0; h < 0x7C00; ++h) {  // the positive finite halves; the negatives differ by the sign
    const auto bits = static_cast<std::uint16_t>(h);
    REQUIRE(f32_to_f16(f16_to_f32(bits)) == bits);
    REQUIRE(f32_to_f16(-f16_to_f32(bits)) == (bits | 0x8000));
    if (h == 0x7BFF) continue;  // its midpoint to 2^16 is 65520, rounded to infinity (the hand-worked case above)
    const float mid = 0.5f * (f16_to_f32(bits) + f16_to_f32(static_cast<std::uint16_t>(bits + 1)));  // exact
    const std::uint16_t even = (bits & 1) ? static_cast<std::uint16_t>(bits + 1) : bits;
    REQUIRE(f32_to_f16(mid) == even);
    REQUIRE(f32_to_f16(std::nextafter(mid, 0.0f)) == bits);
    REQUIRE(f32_to_f16(std::nextafter(mid, 1e9f)) == static_cast<std::uint16_t>(bits + 1));
  }
}

}  // namespace serq
