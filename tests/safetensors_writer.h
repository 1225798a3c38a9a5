// Writes safetensors files for tests: well-formed F32 checkpoints, or bytes exactly as given.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/assets.h"

namespace serq::test {

// Writes a safetensors file exactly as given (so a test can make the header lie): u64 length, header, data.
inline void write_raw(const std::filesystem::path& path, const std::string& header, const std::string& data) {
  const std::uint64_t length = header.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &length, 8);
  write_bytes(path, bytes + header + data);
}

struct F32Tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

// Writes well-formed F32 tensors, laid out back to back.
inline void write_safetensors(const std::filesystem::path& path, const std::vector<F32Tensor>& tensors) {
  nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
  std::string data;
  for (const F32Tensor& t : tensors) {
    const std::size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * sizeof(float));
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  write_raw(path, header.dump(), data);
}

}  // namespace serq::test
