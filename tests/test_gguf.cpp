// Tests of GGUF reading: every ggml block type dequantized against values worked by hand from its block layout and
// against llama.cpp's own reader (reference/gguf_blocks.json, reference/smollm2-135m/dequant.json), the llama.*
// metadata mapping, and a one-line error for each kind of broken or unsupported file.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <set>
#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/formats/gguf.h"
#include "core/model/load_gguf.h"
#include "core/model/loader.h"
#include "tests/assets.h"
#include "tests/gguf_writer.h"

using Catch::Matchers::Contains;
using serq::GgmlType;
namespace fs = std::filesystem;

namespace {

const fs::path kSmolLM2 = "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf";

constexpr std::uint16_t kHalfOne = 0x3C00, kHalfHalf = 0x3800, kHalfQuarter = 0x3400, kHalfMinusOne = 0xBC00,
                        kHalfMinusHalf = 0xB800, kHalfTwo = 0x4000, kHalfMinusTwo = 0xC000;

void put_half(std::vector<std::uint8_t>& block, std::size_t at, std::uint16_t bits) {
  block[at] = static_cast<std::uint8_t>(bits & 0xFF);
  block[at + 1] = static_cast<std::uint8_t>(bits >> 8);
}

std::vector<float> dequantize_blocks(GgmlType type, const std::vector<std::uint8_t>& bytes) {
  const auto& traits = serq::ggml_type_traits(type);
  std::vector<float> out(bytes.size() / traits.block_bytes * traits.block_values);
  serq::dequantize(type, std::as_bytes(std::span(bytes)), out);
  return out;
}

// Concatenation of blocks, so that each test also checks that the last block of a row is read from its own bytes.
std::vector<std::uint8_t> concat(std::initializer_list<std::vector<std::uint8_t>> blocks) {
  std::vector<std::uint8_t> out;
  for (const auto& b : blocks) out.insert(out.end(), b.begin(), b.end());
  return out;
}

void check_values(const std::vector<float>& got, std::size_t offset, const std::function<float(int)>& expected,
                  int count) {
  for (int i = 0; i < count; ++i) {
    INFO("value " << i << " of the block at " << offset);
    CHECK(got[offset + i] == expected(i));
  }
}

std::vector<std::uint8_t> hex_bytes(const std::string& hex) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

}  // namespace

