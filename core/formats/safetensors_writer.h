// Writes .safetensors files (the layout core/formats/safetensors.h reads): tensors added by name with their dtype,
// shape and little-endian bytes, and string metadata; the data region starts 8-byte aligned.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/formats/safetensors.h"

namespace serq {

class SafetensorsWriter {
 public:
  // Adds a tensor (its bytes are copied); `data` must hold exactly numel × dtype_size bytes. A name added twice is a
  // serq::Error (a bug in the caller).
  void add(const std::string& name, DType dtype, std::vector<std::int64_t> shape, std::span<const std::byte> data);
  template <class T>
  void add(const std::string& name, DType dtype, std::vector<std::int64_t> shape, std::span<const T> values) {
    add(name, dtype, std::move(shape), std::as_bytes(values));
  }
  void metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  // The whole file: u64 header length, the JSON header (tensors in name order, padded with spaces so the data
  // starts at a multiple of 8), then the tensors' bytes in name order.
  std::string bytes() const;

 private:
  struct Entry {
    DType dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::byte> data;
  };
  std::map<std::string, Entry> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace serq
