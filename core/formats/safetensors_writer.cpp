// Building a .safetensors file in memory; see safetensors_writer.h.
#include "core/formats/safetensors_writer.h"

#include <nlohmann/json.hpp>

#include <cstring>

#include "core/common/error.h"

namespace serq {

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<std::int64_t> shape,
                            std::span<const std::byte> data) {
  std::int64_t numel = 1;
  for (const std::int64_t d : shape) numel *= d;
  SERQ_CHECK(numel >= 0 && static_cast<std::uint64_t>(numel) * dtype_size(dtype) == data.size(),
             "safetensors tensor '{}': {} bytes for {} values of {} (a bug in the caller)", name, data.size(), numel,
             dtype_name(dtype));
  SERQ_CHECK(!tensors_.contains(name), "safetensors tensor '{}' added twice (a bug in the caller)", name);
  tensors_.emplace(name, Entry{dtype, std::move(shape), {data.begin(), data.end()}});
}

std::string SafetensorsWriter::bytes() const {
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, entry] : tensors_) {
    header[name] = {{"dtype", dtype_name(entry.dtype)},
                    {"shape", entry.shape},
                    {"data_offsets", {offset, offset + entry.data.size()}}};
    offset += entry.data.size();
  }
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  const std::uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) file[static_cast<std::size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xff);
  file += text;
  file.reserve(file.size() + offset);
  for (const auto& [name, entry] : tensors_) {
    file.append(reinterpret_cast<const char*>(entry.data.data()), entry.data.size());
  }
  return file;
}

}  // namespace serq