TEST_CASE("gguf: Q4_0 and Q4_1 by hand: low nibbles are values 0-15, high nibbles 16-31", "[gguf]") {
  // Q4_0 {f16 d; u8 qs[16]}: x = (q − 8)·d. Block A: d = 0.5, byte j = j | (15 − j) << 4. Block B: d = −2 (a
  // negative scale), every nibble 15 / 0. Block C: all zero bytes.
  std::vector<std::uint8_t> a(18), b(18), c(18);
  put_half(a, 0, kHalfHalf);
  for (int j = 0; j < 16; ++j) a[2 + j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
  put_half(b, 0, kHalfMinusTwo);
  for (int j = 0; j < 16; ++j) b[2 + j] = 0x0F;
  const auto q4_0 = dequantize_blocks(GgmlType::Q4_0, concat({a, b, c}));
  REQUIRE(q4_0.size() == 96);
  check_values(q4_0, 0, [](int i) { return i < 16 ? (i - 8) * 0.5f : (7 - (i - 16)) * 0.5f; }, 32);
  check_values(q4_0, 32, [](int i) { return i < 16 ? 7 * -2.0f : -8 * -2.0f; }, 32);
  check_values(q4_0, 64, [](int) { return 0.0f; }, 32);

  // Q4_1 {f16 d; f16 m; u8 qs[16]}: x = q·d + m, with d = 0.25 and m = −1; then d = −0.5, m = 2 on nibbles 3 / 12.
  std::vector<std::uint8_t> d(20), e(20);
  put_half(d, 0, kHalfQuarter);
  put_half(d, 2, kHalfMinusOne);
  for (int j = 0; j < 16; ++j) d[4 + j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
  put_half(e, 0, kHalfMinusHalf);
  put_half(e, 2, kHalfTwo);
  for (int j = 0; j < 16; ++j) e[4 + j] = 0xC3;
  const auto q4_1 = dequantize_blocks(GgmlType::Q4_1, concat({d, e}));
  check_values(q4_1, 0, [](int i) { return (i < 16 ? i : 15 - (i - 16)) * 0.25f - 1.0f; }, 32);
  check_values(q4_1, 32, [](int i) { return (i < 16 ? 3 : 12) * -0.5f + 2.0f; }, 32);
}

TEST_CASE("gguf: Q5_0, Q5_1 and Q8_0 by hand: bit j of qh is value j's fifth bit", "[gguf]") {
  // Q5_0 {f16 d; u32 qh; u8 qs[16]}: x = (q − 16)·d. qh = 0x0000FFFF: values 0–15 have the fifth bit, 16–31 not.
  std::vector<std::uint8_t> a(22), zero(22);
  put_half(a, 0, kHalfOne);
  a[2] = a[3] = 0xFF;
  for (int j = 0; j < 16; ++j) a[6 + j] = static_cast<std::uint8_t>(j | (j << 4));
  const auto q5_0 = dequantize_blocks(GgmlType::Q5_0, concat({zero, a}));
  check_values(q5_0, 0, [](int) { return 0.0f; }, 32);
  check_values(q5_0, 32, [](int i) { return i < 16 ? static_cast<float>(i) : static_cast<float>(i - 16 - 16); }, 32);

  // Q5_1 {f16 d; f16 m; u32 qh; u8 qs[16]}: x = q·d + m; d = 0.5, m = 2, qh = 0xFFFF0000.
  std::vector<std::uint8_t> b(24);
  put_half(b, 0, kHalfHalf);
  put_half(b, 2, kHalfTwo);
  b[6] = b[7] = 0xFF;
  for (int j = 0; j < 16; ++j) b[8 + j] = static_cast<std::uint8_t>(j | (j << 4));
  const auto q5_1 = dequantize_blocks(GgmlType::Q5_1, b);
  check_values(q5_1, 0, [](int i) { return i < 16 ? i * 0.5f + 2.0f : (i - 16 + 16) * 0.5f + 2.0f; }, 32);

  // Q8_0 {f16 d; i8 qs[32]}: x = q·d; d = −0.5 and q = 8j − 128 (−128 … 120).
  std::vector<std::uint8_t> c(34);
  put_half(c, 0, kHalfMinusHalf);
  for (int j = 0; j < 32; ++j) c[2 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(8 * j - 128));
  const auto q8_0 = dequantize_blocks(GgmlType::Q8_0, concat({c, std::vector<std::uint8_t>(34)}));
  check_values(q8_0, 0, [](int i) { return (8 * i - 128) * -0.5f; }, 32);
  check_values(q8_0, 32, [](int) { return 0.0f; }, 32);
}

TEST_CASE("gguf: Q2_K by hand: 16 sub-blocks with 4-bit scale and min, four 2-bit planes per 32 bytes", "[gguf]") {
  // {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}: x = d·sc·q − dmin·m for sub-block i/16. Every qs byte 0xE4 holds
  // 0, 1, 2, 3 in its planes (shift 0, 2, 4, 6), and plane p serves values 32p … 32p + 31 of each 128-value half.
  std::vector<std::uint8_t> a(84);
  for (int i = 0; i < 16; ++i) a[i] = static_cast<std::uint8_t>(i | ((15 - i) << 4));  // sc = i, m = 15 − i
  for (int k = 0; k < 64; ++k) a[16 + k] = 0xE4;
  put_half(a, 80, kHalfHalf);
  put_half(a, 82, kHalfQuarter);
  // A second block: d = −1 (negative), qs byte k = (k % 4) · 0x55 puts k % 4 in every plane, so value i reads byte
  // 32·(i / 128) + i % 32.
  std::vector<std::uint8_t> b(84);
  for (int i = 0; i < 16; ++i) b[i] = 0x01;  // sc = 1, m = 0
  for (int k = 0; k < 64; ++k) b[16 + k] = static_cast<std::uint8_t>((k % 4) * 0x55);
  put_half(b, 80, kHalfMinusOne);
  const auto y = dequantize_blocks(GgmlType::Q2_K, concat({a, b}));
  REQUIRE(y.size() == 512);
  check_values(y, 0, [](int i) { return 0.5f * (i / 16) * ((i % 128) / 32) - 0.25f * (15 - i / 16); }, 256);
  check_values(y, 256, [](int i) { return -1.0f * ((i % 32) % 4); }, 256);
}

TEST_CASE("gguf: Q3_K by hand: 6-bit scales offset by 32, hmask bit p clears the −4 of plane p", "[gguf]") {
  // {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}. Every 6-bit scale 34 (low nibbles 2, high pairs 0b10): sc − 32
  // = 2. qs bytes 0xE4: plane p (p = 0..7 over both halves) has low bits p % 4. hmask bytes 0x0F: planes 0–3 (the
  // first half) keep their value, planes 4–7 subtract 4.
  std::vector<std::uint8_t> a(110);
  for (int k = 0; k < 32; ++k) a[k] = 0x0F;
  for (int k = 0; k < 64; ++k) a[32 + k] = 0xE4;
  for (int k = 0; k < 8; ++k) a[96 + k] = 0x22;
  for (int k = 8; k < 12; ++k) a[96 + k] = 0xAA;
  put_half(a, 108, kHalfHalf);
  // Second block: scales all 0 (sc − 32 = −32, a negative scale), hmask all set, qs 0xE4.
  std::vector<std::uint8_t> b(110);
  for (int k = 0; k < 32; ++k) b[k] = 0xFF;
  for (int k = 0; k < 64; ++k) b[32 + k] = 0xE4;
  put_half(b, 108, kHalfOne);
  // Third block: two scales differ. Byte 5 holds the low nibbles of scales 5 (2) and 13 (now 15); byte 9 the high
  // pairs of scales 1, 5, 9, 13 (now 0b10, 0b10, 0b11, 0b10). Scale 13 = 15 + 2·16 = 47, scale 9 = 2 + 3·16 = 50.
  std::vector<std::uint8_t> c = a;
  c[96 + 5] = 0xF2;
  c[96 + 9] = 0xBA;
  const auto y = dequantize_blocks(GgmlType::Q3_K, concat({a, b, c}));
  REQUIRE(y.size() == 768);
  const auto plane = [](int i) { return (i / 128) * 4 + (i % 128) / 32; };
  check_values(y, 0, [&](int i) { return 0.5f * 2 * ((plane(i) % 4) - (plane(i) < 4 ? 0 : 4)); }, 256);
  check_values(y, 256, [&](int i) { return -32.0f * (plane(i) % 4); }, 256);
  check_values(y, 512, [&](int i) {
    const int sub = i / 16;
    const int scale = sub == 13 ? 47 - 32 : sub == 9 ? 50 - 32 : 2;
    return 0.5f * scale * ((plane(i) % 4) - (plane(i) < 4 ? 0 : 4));
  }, 256);
}

namespace {

// The 12 scale bytes of a Q4_K/Q5_K super-block with scale j + 1 and min 2j for sub-block j, except sub-block 4
// whose scale is 63: its low nibble sits in byte 8 and its top two bits in byte 0's bits 6–7.
std::vector<std::uint8_t> k4_scales() {
  return {0xC1, 2, 3, 4,                                   // scales 0–3 (= 1..4); byte 0's top bits: scale 4's high
          0, 2, 4, 6,                                      // mins 0–3 (= 0, 2, 4, 6)
          0x8F, 6 | (10 << 4), 7 | (12 << 4), 8 | (14 << 4)};  // low nibbles of scales 4–7, mins 4–7 (8, 10, 12, 14)
}
int k4_scale(int sub) { return sub == 4 ? 63 : sub + 1; }
int k4_min(int sub) { return 2 * sub; }

}  // namespace

TEST_CASE("gguf: Q4_K and Q5_K by hand: 6-bit scales and mins, two sub-blocks per 32 bytes", "[gguf]") {
  // Q4_K {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}: x = d·sc·q − dmin·m; sub-block 2k takes the low nibbles of
  // bytes 32k … 32k + 31 and sub-block 2k + 1 their high nibbles. qs bytes 0x21: q = 1 (even), 2 (odd).
  std::vector<std::uint8_t> a(144);
  put_half(a, 0, kHalfOne);
  put_half(a, 2, kHalfHalf);
  const auto scales = k4_scales();
  std::copy(scales.begin(), scales.end(), a.begin() + 4);
  for (int k = 0; k < 128; ++k) a[16 + k] = 0x21;
  std::vector<std::uint8_t> negative = a;
  put_half(negative, 0, kHalfMinusTwo);
  const auto y = dequantize_blocks(GgmlType::Q4_K, concat({a, negative}));
  REQUIRE(y.size() == 512);
  const auto q4 = [](int i) { return (i / 32) % 2 == 0 ? 1 : 2; };
  check_values(y, 0, [&](int i) { return 1.0f * k4_scale(i / 32) * q4(i) - 0.5f * k4_min(i / 32); }, 256);
  check_values(y, 256, [&](int i) { return -2.0f * k4_scale(i / 32) * q4(i) - 0.5f * k4_min(i / 32); }, 256);

  // Q5_K {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: bit s of qh[l] is the fifth bit of value l of
  // sub-block s. qh bytes 0xAA: the odd sub-blocks have it, so q = 1 (even) and 2 + 16 (odd).
  std::vector<std::uint8_t> b(176);
  put_half(b, 0, kHalfOne);
  put_half(b, 2, kHalfHalf);
  std::copy(scales.begin(), scales.end(), b.begin() + 4);
  for (int k = 0; k < 32; ++k) b[16 + k] = 0xAA;
  for (int k = 0; k < 128; ++k) b[48 + k] = 0x21;
  const auto z = dequantize_blocks(GgmlType::Q5_K, concat({std::vector<std::uint8_t>(176), b}));
  check_values(z, 0, [](int) { return 0.0f; }, 256);
  const auto q5 = [](int i) { return (i / 32) % 2 == 0 ? 1 : 18; };
  check_values(z, 256, [&](int i) { return 1.0f * k4_scale(i / 32) * q5(i) - 0.5f * k4_min(i / 32); }, 256);
}

TEST_CASE("gguf: Q6_K by hand: 4 low bits from ql, 2 high bits from qh, signed 8-bit scales", "[gguf]") {
  // {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: x = d·sc·(q − 32). In each 128-value half, quarter r (values
  // 32r … 32r + 31, l = i % 32) takes: r = 0 the low nibble of ql[l] and qh bits 0–1; r = 1 the low nibble of ql[l + 32]
  // and bits 2–3; r = 2 the high nibble of ql[l] and bits 4–5; r = 3 the high nibble of ql[l + 32] and bits 6–7. Its
  // scale is sc[8h + l / 16 + 2r]. ql bytes 0x21 and qh bytes 0xE4 give q = 1, 17, 34, 50 in the four quarters.
  std::vector<std::uint8_t> a(210);
  for (int k = 0; k < 128; ++k) a[k] = 0x21;
  for (int k = 0; k < 64; ++k) a[128 + k] = 0xE4;
  for (int k = 0; k < 16; ++k) a[192 + k] = static_cast<std::uint8_t>(static_cast<std::int8_t>(k - 8));
  put_half(a, 208, kHalfHalf);
  const auto y = dequantize_blocks(GgmlType::Q6_K, concat({std::vector<std::uint8_t>(210), a}));
  check_values(y, 0, [](int) { return 0.0f; }, 256);
  check_values(y, 256, [](int i) {
    const int half = i / 128, quarter = (i % 128) / 32, l = i % 32;
    const int q = std::array{1, 17, 34, 50}[quarter] - 32;
    const int sc = 8 * half + l / 16 + 2 * quarter - 8;
    return 0.5f * sc * q;
  }, 256);
}

TEST_CASE("gguf: by hand, an all-zero block of every quantized type is all zeros, and Q5 blocks take negative scales",
          "[gguf]") {
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K,
                        GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    const auto& traits = serq::ggml_type_traits(type);
    INFO(traits.name);
    const auto y = dequantize_blocks(type, std::vector<std::uint8_t>(2 * traits.block_bytes));
    CHECK(std::all_of(y.begin(), y.end(), [](float v) { return v == 0.0f; }));  // d = 0 (and dmin = 0)
  }
  // Q5_0 with d = −0.5, every q = 31 (nibbles 15, all fifth bits set): x = (31 − 16)·(−0.5) = −7.5.
  std::vector<std::uint8_t> a(22, 0xFF);
  put_half(a, 0, kHalfMinusHalf);
  check_values(dequantize_blocks(GgmlType::Q5_0, a), 0, [](int) { return -7.5f; }, 32);
  // Q5_1 with d = −1 and m = 2, every q = 16 (nibbles 0, fifth bits set): x = 16·(−1) + 2 = −14.
  std::vector<std::uint8_t> b(24, 0x00);
  put_half(b, 0, kHalfMinusOne);
  put_half(b, 2, kHalfTwo);
  b[4] = b[5] = b[6] = b[7] = 0xFF;
  check_values(dequantize_blocks(GgmlType::Q5_1, b), 0, [](int) { return -14.0f; }, 32);
  // Q5_K with d = −1, dmin = 0.5, the k4_scales() scales and mins, qs 0x21 and no fifth bits: q = 1 (even
  // sub-blocks), 2 (odd): x = −sc·q − 0.5·m.
  std::vector<std::uint8_t> c(176);
  put_half(c, 0, kHalfMinusOne);
  put_half(c, 2, kHalfHalf);
  const auto scales = k4_scales();
  std::copy(scales.begin(), scales.end(), c.begin() + 4);
  for (int k = 0; k < 128; ++k) c[48 + k] = 0x21;
  check_values(dequantize_blocks(GgmlType::Q5_K, c), 0, [](int i) {
    return -1.0f * k4_scale(i / 32) * ((i / 32) % 2 == 0 ? 1 : 2) - 0.5f * k4_min(i / 32);
  }, 256);
}

TEST_CASE("gguf: every block of reference/gguf_blocks.json dequantizes as llama.cpp's reader does", "[gguf]") {
  const auto reference = nlohmann::json::parse(serq::test::read_bytes(serq::test::asset("reference/gguf_blocks.json")));
  REQUIRE(reference.size() == 12);
  for (const auto& [name, entry] : reference.items()) {
    INFO(name);
    const auto id = entry.at("ggml_type").get<std::uint32_t>();
    const auto traits = serq::ggml_type_traits(id);
    REQUIRE(traits);
    CHECK(traits->name == name);
    CHECK(traits->block_values == entry.at("block_elems").get<std::int64_t>());
    CHECK(traits->block_bytes == entry.at("block_bytes").get<std::size_t>());
    const auto bytes = hex_bytes(entry.at("raw_hex").get<std::string>());
    const auto expected = entry.at("values").get<std::vector<double>>();
    const auto got = dequantize_blocks(static_cast<GgmlType>(id), bytes);
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      INFO("value " << i << " (block " << i / traits->block_values << ")");
      CHECK(got[i] == static_cast<float>(expected[i]));
    }
  }
}

