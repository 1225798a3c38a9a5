// Safetensors reader: mmap, up-front header validation, and float32 conversion of F32/F16/BF16 tensors.
#include "core/formats/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/common/error.h"

namespace serq {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so must the host be");

namespace {

// The safetensors specification caps the JSON header at 100 MB.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

constexpr const char* kTruncatedHint = "truncated download? re-fetch the file";

DType parse_dtype(const std::string& text, const std::string& file, const std::string& tensor) {
  if (text == "F32") return DType::F32;
  if (text == "F16") return DType::F16;
  if (text == "BF16") return DType::BF16;
  if (text == "U8") return DType::U8;
  if (text == "I32") return DType::I32;
  fail("{}: tensor '{}' has dtype '{}', which serq does not read; supported dtypes are F32, F16, BF16, U8 and I32 "
       "(convert the checkpoint to one of them)",
       file, tensor, text);
}

const nlohmann::json& field(const nlohmann::json& entry, const char* key, const std::string& file,
                            const std::string& tensor) {
  const auto it = entry.find(key);
  SERQ_CHECK(it != entry.end(), "{}: tensor '{}' has no '{}' in the header (corrupted file? re-fetch it)", file,
             tensor, key);
  return *it;
}

TensorInfo parse_entry(const std::string& name, const nlohmann::json& entry, std::uint64_t data_bytes,
                       const std::string& file) {
  SERQ_CHECK(entry.is_object(), "{}: header entry '{}' is not an object (corrupted file? re-fetch it)", file, name);
  TensorInfo info;
  info.name = name;

  const nlohmann::json& dtype = field(entry, "dtype", file, name);
  SERQ_CHECK(dtype.is_string(), "{}: tensor '{}' has a non-string dtype (corrupted file? re-fetch it)", file, name);
  info.dtype = parse_dtype(dtype.get<std::string>(), file, name);

  const nlohmann::json& shape = field(entry, "shape", file, name);
  SERQ_CHECK(shape.is_array(), "{}: tensor '{}' has a shape that is not a list (corrupted file? re-fetch it)", file,
             name);
  std::uint64_t bytes = dtype_size(info.dtype);
  for (const nlohmann::json& d : shape) {
    SERQ_CHECK(d.is_number_unsigned(), "{}: tensor '{}' has shape {} with an entry that is not a non-negative "
               "integer (corrupted file? re-fetch it)", file, name, shape.dump());
    const std::uint64_t extent = d.get<std::uint64_t>();
    SERQ_CHECK(!__builtin_mul_overflow(bytes, extent, &bytes),
               "{}: tensor '{}' has shape {} whose size overflows 64 bits (corrupted file? re-fetch it)", file, name,
               shape.dump());
    info.shape.push_back(static_cast<std::int64_t>(extent));
  }

  const nlohmann::json& offsets = field(entry, "data_offsets", file, name);
  SERQ_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                 offsets[1].is_number_unsigned(),
             "{}: tensor '{}' has data_offsets {}, expected [begin, end] with non-negative integers "
             "(corrupted file? re-fetch it)", file, name, offsets.dump());
  info.begin = offsets[0].get<std::uint64_t>();
  info.end = offsets[1].get<std::uint64_t>();
  SERQ_CHECK(info.begin <= info.end, "{}: tensor '{}' has data_offsets [{}, {}] with begin after end "
             "(corrupted header; re-fetch the file)", file, name, info.begin, info.end);
  SERQ_CHECK(info.end - info.begin == bytes,
             "{}: tensor '{}' of shape {} {} needs {} bytes but its data_offsets [{}, {}] span {} bytes "
             "(the header is inconsistent; re-fetch or re-export the file)",
             file, name, shape.dump(), dtype_name(info.dtype), bytes, info.begin, info.end, info.end - info.begin);
  SERQ_CHECK(info.end <= data_bytes,
             "{}: tensor '{}' ends at byte {} of the data region but the region has only {} bytes ({})", file, name,
             info.end, data_bytes, kTruncatedHint);
  return info;
}

}  // namespace

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::U8: return "U8";
    case DType::I32: return "I32";
  }
  return "?";
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32:
    case DType::I32: return 4;
    case DType::F16:
    case DType::BF16: return 2;
    case DType::U8: return 1;
  }
  return 1;
}

