// Tests for MXFP4 fake quantization (core/quant/mxfp4.h): values worked out by hand from the OCP MX v1.0 spec in
// the header, and the grid invariant (every output is X · an E2M1 value, the nearest one) on stories260K's weights.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/common/error.h"
#include "core/quant/int_quant.h"
#include "core/quant/mxfp4.h"
#include "tests/model_fixtures.h"

namespace serq {
namespace {

const std::vector<float> kE2M1Magnitudes = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

std::vector<float> quantized(std::vector<float> x) {
  mxfp4_fake_quant_block(x.data(), x.data(), static_cast<int>(x.size()));
  return x;
}

}  // namespace

TEST_CASE("mxfp4 block with amax 6 (X = 2^(2-2) = 1): grid values stay, ties go to the even mantissa") {
  // amax = 6, floor(log2 6) = 2, X = 2^0 = 1, so each output is the E2M1 rounding of the input itself.
  const std::vector<float> grid = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  CHECK(quantized(grid) == grid);
  // Ties: 0.25 between 0 (000) and 0.5 (001) -> 0; 0.75 between 0.5 and 1 (010) -> 1; 1.25 between 1 and 1.5
  // (011) -> 1; 1.75 between 1.5 and 2 (100) -> 2; 2.5 between 2 and 3 (101) -> 2; 3.5 between 3 and 4 (110)
  // -> 4; 5 between 4 and 6 (111) -> 4. The 6 keeps amax (and X) fixed.
  const std::vector<float> ties = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f};
  CHECK(quantized(ties) == std::vector<float>{0.0f, 1.0f, 1.0f, 2.0f, 2.0f, 4.0f, 4.0f, 6.0f});
  // Off-tie values go to the nearest: 0.3 -> 0.5, 1.3 -> 1.5, 2.6 -> 3, 4.9 -> 4, 5.1 -> 6.
  CHECK(quantized({0.3f, 1.3f, 2.6f, 4.9f, 5.1f, 6.0f}) == std::vector<float>{0.5f, 1.5f, 3.0f, 4.0f, 6.0f, 6.0f});
  // Negatives are symmetric (amax = |-6| = 6, X = 1).
  CHECK(quantized({-0.25f, -0.75f, -1.25f, -1.75f, -2.5f, -3.5f, -5.0f, -6.0f}) ==
        std::vector<float>{-0.0f, -1.0f, -1.0f, -2.0f, -2.0f, -4.0f, -4.0f, -6.0f});
}

TEST_CASE("mxfp4 scale: amax 7 saturates to 6, amax 0.3 uses X = 2^-4, amax 12 uses X = 2") {
  // amax 7: floor(log2 7) = 2, X = 2^0 = 1, 7 / 1 = 7 > 6 saturates to 6; 6.5 likewise; 1 stays.
  CHECK(quantized({7.0f, 6.5f, 1.0f, -7.0f}) == std::vector<float>{6.0f, 6.0f, 1.0f, -6.0f});
  // amax 0.3: floor(log2 0.3) = -2 (0.25 <= 0.3 < 0.5), X = 2^(-2-2) = 1/16; 0.3 · 16 = 4.8 -> 4 -> 4/16 = 0.25;
  // 0.1 · 16 = 1.6 -> 1.5 -> 0.09375; 0.01 · 16 = 0.16 -> 0 (a negative keeps its sign: -0).
  const std::vector<float> small = quantized({0.3f, 0.1f, -0.01f});
  CHECK(small == std::vector<float>{0.25f, 0.09375f, -0.0f});
  CHECK(std::signbit(small[2]));
  // amax 12: floor(log2 12) = 3, X = 2^1 = 2; 12 / 2 = 6 -> 12; 5 / 2 = 2.5 -> 2 (tie, even) -> 4; 1 / 2 -> 1.
  CHECK(quantized({12.0f, 5.0f, 1.0f}) == std::vector<float>{12.0f, 4.0f, 1.0f});
}

TEST_CASE("mxfp4 all-zero and -0.0 blocks dequantize to +0") {
  for (const float z : quantized({0.0f, 0.0f, 0.0f})) CHECK((z == 0.0f && !std::signbit(z)));
  for (const float z : quantized({-0.0f, 0.0f, -0.0f})) CHECK((z == 0.0f && !std::signbit(z)));
}

TEST_CASE("mxfp4 tiny amax: the E8M0 exponent clamps at -127 and the block flushes to zero") {
  // amax = 2^-140: floor(log2) - 2 = -142 is clamped to -127, X = 2^-127; 2^-140 / 2^-127 = 2^-13 -> 0.
  const float tiny = std::ldexp(1.0f, -140);
  for (const float z : quantized({tiny, tiny})) CHECK(z == 0.0f);
  // amax = 2^-120: X = 2^-122, in range; 2^-120 / X = 4 -> 4, so the value survives exactly.
  const float small = std::ldexp(1.0f, -120);
  CHECK(quantized({small}) == std::vector<float>{small});
}

TEST_CASE("mxfp4 NaN/Inf in a block is a serq::Error, and rows errors name the row and columns") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(quantized({1.0f, nan, 2.0f}), Error);
  CHECK_THROWS_AS(quantized({nan}), Error);
  CHECK_THROWS_AS(quantized({-inf, 1.0f}), Error);
  Matrix m = Matrix::Ones(2, 40);
  m(1, 35) = nan;
  CHECK_THROWS_WITH(mxfp4_fake_quant_rows(m), Catch::Contains("row 1, columns 32..39") && Catch::Contains("NaN/Inf"));
  CHECK_THROWS_WITH(mxfp4_fake_quant_rows(m, 0), Catch::Contains("block size 0"));
}

TEST_CASE("mxfp4 rows, K = 172: the last block of 12 uses its own scale") {
  // Blocks are columns 0..31, ..., 128..159 and 160..171. Columns 0..159 hold 0.3 with one 6 per block (X = 1,
  // 0.3 -> 0.5); the last 12 hold 0.3 (X = 1/16, 0.3 -> 0.25). One shared scale over the row would give 0.5.
  Matrix m = Matrix::Constant(1, 172, 0.3f);
  for (int block = 0; block < 5; ++block) m(0, block * 32) = 6.0f;
  mxfp4_fake_quant_rows(m);
  for (int col = 0; col < 160; ++col) CHECK(m(0, col) == (col % 32 == 0 ? 6.0f : 0.5f));
  for (int col = 160; col < 172; ++col) CHECK(m(0, col) == 0.25f);
}

}  // namespace serq

TEST_CASE("an MXFP4 QuantSpec describes itself and dispatches fake_quant_rows", "[mxfp4]") {
  const serq::QuantSpec spec{4, true, 32, serq::NumberFormat::mxfp4};
  CHECK(spec.describe() == "mxfp4-g32");
  serq::Matrix m(1, 3);
  m << 6.0f, 2.5f, -0.25f;  // amax 6: scale 2^(2-2) = 1; 2.5 ties to 2; -0.25 ties to -0
  serq::fake_quant_rows(m, spec);
  CHECK(m(0, 0) == 6.0f);
  CHECK(m(0, 1) == 2.0f);
  CHECK(m(0, 2) == 0.0f);
  CHECK_THROWS_AS(serq::validate({8, true, 32, serq::NumberFormat::mxfp4}, "quant.w_bits"), serq::Error);
  CHECK_THROWS_AS(serq::validate({4, true, 0, serq::NumberFormat::mxfp4}, "quant.group_size"), serq::Error);
}