TEST_CASE("gguf: SmolLM2's tensors dequantize to reference/smollm2-135m/dequant.json", "[gguf][smollm2]") {
  const auto file = serq::GgufFile::open(serq::test::asset(kSmolLM2));
  CHECK(file.version() == 3);
  CHECK(file.tensors().size() == 272);  // 30 layers × 9, the embedding and the final norm; no output.weight
  const auto reference =
      nlohmann::json::parse(serq::test::read_bytes(serq::test::asset("reference/smollm2-135m/dequant.json")));
  for (const auto& [name, entry] : reference.items()) {
    INFO(name);
    const serq::GgufTensorInfo* info = file.find(name);
    REQUIRE(info);
    CHECK(static_cast<int>(info->type) == entry.at("ggml_type").get<int>());
    const auto shape = entry.at("shape_rows_cols").get<std::vector<std::int64_t>>();
    const std::vector<std::int64_t> ne(shape.rbegin(), shape.rend());  // GGUF lists the row length first
    CHECK(info->ne == ne);
    std::vector<float> values(static_cast<std::size_t>(info->numel()));
    file.read_f32(name, values);
    double sum = 0, sum_sq = 0;
    for (float v : values) sum += v, sum_sq += static_cast<double>(v) * v;
    CHECK(sum == Approx(entry.at("sum").get<double>()).epsilon(1e-6));
    CHECK(sum_sq == Approx(entry.at("sum_sq").get<double>()).epsilon(1e-6));
    const auto first = entry.at("first_row_first8").get<std::vector<double>>();
    const auto last = entry.at("last_row_last8").get<std::vector<double>>();
    for (std::size_t i = 0; i < first.size(); ++i) CHECK(values[i] == Approx(first[i]).epsilon(1e-6));
    for (std::size_t i = 0; i < last.size(); ++i) {
      CHECK(values[values.size() - last.size() + i] == Approx(last[i]).epsilon(1e-6));
    }
  }
}

