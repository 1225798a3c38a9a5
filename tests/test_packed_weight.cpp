// Tests for PackedWeight (core/quant/packed_weight.h): bytes worked by hand from the layout, dequantization equal to
// fake quantization bit for bit (INT sym/asym per row and group, every width, MXFP4, the last short group, zero
// groups), GPTQ's grid packed as it is, storage counted from what is held, and bad grids refused.
#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "core/common/error.h"
#include "core/common/half.h"
#include "core/quant/gptq.h"
#include "core/quant/int_quant.h"
#include "core/quant/packed_weight.h"
#include "tests/support/random.h"

namespace serq {
namespace {

using test::random_matrix;

QuantSpec int_spec(int bits, bool symmetric, int group) { return {bits, symmetric, group, NumberFormat::integer, true}; }

}  // namespace

TEST_CASE("INT4 symmetric codes are two a byte, low nibble first, offset by 8, with a half scale per group") {
  // One row, one group of 4: amax 0.7 → scale half(0.1) = 0.0999755859375; codes rint(x / scale) = 7, -3, 0, 1.
  Matrix w(1, 4);
  w << 0.7f, -0.3f, 0.0f, 0.1f;
  const PackedWeight packed = PackedWeight::quantize(w, int_spec(4, true, 0));
  REQUIRE(packed.storage() == PackedWeight::Storage::int_codes);
  Matrix expected(1, 4);
  const float scale = round_to_f16(0.1f);
  expected << 7 * scale, -3 * scale, 0.0f, 1 * scale;
  CHECK(packed.dequantize() == expected);
  // 16 bits of codes (7+8 = 15, -3+8 = 5, 8, 9) and one 16-bit scale.
  CHECK(packed.storage_bits() == 4 * 4 + 16);
  CHECK(packed.bits_per_weight() == 8.0);
}

TEST_CASE("dequantize(quantize(w)) equals fake_quant_rows(w) bit for bit for every INT width, sym and asym") {
  const Matrix w = random_matrix(13, 150, 1u, 0.05f);  // 150 = 4 groups of 32 and a last group of 22
  for (int bits = 2; bits <= 8; ++bits) {
    for (bool symmetric : {true, false}) {
      for (int group : {0, 32, 7}) {
        const QuantSpec spec = int_spec(bits, symmetric, group);
        INFO(spec.describe());
        Matrix fake = w;
        fake_quant_rows(fake, spec);
        const PackedWeight packed = PackedWeight::quantize(w, spec);
        CHECK(packed.dequantize() == fake);
        // Codes at exactly b bits a weight, a 16-bit scale and (asym) a b-bit zero point per group; each row's
        // streams start on a byte.
        const std::int64_t groups = group == 0 ? 1 : (150 + group - 1) / group;
        const std::int64_t expected = 13 * (8 * ((150 * bits + 7) / 8) + 16 * groups +
                                            (symmetric ? 0 : 8 * ((groups * bits + 7) / 8)));
        CHECK(packed.storage_bits() == expected);
      }
    }
  }
}

TEST_CASE("float32 scales (quant.scale_dtype: float) keep the computed scale, count 32 bits, and permute with rows") {
  // One row, one group of 4: amax 0.7 → scale 0.7 / 7 in float (0.1f), not its half 0.0999755859375.
  Matrix one(1, 4);
  one << 0.7f, -0.3f, 0.0f, 0.1f;
  const QuantSpec spec = stored_weight_spec({4, true, 0}, false);
  REQUIRE_FALSE(spec.f16_scales);
  const PackedWeight packed = PackedWeight::quantize(one, spec);
  const float scale = 0.7f / 7.0f;
  Matrix expected(1, 4);
  expected << 7 * scale, std::nearbyint(-0.3f / scale) * scale, 0.0f, std::nearbyint(0.1f / scale) * scale;
  CHECK(packed.dequantize() == expected);
  CHECK(packed.storage_bits() == 4 * 4 + 32);
  CHECK(packed.signed_codes().scales == std::vector<float>{scale});
  // Every width, sym and asym: equal to fake quantization with float scales, and different from half scales.
  const Matrix w = random_matrix(13, 150, 1u, 0.05f);
  for (int bits : {3, 4, 8}) {
    for (bool symmetric : {true, false}) {
      const QuantSpec float_spec = stored_weight_spec({bits, symmetric, 32}, false);
      Matrix fake = w;
      fake_quant_rows(fake, float_spec);
      PackedWeight float_packed = PackedWeight::quantize(w, float_spec);
      CHECK(float_packed.dequantize() == fake);
      CHECK(float_packed.dequantize() != PackedWeight::quantize(w, stored_weight_spec({bits, symmetric, 32})).dequantize());
      CHECK(float_packed.storage_bits() ==
            PackedWeight::quantize(w, stored_weight_spec({bits, symmetric, 32})).storage_bits() + 13 * 5 * 16);
      const Matrix before = float_packed.dequantize();
      const std::vector<int> order = {12, 0, 4, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11};
      float_packed.permute_rows(order);
      const Matrix after = float_packed.dequantize();
      for (int i = 0; i < 13; ++i) CHECK(after.row(i) == before.row(order[i]));
    }
  }
}

TEST_CASE("MXFP4 packs E2M1 nibbles and an E8M0 byte per block, equal to fake quantization") {
  Matrix w(1, 4);
  w << 6.0f, -0.25f, 1.25f, -3.5f;  // amax 6: scale 2^(2-2) = 1; -0.25 → -0 (tie to even), 1.25 → 1, -3.5 → -4
  const QuantSpec spec{4, true, 32, NumberFormat::mxfp4};
  const PackedWeight packed = PackedWeight::quantize(w, spec);
  const Matrix values = packed.dequantize();
  CHECK(values(0, 0) == 6.0f);
  CHECK(values(0, 1) == 0.0f);
  CHECK(std::signbit(values(0, 1)));
  CHECK(values(0, 2) == 1.0f);
  CHECK(values(0, 3) == -4.0f);
  CHECK(packed.storage_bits() == 4 * 4 + 8);
  for (int block : {32, 20}) {
    const Matrix r = random_matrix(9, 150, 2u, 0.05f);
    Matrix fake = r;
    fake_quant_rows(fake, {4, true, block, NumberFormat::mxfp4});
    CHECK(PackedWeight::quantize(r, {4, true, block, NumberFormat::mxfp4}).dequantize() == fake);
  }
}

TEST_CASE("bits per weight as stored: codes, a 16-bit scale per group, a zero point, E8M0 bytes, short last groups") {
  const auto bits = [](int rows, int cols, const QuantSpec& spec) {
    return PackedWeight::quantize(random_matrix(rows, cols, 6u, 0.05f), spec).bits_per_weight();
  };
  CHECK(bits(1, 64, int_spec(4, true, 32)) == 4.5);                        // 4 + 16/32
  CHECK(bits(10, 64, int_spec(4, true, 32)) == 4.5);                       // rows do not change the ratio
  CHECK(bits(1, 64, int_spec(4, false, 32)) == 4.625);                     // 4 + (16 + 4)/32: two zeros, one byte
  CHECK(bits(64, 172, int_spec(4, true, 32)) == Approx((172.0 * 4 + 6 * 16) / 172.0).epsilon(1e-12));  // 5 + 1 short
  CHECK(bits(64, 172, int_spec(8, true, 0)) == Approx(8.0 + 16.0 / 172.0).epsilon(1e-12));
  CHECK(bits(4, 64, int_spec(3, false, 128)) == Approx(3.0 + (16.0 + 8.0) / 64.0).epsilon(1e-12));  // 3-bit zero: a byte
  const QuantSpec mx{4, true, 32, NumberFormat::mxfp4};
  CHECK(bits(1, 64, mx) == 4.25);
  CHECK(bits(64, 172, mx) == Approx((172.0 * 4 + 6 * 8) / 172.0).epsilon(1e-12));  // 6 blocks, the last of 12
  CHECK(bits(3, 10, mx) == Approx((10.0 * 4 + 8) / 10.0).epsilon(1e-12));          // one short block
}

TEST_CASE("an all-zero group packs to +0 with scale 0, and a NaN or a scale beyond half is an error naming the row — "
          "float32 scales go further") {
  Matrix w = Matrix::Zero(2, 8);
  w(1, 0) = -0.0f;
  for (const QuantSpec& spec : {int_spec(4, true, 4), int_spec(4, false, 4), QuantSpec{4, true, 4, NumberFormat::mxfp4}}) {
    const Matrix values = PackedWeight::quantize(w, spec).dequantize();
    CHECK(values == Matrix::Zero(2, 8));
    CHECK_FALSE(std::signbit(values(1, 0)));
  }
  w(1, 5) = std::nanf("");
  try {
    PackedWeight::quantize(w, int_spec(4, true, 4));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("row 1, columns 4..7") != std::string::npos);
  }
  Matrix huge(1, 2);
  huge << 1e6f, 0.0f;
  CHECK_THROWS_WITH(PackedWeight::quantize(huge, int_spec(4, true, 0)), Catch::Contains("IEEE half range"));
  const Matrix kept = PackedWeight::quantize(huge, QuantSpec{4, true, 0}).dequantize();  // float32 scales hold it
  CHECK(kept(0, 0) == Approx(1e6f).epsilon(1e-6));
}

