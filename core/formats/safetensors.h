// Reader for one .safetensors file, memory-mapped: the header is validated in full when the file is opened,
// and tensors are read out as float32 (F16 and BF16 are converted exactly), or as their bytes (U8 and I32, which
// serq's own exports hold: codes, permutations).
//
// Layout: an 8-byte little-endian u64 N, N bytes of JSON header
//   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
// then the data region; offsets are relative to its start.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/common/half.h"  // bf16_to_f32, f16_to_f32
#include "core/common/mapped_file.h"

namespace serq {

enum class DType { F32, F16, BF16, U8, I32 };

const char* dtype_name(DType dtype);  // "F32", "F16", "BF16", "U8", "I32", as the header spells them
std::size_t dtype_size(DType dtype);  // bytes per element

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte range within the data region

  std::int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps the file and validates the header; throws serq::Error naming the file (and tensor) at fault.
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // sorted by name
  const TensorInfo* find(std::string_view name) const;                // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }  // the header's __metadata__

  // Copies tensor `name` into out (out.size() must equal its element count), converting to float32.
  // Throws serq::Error if the tensor is absent, not F32/F16/BF16, the size differs, or a value is NaN or infinite.
  void read_f32(std::string_view name, std::span<float> out) const;
  // An F16 or BF16 tensor's bits as stored, read in place from the file mapping, which the pointer keeps alive
  // (copied only where the data is not 2-byte aligned); the same errors, and a NaN or infinity is refused from its
  // bits. The check reads every value; their pages are given back after it (MappedFile::release_pages).
  std::shared_ptr<const std::uint16_t> map_16bit(std::string_view name) const;
  // Whether map_16bit() reads in place (true) or copies.
  bool maps_in_place(std::string_view name) const;
  // The bytes of tensor `name` as stored, little-endian, in place in the mapping (valid while this object lives).
  // Throws serq::Error naming the tensor if it is absent or its dtype is not `dtype`.
  std::span<const std::byte> bytes(std::string_view name, DType dtype) const;

 private:
  SafetensorsFile() = default;

  std::filesystem::path path_;
  std::shared_ptr<const MappedFile> map_;
  std::size_t data_start_ = 0;  // 8 + N
  std::vector<TensorInfo> tensors_;  // sorted by name
  std::map<std::string, std::string> metadata_;
};

}  // namespace serq