namespace {

// A complete tiny llama GGUF in F32 (dim 8, 2 heads, 1 KV head, FFN 16, 1 layer, vocab 10), minus the metadata keys
// and tensors named in `skip`, plus whatever `extra` adds.
struct TinyLlama {
  std::set<std::string> skip;
  std::function<void(serq::test::GgufWriter&)> extra;
  std::string arch = "llama";

  fs::path write(const std::string& name) const {
    serq::test::GgufWriter w;
    auto key = [&](const std::string& k) { return !skip.contains(k); };
    w.add_string("general.architecture", arch);
    if (key("block_count")) w.add_u32(arch + ".block_count", 1);
    w.add_u32(arch + ".embedding_length", 8);
    w.add_u32(arch + ".feed_forward_length", 16);
    w.add_u32(arch + ".attention.head_count", 2);
    w.add_u32(arch + ".attention.head_count_kv", 1);
    w.add_u32(arch + ".context_length", 32);
    if (key("rms_eps")) w.add_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-5f);
    w.add_f32(arch + ".rope.freq_base", 500.0f);
    w.add_u32("tokenizer.ggml.bos_token_id", 3);
    if (extra) extra(w);
    auto tensor = [&](const std::string& n, std::vector<std::uint64_t> ne) {
      if (skip.contains(n)) return;
      std::size_t count = 1;
      for (auto d : ne) count *= d;
      std::vector<float> values(count);
      for (std::size_t i = 0; i < count; ++i) values[i] = 0.01f * static_cast<float>(i % 17) - 0.05f;
      w.add_f32_tensor(n, ne, values);
    };
    tensor("token_embd.weight", {8, 10});
    tensor("blk.0.attn_norm.weight", {8});
    tensor("blk.0.attn_q.weight", {8, 8});
    tensor("blk.0.attn_k.weight", {8, 4});
    tensor("blk.0.attn_v.weight", {8, 4});
    tensor("blk.0.attn_output.weight", {8, 8});
    tensor("blk.0.ffn_norm.weight", {8});
    tensor("blk.0.ffn_gate.weight", {8, 16});
    tensor("blk.0.ffn_up.weight", {8, 16});
    tensor("blk.0.ffn_down.weight", {16, 8});
    tensor("output_norm.weight", {8});
    const fs::path path = serq::test::scratch_dir("gguf-" + name) / "model.gguf";
    serq::test::write_bytes(path, w.bytes());
    return path;
  }
};