std::int64_t TensorInfo::numel() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile file;
  file.path_ = path;
  const std::string where = path.string();

  file.map_ = std::make_shared<const MappedFile>(MappedFile::open(path));
  const std::uint64_t size = file.map_->size();
  SERQ_CHECK(size >= 8, "{}: the file has {} bytes, fewer than the 8-byte header length ({})", where, size,
             kTruncatedHint);

  std::uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, file.map_->data(), 8);
  SERQ_CHECK(header_bytes <= kMaxHeaderBytes,
             "{}: header length {} is absurd (the format allows at most {} bytes): not a safetensors file, or "
             "corrupted; re-fetch it", where, header_bytes, kMaxHeaderBytes);
  SERQ_CHECK(8 + header_bytes <= size, "{}: the header of {} bytes runs past the end of the file ({} bytes; {})",
             where, header_bytes, size, kTruncatedHint);
  file.data_start_ = 8 + header_bytes;

  const char* text = reinterpret_cast<const char*>(file.map_->data() + 8);
  const nlohmann::json header = nlohmann::json::parse(text, text + header_bytes, nullptr, /*allow_exceptions=*/false);
  SERQ_CHECK(!header.is_discarded(), "{}: the {}-byte header is not valid JSON (not a safetensors file, or "
             "corrupted; re-fetch it)", where, header_bytes);
  SERQ_CHECK(header.is_object(), "{}: the header is not a JSON object (not a safetensors file, or corrupted; "
             "re-fetch it)", where);
  const std::uint64_t data_bytes = size - file.data_start_;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      SERQ_CHECK(entry.is_object(), "{}: __metadata__ is not a JSON object (corrupted? re-fetch it)", where);
      for (const auto& [key, value] : entry.items()) {
        SERQ_CHECK(value.is_string(), "{}: __metadata__ entry '{}' is not a string (corrupted? re-fetch it)", where,
                   key);
        file.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    file.tensors_.push_back(parse_entry(name, entry, data_bytes, where));
  }
  // The data region is the tensors back to back, as the safetensors library requires: a gap or an overlap means
  // a mis-written file whose tensors would read each other's bytes.
  std::ranges::sort(file.tensors_, {}, [](const TensorInfo& info) { return std::pair(info.begin, info.end); });
  std::uint64_t covered = 0;
  for (const TensorInfo& info : file.tensors_) {
    SERQ_CHECK(info.begin >= covered, "{}: tensor '{}' (data bytes {}–{}) overlaps the tensor before it, which ends "
               "at byte {} (mis-written file; re-export it)", where, info.name, info.begin, info.end, covered);
    SERQ_CHECK(info.begin == covered, "{}: data bytes {}–{} belong to no tensor (before '{}'); the tensors must "
               "cover the data region exactly (mis-written file; re-export it)", where, covered, info.begin,
               info.name);
    covered = info.end;
  }
  SERQ_CHECK(covered == data_bytes, "{}: the tensors cover {} of the data region's {} bytes; the rest belongs to no "
             "tensor (mis-written file; re-export it)", where, covered, data_bytes);
  std::ranges::sort(file.tensors_, {}, &TensorInfo::name);
  return file;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = std::ranges::lower_bound(tensors_, name, {}, &TensorInfo::name);
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