TEST_CASE("GPTQ's values pack on its own grid — a value off the grid is refused") {
  const Matrix w = random_matrix(8, 64, 3u, 0.05f);
  Matrix x = random_matrix(256, 64, 4u, 0.05f);
  const Eigen::MatrixXd h = (x.transpose() * x).cast<double>();
  for (const QuantSpec& spec : {int_spec(4, true, 16), int_spec(3, false, 16), QuantSpec{4, true, 16, NumberFormat::mxfp4}}) {
    INFO(spec.describe());
    Matrix values = w;
    PackedWeight packed;
    gptq_quantize(values, h, spec, GptqOptions{}, "layer", &packed);
    CHECK(packed.dequantize() == values);
  }
  Matrix off = w;
  PackedWeight packed;
  gptq_quantize(off, h, int_spec(4, true, 16), GptqOptions{}, "layer", &packed);
  const Eigen::ArrayXXf scales = Eigen::ArrayXXf::Constant(8, 4, round_to_f16(0.01f));
  off(2, 3) = 0.123456f;
  CHECK_THROWS_WITH(PackedWeight::from_grid(off, int_spec(4, true, 16), scales, Eigen::ArrayXXf::Zero(8, 4)),
                    Catch::Contains("is not on the int4-sym-g16 grid"));
}