void check_load_fails(const fs::path& path, const std::vector<std::string>& words) {
  try {
    serq::load_model(path);
    FAIL("loading " << path << " did not fail");
  } catch (const serq::Error& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK(message.find('\n') == std::string::npos);
    CHECK_THAT(message, Contains(path.string()));
    for (const std::string& word : words) CHECK_THAT(message, Contains(word));
  }
}

}  // namespace

TEST_CASE("gguf: llama metadata maps to the model config — no output.weight means a tied head", "[gguf]") {
  const fs::path path = TinyLlama{}.write("tiny");
  const serq::Model model = serq::load_model(path);
  const serq::ModelConfig& c = model.config;
  CHECK(c.dim == 8);
  CHECK(c.hidden_dim == 16);
  CHECK(c.n_layers == 1);
  CHECK(c.n_heads == 2);
  CHECK(c.n_kv_heads == 1);
  CHECK(c.vocab_size == 10);  // from token_embd.weight when there is no llama.vocab_size
  CHECK(c.max_seq_len == 32);
  CHECK(c.rope_theta == 500.0f);
  CHECK(c.rope_layout == serq::RopeLayout::interleaved);  // llama.cpp's converter permutes q/k for interleaved pairs
  CHECK(c.bos_id == 3);
  CHECK(c.tied_embeddings);
  CHECK(model.lm_head.weight == model.embed);
  // Row r of a (d_out × d_in) weight is GGUF row r: element (r, c) is value r·ne0 + c of the tensor.
  CHECK(model.layers[0].down_proj.weight.rows() == 8);
  CHECK(model.layers[0].down_proj.weight(1, 2) == Approx(0.01f * ((16 + 2) % 17) - 0.05f));
  CHECK(model.embed(9, 7) == Approx(0.01f * ((9 * 8 + 7) % 17) - 0.05f));
  CHECK_THAT(model.source, Contains("gguf-v3 F32"));

  TinyLlama untied;
  untied.extra = [](serq::test::GgufWriter& w) {
    w.add_f32_tensor("output.weight", {8, 10}, std::vector<float>(80, 0.5f));
  };
  const serq::Model head = serq::load_model(untied.write("untied"));
  CHECK_FALSE(head.config.tied_embeddings);
  CHECK(head.lm_head.weight(9, 7) == 0.5f);
}