void SafetensorsFile::read_f32(std::string_view name, std::span<float> out) const {
  const TensorInfo* info = find(name);
  SERQ_CHECK(info, "{}: no tensor named '{}' (wrong checkpoint, or an incomplete export?)", path_.string(), name);
  SERQ_CHECK(static_cast<std::int64_t>(out.size()) == info->numel(),
             "{}: tensor '{}' has {} values but {} were expected", path_.string(), name, info->numel(), out.size());
  SERQ_CHECK(info->dtype == DType::F32 || info->dtype == DType::F16 || info->dtype == DType::BF16,
             "{}: tensor '{}' is {}, not a float type", path_.string(), name, dtype_name(info->dtype));

  const std::byte* src = map_->data() + data_start_ + info->begin;
  if (info->dtype == DType::F32) {
    std::memcpy(out.data(), src, out.size() * sizeof(float));
  } else {
    const auto convert = info->dtype == DType::F16 ? f16_to_f32 : bf16_to_f32;
    for (std::size_t i = 0; i < out.size(); ++i) {
      std::uint16_t bits;
      std::memcpy(&bits, src + 2 * i, 2);
      out[i] = convert(bits);
    }
  }

  const auto bad = std::ranges::find_if(out, [](float v) { return !std::isfinite(v); });
  SERQ_CHECK(bad == out.end(), "{}: tensor '{}' holds {} at index {} (a corrupted or overflowed checkpoint; "
             "re-export it)", path_.string(), name, *bad, bad - out.begin());
}

bool SafetensorsFile::maps_in_place(std::string_view name) const {
  const TensorInfo* info = find(name);
  return info && (data_start_ + info->begin) % alignof(std::uint16_t) == 0;
}

std::shared_ptr<const std::uint16_t> SafetensorsFile::map_16bit(std::string_view name) const {
  const TensorInfo* info = find(name);
  SERQ_CHECK(info, "{}: no tensor named '{}' (wrong checkpoint, or an incomplete export?)", path_.string(), name);
  SERQ_CHECK(info->dtype == DType::F16 || info->dtype == DType::BF16, "{}: tensor '{}' is {}, not a 16-bit float "
             "type (a bug in the caller)", path_.string(), name, dtype_name(info->dtype));
  const auto count = static_cast<std::size_t>(info->numel());
  const std::byte* src = map_->data() + data_start_ + info->begin;
  std::shared_ptr<const std::uint16_t> bits;
  if (maps_in_place(name)) {
    bits = std::shared_ptr<const std::uint16_t>(map_, reinterpret_cast<const std::uint16_t*>(src));
  } else {
    auto copy = std::make_shared<std::vector<std::uint16_t>>(count);
    std::memcpy(copy->data(), src, count * sizeof(std::uint16_t));
    bits = std::shared_ptr<const std::uint16_t>(copy, copy->data());
  }
  const std::uint16_t exponent = info->dtype == DType::BF16 ? 0x7f80 : 0x7c00;  // all ones: Inf or NaN
  const std::uint16_t* bad = std::find_if(bits.get(), bits.get() + count,
                                          [&](std::uint16_t b) { return (b & exponent) == exponent; });
  MappedFile::release_pages(src, count * sizeof(std::uint16_t));
  if (bad != bits.get() + count) {
    fail("{}: tensor '{}' holds {} at index {} (a corrupted or overflowed checkpoint; re-export it)", path_.string(),
         name, info->dtype == DType::BF16 ? bf16_to_f32(*bad) : f16_to_f32(*bad), bad - bits.get());
  }
  return bits;
}

std::span<const std::byte> SafetensorsFile::bytes(std::string_view name, DType dtype) const {
  const TensorInfo* info = find(name);
  SERQ_CHECK(info, "{}: no tensor named '{}' (wrong checkpoint, or an incomplete export?)", path_.string(), name);
  SERQ_CHECK(info->dtype == dtype, "{}: tensor '{}' is {}, expected {} (a damaged or hand-edited file?)",
             path_.string(), name, dtype_name(info->dtype), dtype_name(dtype));
  return {map_->data() + data_start_ + info->begin, static_cast<std::size_t>(info->end - info->begin)};
}

}  // namespace serq