TEST_CASE("rows permute with their codes and scales, and a row divisor divides the dequantized row") {
  const Matrix w = random_matrix(5, 40, 5u, 0.05f);
  for (const QuantSpec& spec : {int_spec(4, false, 16), QuantSpec{4, true, 16, NumberFormat::mxfp4}}) {
    PackedWeight packed = PackedWeight::quantize(w, spec);
    const Matrix before = packed.dequantize();
    const std::vector<int> order = {3, 0, 4, 1, 2};
    packed.permute_rows(order);
    Vector divisor(5);
    divisor << 1.5f, 0.25f, 3.0f, 7.0f, 1.0f;
    packed.divide_rows(divisor);
    const Matrix after = packed.dequantize();
    for (int i = 0; i < 5; ++i) CHECK(after.row(i) == (before.row(order[i]).array() / divisor(i)).matrix());
    CHECK_THROWS_WITH(packed.divide_rows(divisor), Catch::Contains("divided once"));
  }
}

TEST_CASE("16-bit checkpoint values are kept as stored and count 16 bits — so does float32") {
  const PackedWeight bf16 = PackedWeight::sixteen_bit(1, 3, {0x3F80, 0xC000, 0x3FC0}, true);
  Matrix expected(1, 3);
  expected << 1.0f, -2.0f, 1.5f;
  CHECK(bf16.dequantize() == expected);
  CHECK(PackedWeight::sixteen_bit(1, 3, {0x3C00, 0xC000, 0x3E00}, false).dequantize() == expected);
  CHECK(bf16.bits_per_weight() == 16.0);
  CHECK(PackedWeight::full_precision(expected).bits_per_weight() == 16.0);
  CHECK_THROWS_WITH(PackedWeight::sixteen_bit(2, 3, {1, 2, 3}, true), Catch::Contains("needs 6 16-bit values"));
}

}  // namespace serq
