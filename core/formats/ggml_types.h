// ggml tensor types as GGUF stores them: the type ids, their block geometry, and dequantization to float32.
//
// Block layouts follow ggml's ggml-common.h. Every quantized type packs a fixed number of consecutive values along
// a row (ne0, the input dimension) into a fixed number of bytes; a row's length must be a multiple of that block.
// F16 scales inside the blocks are IEEE half precision. Each type is dequantized in one place (ggml_types.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace serq {

// The ggml_type ids of the types serq reads (the numbers are the file format's).
enum class GgmlType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  BF16 = 30,
};

struct GgmlTypeTraits {
  const char* name;            // "Q4_K", as ggml spells it
  std::int64_t block_values;   // values per block (1 for F32/F16/BF16)
  std::size_t block_bytes;     // bytes per block
};

// The traits of a type id read from a file; nullopt for an id serq does not read (or that does not exist).
std::optional<GgmlTypeTraits> ggml_type_traits(std::uint32_t type_id);
const GgmlTypeTraits& ggml_type_traits(GgmlType type);

// A name for any ggml type id, known to serq or not (e.g. "IQ2_XXS" or "type 42"), for error messages.
std::string ggml_type_name(std::uint32_t type_id);

// Dequantizes `out.size()` values (a multiple of the type's block) from `blocks`, which must hold exactly
// out.size() / block_values blocks. Values are computed in float32 in the order ggml's reference does.
void dequantize(GgmlType type, std::span<const std::byte> blocks, std::span<float> out);

}  // namespace serq
