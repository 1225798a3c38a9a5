// ggml block dequantization, one function per type, written from the block layouts of ggml-common.h.
//
// Legacy blocks hold 32 values; K-quant super-blocks hold 256 (QK_K) in sub-blocks with 6- or 8-bit scales.
// Nibble order: in Q4/Q5 legacy blocks byte j holds value j in its low nibble and value j + 16 in its high one.
#include "core/formats/ggml_types.h"

#include <fmt/format.h>

#include <array>
#include <cassert>
#include <cstring>

#include "core/common/half.h"

namespace serq {
namespace {

constexpr std::int64_t kLegacyBlock = 32;  // QK4_0, QK4_1, QK5_0, QK5_1, QK8_0
constexpr std::int64_t kSuperBlock = 256;  // QK_K

using Bytes = const std::uint8_t*;

float half_at(Bytes p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, 2);
  return f16_to_f32(bits);
}

std::uint32_t u32_at(Bytes p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Q4_0: {f16 d; u8 qs[16]}; x = (q − 8)·d.
void q4_0(Bytes b, float* y) {
  const float d = half_at(b);
  const Bytes qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// Q4_1: {f16 d; f16 m; u8 qs[16]}; x = q·d + m.
void q4_1(Bytes b, float* y) {
  const float d = half_at(b), m = half_at(b + 2);
  const Bytes qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// The fifth bit of value j (j < 16) and of value j + 16 of a Q5 block, from its 32-bit qh field.
int fifth_bit_low(std::uint32_t qh, int j) { return static_cast<int>(((qh >> j) << 4) & 0x10); }
int fifth_bit_high(std::uint32_t qh, int j) { return static_cast<int>((qh >> (j + 12)) & 0x10); }

// Q5_0: {f16 d; u8 qh[4]; u8 qs[16]}; x = (q − 16)·d with q = low nibble | fifth bit << 4.
void q5_0(Bytes b, float* y) {
  const float d = half_at(b);
  const std::uint32_t qh = u32_at(b + 2);
  const Bytes qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(((qs[j] & 0x0F) | fifth_bit_low(qh, j)) - 16) * d;
    y[j + 16] = static_cast<float>(((qs[j] >> 4) | fifth_bit_high(qh, j)) - 16) * d;
  }
}

// Q5_1: {f16 d; f16 m; u8 qh[4]; u8 qs[16]}; x = q·d + m.
void q5_1(Bytes b, float* y) {
  const float d = half_at(b), m = half_at(b + 2);
  const std::uint32_t qh = u32_at(b + 4);
  const Bytes qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) | fifth_bit_low(qh, j)) * d + m;
    y[j + 16] = static_cast<float>((qs[j] >> 4) | fifth_bit_high(qh, j)) * d + m;
  }
}

// Q8_0: {f16 d; i8 qs[32]}; x = q·d.
void q8_0(Bytes b, float* y) {
  const float d = half_at(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(b[2 + j])) * d;
}

// Q2_K: {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}. 16 sub-blocks of 16 values, each with a 4-bit scale (low
// nibble) and 4-bit min (high nibble): x = d·sc·q − dmin·m, q of 2 bits. Each 32-byte half of qs serves 128 values,
// four 2-bit planes (shift 0, 2, 4, 6) of 32 values, each plane split in two sub-blocks of 16.
void q2_k(Bytes b, float* y) {
  const Bytes scales = b, qs_all = b + 16;
  const float d = half_at(b + 80), dmin = half_at(b + 82);
  int is = 0;
  for (int half = 0; half < 2; ++half) {
    const Bytes q = qs_all + 32 * half;
    for (int shift = 0; shift < 8; shift += 2) {
      for (int part = 0; part < 2; ++part) {
        const std::uint8_t sc = scales[is++];
        const float dl = d * static_cast<float>(sc & 0x0F), ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[16 * part + l] >> shift) & 3) - ml;
      }
    }
  }
}