TEST_CASE("gguf: broken files fail with one line naming the file and the fault", "[gguf]") {
  const std::string good = serq::test::read_bytes(TinyLlama{}.write("good"));
  const fs::path dir = serq::test::scratch_dir("gguf-broken");
  auto with_bytes = [&](const std::string& name, const std::string& bytes) {
    serq::test::write_bytes(dir / name, bytes);
    return dir / name;
  };

  std::string bad_magic = good;
  bad_magic[0] = 'X';
  check_load_fails(with_bytes("magic.gguf", bad_magic), {"not a GGUF file"});
  std::string version = good;
  version[4] = 7;
  check_load_fails(with_bytes("version.gguf", version), {"GGUF version 7", "versions 2 and 3"});
  check_load_fails(with_bytes("header.gguf", good.substr(0, 100)), {"ends at byte 100", "truncated"});
  check_load_fails(with_bytes("data.gguf", good.substr(0, good.size() - 4)), {"output_norm.weight", "past the end"});

  serq::test::GgufWriter misaligned;
  misaligned.add_string("general.architecture", "llama");
  misaligned.add_tensor("token_embd.weight", {8, 10}, 0, std::string(320, '\0'), /*offset_override=*/4);
  check_load_fails(with_bytes("misaligned.gguf", misaligned.bytes()), {"token_embd.weight", "offset 4", "alignment 32"});

  TinyLlama missing_key;
  missing_key.skip = {"block_count"};
  check_load_fails(missing_key.write("missing-key"), {"llama.block_count", "missing"});
  TinyLlama missing_tensor;
  missing_tensor.skip = {"blk.0.ffn_up.weight"};
  check_load_fails(missing_tensor.write("missing-tensor"), {"blk.0.ffn_up.weight", "missing"});
  TinyLlama wrong_type;
  wrong_type.skip = {"rms_eps"};
  wrong_type.extra = [](serq::test::GgufWriter& w) { w.add_string("llama.attention.layer_norm_rms_epsilon", "1e-5"); };
  check_load_fails(wrong_type.write("wrong-type"), {"llama.attention.layer_norm_rms_epsilon", "is a string",
                                                    "expected a number"});
}

