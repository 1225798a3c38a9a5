// Reader for one GGUF file (llama.cpp's checkpoint format, versions 2 and 3), memory-mapped. The header, every
// metadata entry and every tensor info are validated when the file is opened, so a bad file fails before any work.
//
// Layout (little-endian): "GGUF", u32 version, u64 tensor count, u64 metadata count; metadata entries
// (string key, u32 value type, value); tensor infos (string name, u32 n_dims, u64 ne[n_dims] with ne[0] the row
// length, u32 ggml type, u64 offset); padding to general.alignment (default 32); the data region, in which every
// tensor offset is a multiple of the alignment. A string is u64 length + bytes; an array is u32 element type,
// u64 count, elements.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/common/mapped_file.h"
#include "core/formats/ggml_types.h"

namespace serq {

// The metadata value types of the format (their numbers are the file's).
enum class GgufValueType : std::uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9, u64 = 10,
  i64 = 11, f64 = 12,
};

const char* gguf_value_type_name(GgufValueType type);

// Whether the file starts with the GGUF magic (false when it cannot be read).
bool is_gguf_file(const std::filesystem::path& path);

// One metadata value. Integers of every width are held as int64 (u64 above INT64_MAX is refused), floats as double.
// An array keeps its element type and its values (strings, or numbers).
struct GgufValue {
  GgufValueType type = GgufValueType::u8;
  GgufValueType element_type = GgufValueType::u8;  // for arrays
  std::variant<std::int64_t, double, bool, std::string, std::vector<std::string>, std::vector<std::int64_t>,
               std::vector<double>>
      value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<std::int64_t> ne;  // ne[0] is the row length (contiguous), ne[1] the number of rows, ...
  GgmlType type = GgmlType::F32;
  std::uint64_t offset = 0;      // within the data region
  std::uint64_t bytes = 0;

  std::int64_t numel() const;
};

class GgufFile {
 public:
  // Maps and validates the file; throws serq::Error naming the file and what is wrong with it.
  static GgufFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  std::uint32_t version() const { return version_; }
  std::uint64_t alignment() const { return alignment_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // in file order
  const GgufTensorInfo* find(std::string_view name) const;                // nullptr when absent
  bool has(std::string_view key) const { return metadata_.contains(std::string(key)); }

  // Typed metadata getters: a missing key or a value of another type is a serq::Error naming the file and key.
  // get_int accepts any integer type; get_float accepts f32/f64 (and integers).
  std::int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;
  const std::vector<std::string>& get_string_array(std::string_view key) const;
  const std::vector<std::int64_t>& get_int_array(std::string_view key) const;
  const GgufValue* find_value(std::string_view key) const;  // nullptr when absent
  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return metadata_; }  // by key

  // Dequantizes tensor `name` into out (out.size() must equal its element count). Throws serq::Error if the
  // tensor is absent, the size differs, or a value is NaN or infinite.
  void read_f32(std::string_view name, std::span<float> out) const;

 private:
  GgufFile() = default;
  const GgufValue& value_of(std::string_view key, const char* wanted) const;

  std::filesystem::path path_;
  MappedFile map_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::uint64_t data_start_ = 0;
  std::map<std::string, GgufValue, std::less<>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
};

}  // namespace serq