// Q3_K: {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}. 16 sub-blocks of 16 with 6-bit scales stored as 16 low
// nibbles (bytes 0–7) and 16 high 2-bit pairs (bytes 8–11), offset by 32. q = 2 low bits − 4 unless the hmask bit is
// set: x = d·(sc − 32)·q. The planes run as in Q2_K; hmask bit m covers plane m across both halves.
void q3_k(Bytes b, float* y) {
  const Bytes hmask = b, qs_all = b + 32, packed = b + 96;
  const float d = half_at(b + 108);
  std::array<int, 16> scales{};
  for (int i = 0; i < 16; ++i) {
    const int low = i < 8 ? packed[i] & 0x0F : packed[i - 8] >> 4;
    const int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
    scales[i] = (low | (high << 4)) - 32;
  }
  int is = 0;
  std::uint8_t mask = 1;
  for (int half = 0; half < 2; ++half) {
    const Bytes q = qs_all + 32 * half;
    for (int shift = 0; shift < 8; shift += 2, mask <<= 1) {
      for (int part = 0; part < 2; ++part) {
        const float dl = d * static_cast<float>(scales[is++]);
        for (int l = 0; l < 16; ++l) {
          const int k = 16 * part + l;
          const int value = ((q[k] >> shift) & 3) - ((hmask[k] & mask) ? 0 : 4);
          *y++ = dl * static_cast<float>(value);
        }
      }
    }
  }
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block: for j < 4 the low 6 bits of bytes j and
// j + 4; else a nibble of byte j + 4 with the top 2 bits of bytes j − 4 and j.
void scale_min_k4(int j, Bytes q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K: {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}. 8 sub-blocks of 32: x = d·sc·q − dmin·m. Each 32 bytes of qs
// hold two sub-blocks, the first in the low nibbles.
void q4_k(Bytes b, float* y) {
  const float d = half_at(b), dmin = half_at(b + 2);
  const Bytes scales = b + 4, qs = b + 16;
  for (int pair = 0; pair < 4; ++pair) {
    const Bytes q = qs + 32 * pair;
    for (int nibble = 0; nibble < 2; ++nibble) {
      int sc, m;
      scale_min_k4(2 * pair + nibble, scales, &sc, &m);
      const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *y++ = dl * static_cast<float>(nibble ? q[l] >> 4 : q[l] & 0x0F) - ml;
    }
  }
}

// Q5_K: {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: Q4_K with a fifth bit, bit s of qh[l] for
// sub-block s.
void q5_k(Bytes b, float* y) {
  const float d = half_at(b), dmin = half_at(b + 2);
  const Bytes scales = b + 4, qh = b + 16, qs = b + 48;
  for (int pair = 0; pair < 4; ++pair) {
    const Bytes q = qs + 32 * pair;
    for (int nibble = 0; nibble < 2; ++nibble) {
      const int sub = 2 * pair + nibble;
      int sc, m;
      scale_min_k4(sub, scales, &sc, &m);
      const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        const int low = nibble ? q[l] >> 4 : q[l] & 0x0F;
        const int high = (qh[l] >> sub) & 1;
        *y++ = dl * static_cast<float>(low | (high << 4)) - ml;
      }
    }
  }
}

// Q6_K: {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}. 16 sub-blocks of 16 with signed 8-bit scales:
// x = d·sc·(q − 32), q = 4 bits of ql | 2 bits of qh << 4. Each half of 128 values uses 64 bytes of ql and 32 of qh.
void q6_k(Bytes b, float* y) {
  const float d = half_at(b + 208);
  for (int half = 0; half < 2; ++half) {
    const Bytes ql = b + 64 * half, qh = b + 128 + 32 * half;
    const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192 + 8 * half);
    float* out = y + 128 * half;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      out[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
      out[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      out[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      out[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
  }
}

void f32(Bytes b, float* y) { std::memcpy(y, b, 4); }
void f16(Bytes b, float* y) { *y = half_at(b); }
void bf16(Bytes b, float* y) {
  std::uint16_t bits;
  std::memcpy(&bits, b, 2);
  *y = bf16_to_f32(bits);
}

struct TypeEntry {
  GgmlType type;
  GgmlTypeTraits traits;
  void (*block)(Bytes, float*);
};

// Every type serq reads: the block geometry of ggml-common.h and its dequantizer.
constexpr std::array kTypes = {
    TypeEntry{GgmlType::F32, {"F32", 1, 4}, f32},
    TypeEntry{GgmlType::F16, {"F16", 1, 2}, f16},
    TypeEntry{GgmlType::BF16, {"BF16", 1, 2}, bf16},
    TypeEntry{GgmlType::Q4_0, {"Q4_0", kLegacyBlock, 2 + 16}, q4_0},
    TypeEntry{GgmlType::Q4_1, {"Q4_1", kLegacyBlock, 4 + 16}, q4_1},
    TypeEntry{GgmlType::Q5_0, {"Q5_0", kLegacyBlock, 2 + 4 + 16}, q5_0},
    TypeEntry{GgmlType::Q5_1, {"Q5_1", kLegacyBlock, 4 + 4 + 16}, q5_1},
    TypeEntry{GgmlType::Q8_0, {"Q8_0", kLegacyBlock, 2 + 32}, q8_0},
    TypeEntry{GgmlType::Q2_K, {"Q2_K", kSuperBlock, 16 + 64 + 4}, q2_k},
    TypeEntry{GgmlType::Q3_K, {"Q3_K", kSuperBlock, 32 + 64 + 12 + 2}, q3_k},
    TypeEntry{GgmlType::Q4_K, {"Q4_K", kSuperBlock, 4 + 12 + 128}, q4_k},
    TypeEntry{GgmlType::Q5_K, {"Q5_K", kSuperBlock, 4 + 12 + 32 + 128}, q5_k},
    TypeEntry{GgmlType::Q6_K, {"Q6_K", kSuperBlock, 128 + 64 + 16 + 2}, q6_k},
};

const TypeEntry* find_entry(std::uint32_t type_id) {
  for (const TypeEntry& entry : kTypes) {
    if (static_cast<std::uint32_t>(entry.type) == type_id) return &entry;
  }
  return nullptr;
}

// Names of the ggml types serq does not read, so that a refusal says what the file holds.
constexpr std::array<std::pair<std::uint32_t, const char*>, 20> kOtherTypeNames = {{
    {9, "Q8_1"},     {15, "Q8_K"},    {16, "IQ2_XXS"}, {17, "IQ2_XS"},  {18, "IQ3_XXS"},
    {19, "IQ1_S"},   {20, "IQ4_NL"},  {21, "IQ3_S"},   {22, "IQ2_S"},   {23, "IQ4_XS"},
    {24, "I8"},      {25, "I16"},     {26, "I32"},     {27, "I64"},     {28, "F64"},
    {29, "IQ1_M"},   {34, "TQ1_0"},   {35, "TQ2_0"},   {39, "MXFP4"},   {4, "Q4_2 (removed)"},
}};

}  // namespace

std::optional<GgmlTypeTraits> ggml_type_traits(std::uint32_t type_id) {
  const TypeEntry* entry = find_entry(type_id);
  if (!entry) return std::nullopt;
  return entry->traits;
}

const GgmlTypeTraits& ggml_type_traits(GgmlType type) {
  const TypeEntry* entry = find_entry(static_cast<std::uint32_t>(type));
  assert(entry);
  return entry->traits;
}

std::string ggml_type_name(std::uint32_t type_id) {
  if (const TypeEntry* entry = find_entry(type_id)) return entry->traits.name;
  for (const auto& [id, name] : kOtherTypeNames) {
    if (id == type_id) return name;
  }
  return fmt::format("type {}", type_id);
}

void dequantize(GgmlType type, std::span<const std::byte> blocks, std::span<float> out) {
  const TypeEntry* entry = find_entry(static_cast<std::uint32_t>(type));
  assert(entry);
  const std::int64_t per_block = entry->traits.block_values;
  const std::int64_t n_blocks = static_cast<std::int64_t>(out.size()) / per_block;
  assert(n_blocks * per_block == static_cast<std::int64_t>(out.size()));
  assert(blocks.size() == static_cast<std::size_t>(n_blocks) * entry->traits.block_bytes);
  const auto* bytes = reinterpret_cast<Bytes>(blocks.data());
  for (std::int64_t i = 0; i < n_blocks; ++i) {
    entry->block(bytes + i * entry->traits.block_bytes, out.data() + i * per_block);
  }
}

}  // namespace serq