TEST_CASE("gguf: what serq does not read is refused with one line", "[gguf]") {
  TinyLlama other_arch;
  other_arch.arch = "qwen3moe";
  check_load_fails(other_arch.write("arch"), {"general.architecture is 'qwen3moe'", "llama"});

  TinyLlama iq_type;
  iq_type.skip = {"blk.0.ffn_up.weight"};
  iq_type.extra = [](serq::test::GgufWriter& w) { w.add_tensor("blk.0.ffn_up.weight", {256, 16}, 16, ""); };
  check_load_fails(iq_type.write("iq"), {"blk.0.ffn_up.weight", "IQ2_XXS", "does not read"});
  TinyLlama unknown_type;
  unknown_type.extra = [](serq::test::GgufWriter& w) { w.add_tensor("extra.weight", {8}, 99, ""); };
  check_load_fails(unknown_type.write("unknown-type"), {"extra.weight", "type 99"});

  TinyLlama bias;
  bias.extra = [](serq::test::GgufWriter& w) { w.add_f32_tensor("blk.0.attn_q.bias", {8}, std::vector<float>(8)); };
  check_load_fails(bias.write("bias"), {"blk.0.attn_q.bias", "not part of a LLaMA model"});
  TinyLlama scaling;
  scaling.extra = [](serq::test::GgufWriter& w) { w.add_string("llama.rope.scaling.type", "yarn"); };
  check_load_fails(scaling.write("scaling"), {"rope.scaling.type", "yarn"});

  TinyLlama nan;
  nan.skip = {"output_norm.weight"};
  nan.extra = [](serq::test::GgufWriter& w) {
    std::vector<float> v(8, 1.0f);
    v[5] = NAN;
    w.add_f32_tensor("output_norm.weight", {8}, v);
  };
  check_load_fails(nan.write("nan"), {"output_norm.weight", "nan", "index 5"});
}

