// Tests for INT fake quantization (core/quant/int_quant.h): values worked out by hand from the spec in the header,
// a scalar transcription of the spec on many ties, and the grid invariants on stories260K's real weights.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/common/error.h"
#include "core/quant/int_quant.h"
#include "core/quant/int_quant_reference.h"
#include "tests/model_fixtures.h"

namespace serq {
namespace {

std::vector<float> quantized(std::vector<float> x, int bits, bool symmetric) {
  fake_quant_group(x.data(), x.data(), static_cast<int>(x.size()), bits, symmetric);
  return x;
}

Matrix row_matrix(const std::vector<float>& values) {
  return Eigen::Map<const Matrix>(values.data(), 1, static_cast<Eigen::Index>(values.size()));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("symmetric 4-bit: scale = max|x| / 7 and ties round to even") {
  // amax 7 → scale 7/7 = 1, so q = round(x): 2.5 → 2, 3.5 → 4, -2.5 → -2, -3.5 → -4, 0.5 → 0, 1.5 → 2.
  const auto y = quantized({7.0f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, 1.5f, -7.0f}, 4, true);
  CHECK(y == std::vector<float>{7.0f, 2.0f, 4.0f, -2.0f, -4.0f, 0.0f, 2.0f, -7.0f});
}

TEST_CASE("symmetric 4-bit: -max|x| maps to -7, the code -8 stays unused") {
  // amax 14 → scale 2. -14/2 = -7 → -7·2 = -14 (not -8·2 = -16); 5/2 = 2.5 → 2 → 4; 3/2 = 1.5 → 2 → 4;
  // -9/2 = -4.5 → -4 → -8.
  const auto y = quantized({-14.0f, 5.0f, 3.0f, -9.0f}, 4, true);
  CHECK(y == std::vector<float>{-14.0f, 4.0f, 4.0f, -8.0f});
}

TEST_CASE("asymmetric 4-bit: the zero point shifts the grid") {
  // lo = -1.25, hi = 13.75 → scale = 15/15 = 1, zero = round(1.25) = 1.
  // -1.25: round(-1.25) + 1 = 0 → (0-1)·1 = -1;  13.75: 14 + 1 = 15 → 14;  2.5: 2 + 1 = 3 → 2;  3.5: 4 + 1 = 5 → 4;
  // 0: 0 + 1 = 1 → 0 (zero is exact).
  const auto y = quantized({-1.25f, 13.75f, 2.5f, 3.5f, 0.0f}, 4, false);
  CHECK(y == std::vector<float>{-1.0f, 14.0f, 2.0f, 4.0f, 0.0f});
}

TEST_CASE("asymmetric 4-bit: q is clamped at the top when both roundings go up") {
  // lo = -7.5, hi = 7.5 → scale = 15/15 = 1, zero = round(7.5) = 8 (tie → even).
  // 7.5: round(7.5) + 8 = 8 + 8 = 16 → clamped to 15 → (15-8)·1 = 7;  -7.5: round(-7.5) + 8 = -8 + 8 = 0 → -8;
  // 1.25: 1 + 8 = 9 → 1;  -0.5: round(-0.5) = 0, + 8 = 8 → 0.
  const auto y = quantized({-7.5f, 7.5f, 0.0f, 1.25f, -0.5f}, 4, false);
  CHECK(y == std::vector<float>{-8.0f, 7.0f, 0.0f, 1.0f, 0.0f});
}

TEST_CASE("asymmetric 4-bit: an all-positive group still includes 0 in its range") {
  // lo = min(5, 0) = 0, hi = 30 → scale = 30/15 = 2, zero = 0. 5/2 = 2.5 → 2 → 4;  7/2 = 3.5 → 4 → 8;  30 → 15 → 30.
  const auto y = quantized({5.0f, 7.0f, 30.0f}, 4, false);
  CHECK(y == std::vector<float>{4.0f, 8.0f, 30.0f});
}

TEST_CASE("an all-zero group dequantizes to +0 without dividing by zero") {
  for (const bool symmetric : {true, false}) {
    const auto y = quantized({0.0f, 0.0f, 0.0f, 0.0f, 0.0f}, 4, symmetric);
    for (const float v : y) {
      CHECK(v == 0.0f);
      CHECK_FALSE(std::signbit(v));
    }
  }
}

TEST_CASE("a group of -0.0 behaves like zero: +0 out, never NaN") {
  for (const bool symmetric : {true, false}) {
    const auto y = quantized(std::vector<float>(9, -0.0f), 4, symmetric);  // 9: a full AVX packet plus a tail
    for (const float v : y) {
      CHECK(v == 0.0f);
      CHECK_FALSE(std::signbit(v));
    }
  }
  // Beside a nonzero value, -0.0 quantizes to (signed) zero: amax 7 → scale 1, -0.0/1 = -0 → q = 0.
  const auto y = quantized({-0.0f, 7.0f}, 4, true);
  CHECK(y[0] == 0.0f);
  CHECK(y[1] == 7.0f);
}

TEST_CASE("values whose scale underflows to 0 dequantize to +0") {
  // amax = the smallest subnormal 2^-149; amax / 7 rounds to 0 in float, so the group counts as all zero.
  const float tiny = std::numeric_limits<float>::denorm_min();
  for (const bool symmetric : {true, false}) {
    const auto y = quantized({tiny, -tiny, 0.0f}, 4, symmetric);
    CHECK(y == std::vector<float>{0.0f, 0.0f, 0.0f});
  }
}

TEST_CASE("a group with a single nonzero value reproduces it") {
  // Symmetric: amax 3.5 → scale 0.5; -3.5/0.5 = -7 → -3.5; the zeros stay 0.
  CHECK(quantized({0.0f, -3.5f, 0.0f, 0.0f}, 4, true) == std::vector<float>{0.0f, -3.5f, 0.0f, 0.0f});
  // Asymmetric: lo = -15, hi = 0 → scale 1, zero = 15; -15 → 0 → (0-15)·1 = -15; 0 → 15 → 0.
  CHECK(quantized({0.0f, -15.0f, 0.0f}, 4, false) == std::vector<float>{0.0f, -15.0f, 0.0f});
  // Asymmetric positive: lo = 0, hi = 0.3 → scale 0.3/15 = 0.02; 0.3/0.02 ≈ 15 → 15·0.02 ≈ 0.3.
  CHECK(quantized({0.3f, 0.0f}, 4, false)[0] == Approx(0.3f).epsilon(1e-6));
}

TEST_CASE("NaN or Inf in a group is an error, not a silent NaN") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const bool symmetric : {true, false}) {
    for (const float bad : {nan, inf, -inf})
      for (const int at : {0, 5, 17, 31, 32}) {  // first, inside a packet, last of the packets, the scalar tail
        std::vector<float> x(33, 1.0f);
        x[at] = bad;
        const std::string message = error_of([&] { fake_quant_group(x.data(), x.data(), 33, 4, symmetric); });
        INFO((symmetric ? "sym " : "asym ") << bad << " at " << at);
        CHECK(message ==
              "non-finite value in a quantization group; the input has NaN/Inf — check the weights/activations");
      }
  }
}

TEST_CASE("asymmetric: a finite group whose range overflows float32 is an error, not a NaN") {
  // hi - lo = 3e38 - (-3e38) = 6e38 > FLT_MAX ≈ 3.4e38, so the scale would be Inf and (q - zero) · Inf a NaN.
  std::vector<float> x = {-3e38f, 3e38f, 1.0f};
  CHECK(error_of([&] { fake_quant_group(x.data(), x.data(), 3, 4, false); }).find("wider than float32 can scale") !=
        std::string::npos);
  // Symmetric has no such hazard: scale = 3e38 / 7.
  const auto y = quantized({-3e38f, 3e38f, 1.0f}, 4, true);
  CHECK(y[0] == Approx(-3e38f));
  CHECK(y[1] == Approx(3e38f));
  CHECK(y[2] == 0.0f);
}

TEST_CASE("fake_quant_rows: a non-finite value names its row and group columns") {
  Matrix m = Matrix::Ones(3, 70);
  m(2, 40) = std::numeric_limits<float>::quiet_NaN();
  const std::string message = error_of([&] { fake_quant_rows(m, QuantSpec{4, false, 32}); });
  CHECK(message == "row 2, columns 32..63: non-finite value in a quantization group; the input has NaN/Inf — "
                   "check the weights/activations");
  m(2, 40) = 1.0f;
  m(1, 69) = std::numeric_limits<float>::infinity();  // in the short last group 64..69
  CHECK(error_of([&] { fake_quant_rows(m, QuantSpec{4, true, 32}); }).starts_with("row 1, columns 64..69: "));
}

TEST_CASE("8-bit: symmetric scale = max|x| / 127, asymmetric over 255 levels") {
  // Symmetric: amax 127 → scale 1; -63.5 → -64 (tie → even); 0.5 → 0; 1.5 → 2; 100.25 → 100.
  CHECK(quantized({127.0f, -63.5f, 0.5f, 1.5f, 100.25f}, 8, true) ==
        std::vector<float>{127.0f, -64.0f, 0.0f, 2.0f, 100.0f});
  // Asymmetric: lo = -55, hi = 200 → scale = 255/255 = 1, zero = 55; 100.5 → 100 (tie → even) + 55 = 155 → 100;
  // -54.5 → -54 + 55 = 1 → -54.
  CHECK(quantized({-55.0f, 200.0f, 100.5f, -54.5f}, 8, false) == std::vector<float>{-55.0f, 200.0f, 100.0f, -54.0f});
}

TEST_CASE("2-bit: symmetric codes -2..1 with scale max|x| / 1, asymmetric codes 0..3") {
  // Symmetric: amax 3 → scale 3/1 = 3; -3 → -1 → -3; 2/3 ≈ 0.67 → 1 → 3; 1.5/3 = 0.5 → 0 (tie → even);
  // -1.5/3 = -0.5 → 0; 0.2 → 0.
  const auto s = quantized({-3.0f, 2.0f, 1.5f, -1.5f, 0.2f}, 2, true);
  CHECK(s == std::vector<float>{-3.0f, 3.0f, 0.0f, 0.0f, 0.0f});
  // Asymmetric: lo = -1, hi = 2 → scale = 3/3 = 1, zero = 1; -1 → 0 → -1; 2 → 3 → 2; 0.5 → 0 (tie) + 1 → 0;
  // 1.5 → 2 (tie) + 1 = 3 → 2.
  CHECK(quantized({-1.0f, 2.0f, 0.5f, 1.5f}, 2, false) == std::vector<float>{-1.0f, 2.0f, 0.0f, 2.0f});
}

TEST_CASE("groups that do not divide the row: the last, shorter group has its own scale") {
  // K = 172, g = 32: groups at 0, 32, 64, 96, 128 (full) and 160..171 (12 columns).
  // Group 0: 70 at column 0 and 35 elsewhere → scale 10; 35/10 = 3.5 → 4 → 40.
  // Groups 1..4: all 35 → scale 5; 35/5 = 7 → 35.
  // Last group: 7, 2.5, -2.5, 3.5, then 1 → scale 1 (its own 12 values) → 7, 2, -2, 4, 1. With the row's scale 10,
  // 2.5 would be 0.
  std::vector<float> row(172, 35.0f);
  row[0] = 70.0f;
  const std::vector<float> last = {7.0f, 2.5f, -2.5f, 3.5f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  std::copy(last.begin(), last.end(), row.begin() + 160);
  Matrix m(2, 172);
  m.row(0) = row_matrix(row);
  m.row(1) = 2.0f * m.row(0);  // every scale doubles exactly, so row 1 quantizes to twice row 0
  fake_quant_rows(m, QuantSpec{4, true, 32});

  std::vector<float> expected(172, 35.0f);
  std::fill(expected.begin(), expected.begin() + 32, 40.0f);
  expected[0] = 70.0f;
  const std::vector<float> last_expected = {7.0f, 2.0f, -2.0f, 4.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  std::copy(last_expected.begin(), last_expected.end(), expected.begin() + 160);
  CHECK(m.row(0) == row_matrix(expected));
  CHECK(m.row(1) == 2.0f * row_matrix(expected));
}

TEST_CASE("group_size 0 (or one wider than the row) is one group per row") {
  // Whole row: amax 70 → scale 10; 2.5 → 0.25 → 0; 35 → 3.5 → 4 → 40; -14 → -1.4 → -1 → -10.
  for (const int group : {0, 128}) {
    Matrix m = row_matrix({70.0f, 2.5f, 35.0f, -14.0f});
    fake_quant_rows(m, QuantSpec{4, true, group});
    CHECK(m == row_matrix({70.0f, 0.0f, 40.0f, -10.0f}));
  }
  // Groups of 2 for contrast: {70, 2.5} → scale 10 → {70, 0}; {35, -14} → scale 5 → 35/5 = 7 → 35, -14/5 = -2.8 → -3
  // → -15.
  Matrix m = row_matrix({70.0f, 2.5f, 35.0f, -14.0f});
  fake_quant_rows(m, QuantSpec{4, true, 2});
  CHECK(m == row_matrix({70.0f, 0.0f, 35.0f, -15.0f}));
}

TEST_CASE("fake_quant_rows with a spec that is not enabled leaves the matrix as it is") {
  Matrix m = row_matrix({0.1f, -2.7f, 3.14159f});
  const Matrix before = m;
  fake_quant_rows(m, QuantSpec{16, true, 32});
  CHECK(m == before);
}

TEST_CASE("fake_quant_group writes to y and leaves x alone") {
  const std::vector<float> x = {7.0f, 2.5f};
  std::vector<float> y(2, -1.0f);
  fake_quant_group(x.data(), y.data(), 2, 4, true);
  CHECK(x == std::vector<float>{7.0f, 2.5f});
  CHECK(y == std::vector<float>{7.0f, 2.0f});
}

TEST_CASE("half scales: the scale is rounded to IEEE half before the codes are chosen") {
  // 1/7 = 2^-3 · 1.001001001|001…b rounds down to 2^-3 · (1 + 146/1024) = 0.142822265625 as a half; 1 / that =
  // 7.0017, so 1.0 keeps code 7 and dequantizes to 7 · 0.142822265625 = 0.999755859375.
  std::vector<float> x = {1.0f, -0.5f};
  fake_quant_group(x.data(), x.data(), 2, 4, true, true);
  CHECK(x == std::vector<float>{0.999755859375f, -0.5712890625f});  // -0.5 / 0.1428… = -3.5009 → -4 (not a tie)
  // Asymmetric [0, 1], 2 bits: scale 1/3 → half 0.333251953125 (2^-2 · 1.0101010101b); zero = 0; 1.0 → code 3.
  std::vector<float> y = {0.0f, 1.0f};
  fake_quant_group(y.data(), y.data(), 2, 2, false, true);
  CHECK(y == std::vector<float>{0.0f, 0.999755859375f});
  // A scale below half's smallest subnormal (2^-24) rounds to 0: the group dequantizes to +0.
  std::vector<float> tiny = {1e-8f, -1e-8f};
  fake_quant_group(tiny.data(), tiny.data(), 2, 4, true, true);
  CHECK(tiny == std::vector<float>{0.0f, 0.0f});
  // A scale beyond 65504 is refused: weights that large are corrupt for a packed format.
  std::vector<float> huge = {1e6f, 0.0f};
  CHECK(error_of([&] { fake_quant_group(huge.data(), huge.data(), 2, 4, true, true); }).find("IEEE half range") !=
        std::string::npos);
}

TEST_CASE("fake_quant_rows matches a scalar transcription of the spec, bit for bit, on many ties") {
  // Multiples of 0.25 in [-8, 8] make x / scale land exactly on .5 often (e.g. scale 1 when max|x| = 7).
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> quarter(-32, 32);
  Matrix m(37, 172);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = 0.25f * static_cast<float>(quarter(rng));
  for (const int bits : {2, 3, 4, 8})
    for (const bool symmetric : {true, false})
      for (const int group : {0, 7, 32})
        for (const bool f16 : {false, true}) {
          Matrix fast = m;
          fake_quant_rows(fast, QuantSpec{bits, symmetric, group, NumberFormat::integer, f16});
          const Matrix spec = reference_int_fake_quant(m, bits, symmetric, group, f16);
          INFO("bits " << bits << (symmetric ? " sym" : " asym") << " group " << group << (f16 ? " half" : ""));
          CHECK(fast == spec);
        }
}

TEST_CASE("stories260K weights, int4 g32: every value lands on its group's grid within half a step") {
  Matrix w = test::stories_model("stories260K-hf").layers[0].down_proj.weight;  // 64 × 172: a short last group
  REQUIRE(w.cols() == 172);
  for (const bool symmetric : {true, false}) {
    Matrix q = w;
    fake_quant_rows(q, QuantSpec{4, symmetric, 32});
    for (Eigen::Index r = 0; r < w.rows(); ++r)
      for (Eigen::Index c = 0; c < w.cols(); c += 32) {
        const Eigen::Index n = std::min<Eigen::Index>(32, w.cols() - c);
        const auto in = w.row(r).segment(c, n).array();
        const auto out = q.row(r).segment(c, n).array();
        const float lo = std::min(in.minCoeff(), 0.0f), hi = std::max(in.maxCoeff(), 0.0f);
        const float scale = symmetric ? in.abs().maxCoeff() / 7.0f : (hi - lo) / 15.0f;
        const float levels = symmetric ? 15.0f : 16.0f;  // distinct codes in use at most: -7..7, or 0..15
        REQUIRE(scale > 0.0f);
        CHECK(((out - in).abs() <= 0.5f * scale * 1.0001f).all());
        const Eigen::ArrayXf steps = (out - out.minCoeff()) / scale;  // integer multiples of the step
        CHECK(((steps - steps.round()).abs() < 1e-3f).all());
        CHECK(steps.maxCoeff() <= levels - 1.0f + 1e-3f);
      }
  }
}

TEST_CASE("describe() names the format") {
  CHECK(QuantSpec{4, true, 32}.describe() == "int4-sym-g32");
  CHECK(QuantSpec{8, false, 0}.describe() == "int8-asym-row");
  CHECK(QuantSpec{16, true, 32}.describe() == "fp");
}

TEST_CASE("validate() accepts 2..8 and 16 bits and a group size >= 0") {
  for (const int bits : {2, 3, 4, 8, 16}) CHECK_NOTHROW(validate(QuantSpec{bits, true, 0}, "quant.w_bits"));
  CHECK_NOTHROW(validate(QuantSpec{4, false, 128}, "quant.a_bits"));
}

TEST_CASE("validate(): bits out of range is a one-line error naming the key") {
  CHECK(error_of([] { validate(QuantSpec{9, true, 32}, "quant.w_bits"); }) ==
        "quant.w_bits: 9 bits is out of range; use 2..8, or 16 for full precision");
  for (const int bits : {-1, 0, 1, 12, 17, 32})
    CHECK(error_of([&] { validate(QuantSpec{bits, true, 32}, "quant.a_bits"); }).starts_with("quant.a_bits: "));
}

TEST_CASE("validate(): a negative group size is a one-line error naming the key") {
  CHECK(error_of([] { validate(QuantSpec{4, true, -32}, "quant.group_size"); }) ==
        "quant.group_size: group size -32 is negative; use a group size >= 1, or 0 for one group per row");
}

}  // namespace serq