namespace {

// The byte position of tensor `name`'s data offset in a GGUF file's tensor infos: after the length-prefixed name,
// n_dims (u32), the extents (u64 each) and the type (u32).
std::size_t offset_field(const std::string& bytes, const std::string& name) {
  std::string prefixed(8, '\0');
  const std::uint64_t length = name.size();
  std::memcpy(prefixed.data(), &length, 8);
  prefixed += name;
  const std::size_t at = bytes.find(prefixed);
  REQUIRE(at != std::string::npos);
  std::uint32_t n_dims = 0;
  std::memcpy(&n_dims, bytes.data() + at + prefixed.size(), 4);
  return at + prefixed.size() + 4 + 8 * n_dims + 4;
}

}  // namespace

TEST_CASE("gguf: SmolLM2's file with two tensors on the same bytes is refused, naming both", "[gguf][bad-input]") {
  const fs::path real = serq::test::asset(kSmolLM2);
  std::string bytes = serq::test::read_bytes(real);
  const serq::GgufFile file = serq::GgufFile::open(real);
  const std::uint64_t first = file.find("blk.0.attn_q.weight")->offset;
  std::memcpy(bytes.data() + offset_field(bytes, "blk.1.attn_q.weight"), &first, 8);  // same size, same type
  const fs::path path = serq::test::scratch_dir("gguf-overlap") / "overlap.gguf";
  serq::test::write_bytes(path, bytes);
  check_load_fails(path, {"blk.0.attn_q.weight", "blk.1.attn_q.weight", "overlap"});
}
