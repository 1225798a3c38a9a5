// GGUF reader: mmap, a bounds-checked cursor over the header, metadata and tensor infos, and dequantization of
// tensors through ggml_types.
#include "core/formats/gguf.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/common/error.h"

namespace serq {

static_assert(std::endian::native == std::endian::little, "GGUF data is little-endian; so must the host be");

namespace {

constexpr std::uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr const char* kTruncatedHint = "truncated download? re-fetch the file";
// Limits far above any real file, so that a lying count fails as such instead of allocating without bound.
constexpr std::uint64_t kMaxStringBytes = 1ull << 30;
constexpr std::uint64_t kMaxDims = 4;  // GGML_MAX_DIMS

// Sequential little-endian reads from the mapped file; running past its end is a one-line error.
class Cursor {
 public:
  Cursor(const std::byte* data, std::size_t size, const std::string& file) : data_(data), size_(size), file_(file) {}

  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, data_ + at_, sizeof(T));
    at_ += sizeof(T);
    return value;
  }

  std::string read_string(const char* what) {
    const auto length = read<std::uint64_t>(what);
    SERQ_CHECK(length <= kMaxStringBytes, "{}: {} at byte {} claims a string of {} bytes (corrupted file? re-fetch "
               "it)", file_, what, at_ - 8, length);
    need(length, what);
    std::string text(reinterpret_cast<const char*>(data_ + at_), length);
    at_ += length;
    return text;
  }

  std::size_t position() const { return at_; }

 private:
  void need(std::uint64_t bytes, const char* what) const {
    SERQ_CHECK(bytes <= size_ - at_, "{}: the file ends at byte {} inside {} ({})", file_, size_, what,
               kTruncatedHint);
  }

  const std::byte* data_;
  std::size_t size_;
  std::size_t at_ = 0;
  const std::string& file_;
};

bool is_integer(GgufValueType t) {
  switch (t) {
    case GgufValueType::u8: case GgufValueType::i8: case GgufValueType::u16: case GgufValueType::i16:
    case GgufValueType::u32: case GgufValueType::i32: case GgufValueType::u64: case GgufValueType::i64:
      return true;
    default:
      return false;
  }
}

std::int64_t read_integer(Cursor& in, GgufValueType t, const std::string& file, const std::string& key) {
  switch (t) {
    case GgufValueType::u8: return in.read<std::uint8_t>("a metadata value");
    case GgufValueType::i8: return in.read<std::int8_t>("a metadata value");
    case GgufValueType::u16: return in.read<std::uint16_t>("a metadata value");
    case GgufValueType::i16: return in.read<std::int16_t>("a metadata value");
    case GgufValueType::u32: return in.read<std::uint32_t>("a metadata value");
    case GgufValueType::i32: return in.read<std::int32_t>("a metadata value");
    case GgufValueType::i64: return in.read<std::int64_t>("a metadata value");
    case GgufValueType::u64: {
      const auto v = in.read<std::uint64_t>("a metadata value");
      SERQ_CHECK(v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
                 "{}: metadata '{}' holds the u64 {}, beyond what serq reads (corrupted file? re-fetch it)", file,
                 key, v);
      return static_cast<std::int64_t>(v);
    }
    default: break;
  }
  fail("{}: metadata '{}': internal error, not an integer type", file, key);
}

double read_float(Cursor& in, GgufValueType t) {
  return t == GgufValueType::f32 ? in.read<float>("a metadata value") : in.read<double>("a metadata value");
}

bool known_value_type(std::uint32_t t) { return t <= static_cast<std::uint32_t>(GgufValueType::f64); }

GgufValue read_value(Cursor& in, GgufValueType type, const std::string& file, const std::string& key) {
  GgufValue value;
  value.type = type;
  if (is_integer(type)) {
    value.value = read_integer(in, type, file, key);
  } else if (type == GgufValueType::f32 || type == GgufValueType::f64) {
    value.value = read_float(in, type);
  } else if (type == GgufValueType::boolean) {
    const auto b = in.read<std::uint8_t>("a metadata value");
    SERQ_CHECK(b <= 1, "{}: metadata '{}' is a bool holding {} (corrupted file? re-fetch it)", file, key, b);
    value.value = b == 1;
  } else if (type == GgufValueType::string) {
    value.value = in.read_string("a metadata string");
  } else {  // array
    const auto element = in.read<std::uint32_t>("an array's element type");
    SERQ_CHECK(known_value_type(element) && element != static_cast<std::uint32_t>(GgufValueType::array),
               "{}: metadata '{}' is an array of unknown or nested type {} (corrupted file, or a GGUF feature serq "
               "does not read)", file, key, element);
    value.element_type = static_cast<GgufValueType>(element);
    const auto count = in.read<std::uint64_t>("an array's length");
    // Every element takes at least one byte, so a count beyond the file is a lie, caught before allocating.
    SERQ_CHECK(count <= (1ull << 40), "{}: metadata '{}' claims {} array elements (corrupted file? re-fetch it)",
               file, key, count);
    if (value.element_type == GgufValueType::string) {
      std::vector<std::string> strings;
      for (std::uint64_t i = 0; i < count; ++i) strings.push_back(in.read_string("a metadata string"));
      value.value = std::move(strings);
    } else if (is_integer(value.element_type)) {
      std::vector<std::int64_t> numbers;
      for (std::uint64_t i = 0; i < count; ++i) numbers.push_back(read_integer(in, value.element_type, file, key));
      value.value = std::move(numbers);
    } else if (value.element_type == GgufValueType::boolean) {
      std::vector<std::int64_t> numbers;
      for (std::uint64_t i = 0; i < count; ++i) numbers.push_back(in.read<std::uint8_t>("a metadata value"));
      value.value = std::move(numbers);
    } else {
      std::vector<double> numbers;
      for (std::uint64_t i = 0; i < count; ++i) numbers.push_back(read_float(in, value.element_type));
      value.value = std::move(numbers);
    }
  }
  return value;
}

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  constexpr const char* kNames[] = {"u8",  "i8",  "u16",    "i16",   "u32", "i32", "f32",
                                    "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<std::uint32_t>(type);
  return i < std::size(kNames) ? kNames[i] : "?";
}

bool is_gguf_file(const std::filesystem::path& path) {
  std::uint32_t magic = 0;
  std::ifstream in(path, std::ios::binary);
  return in.read(reinterpret_cast<char*>(&magic), sizeof(magic)) && magic == kMagic;
}

std::int64_t GgufTensorInfo::numel() const {
  std::int64_t n = 1;
  for (std::int64_t d : ne) n *= d;
  return n;
}

GgufFile GgufFile::open(const std::filesystem::path& path) {
  GgufFile file;
  file.path_ = path;
  const std::string where = path.string();

  file.map_ = MappedFile::open(path);
  const std::size_t size = file.map_.size();
  Cursor in(file.map_.data(), size, where);
  const auto magic = in.read<std::uint32_t>("the header");
  SERQ_CHECK(magic == kMagic, "{}: not a GGUF file (its first bytes are not 'GGUF'); point model.path at a .gguf "
             "checkpoint", where);
  file.version_ = in.read<std::uint32_t>("the header");
  SERQ_CHECK(file.version_ == 2 || file.version_ == 3, "{}: GGUF version {}, but serq reads versions 2 and 3 "
             "(re-convert it with a current llama.cpp)", where, file.version_);
  const auto n_tensors = in.read<std::uint64_t>("the header");
  const auto n_metadata = in.read<std::uint64_t>("the header");
  SERQ_CHECK(n_tensors <= size && n_metadata <= size, "{}: the header claims {} tensors and {} "
             "metadata entries, more than the file's {} bytes can hold (corrupted file? re-fetch it)", where,
             n_tensors, n_metadata, size);

  for (std::uint64_t i = 0; i < n_metadata; ++i) {
    std::string key = in.read_string("a metadata key");
    const auto type = in.read<std::uint32_t>("a metadata value type");
    SERQ_CHECK(known_value_type(type), "{}: metadata '{}' has unknown value type {} (corrupted file? re-fetch it)",
               where, key, type);
    GgufValue value = read_value(in, static_cast<GgufValueType>(type), where, key);
    SERQ_CHECK(!file.metadata_.contains(key), "{}: metadata key '{}' appears twice (corrupted file? re-fetch it)",
               where, key);
    file.metadata_.emplace(std::move(key), std::move(value));
  }
  if (const GgufValue* alignment = file.find_value("general.alignment")) {
    SERQ_CHECK(is_integer(alignment->type), "{}: metadata 'general.alignment' is a {}, expected an integer", where,
               gguf_value_type_name(alignment->type));
    const std::int64_t a = std::get<std::int64_t>(alignment->value);
    SERQ_CHECK(a > 0 && std::has_single_bit(static_cast<std::uint64_t>(a)), "{}: general.alignment = {} is not a "
               "power of two (corrupted file? re-fetch it)", where, a);
    file.alignment_ = static_cast<std::uint64_t>(a);
  }

  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo info;
    info.name = in.read_string("a tensor name");
    const auto n_dims = in.read<std::uint32_t>("a tensor info");
    SERQ_CHECK(n_dims >= 1 && n_dims <= kMaxDims, "{}: tensor '{}' has {} dimensions; GGUF allows 1 to {} "
               "(corrupted file? re-fetch it)", where, info.name, n_dims, kMaxDims);
    std::uint64_t numel = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const auto extent = in.read<std::uint64_t>("a tensor info");
      SERQ_CHECK(extent > 0 && extent <= (1ull << 40) && !__builtin_mul_overflow(numel, extent, &numel),
                 "{}: tensor '{}' has dimension {} = {} (corrupted file? re-fetch it)", where, info.name, d, extent);
      info.ne.push_back(static_cast<std::int64_t>(extent));
    }
    const auto type = in.read<std::uint32_t>("a tensor info");
    const auto traits = ggml_type_traits(type);
    SERQ_CHECK(traits, "{}: tensor '{}' has ggml type {}, which serq does not read; supported: F32, F16, BF16, "
               "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (re-quantize the model to one of them)",
               where, info.name, ggml_type_name(type));
    info.type = static_cast<GgmlType>(type);
    SERQ_CHECK(info.ne[0] % traits->block_values == 0, "{}: tensor '{}' has rows of {} values, not a multiple of "
               "{}'s block of {} (corrupted file? re-fetch it)", where, info.name, info.ne[0], traits->name,
               traits->block_values);
    info.bytes = numel / static_cast<std::uint64_t>(traits->block_values) * traits->block_bytes;
    info.offset = in.read<std::uint64_t>("a tensor info");
    SERQ_CHECK(info.offset % file.alignment_ == 0, "{}: tensor '{}' starts at data offset {}, not a multiple of the "
               "alignment {} (corrupted or mis-written file; re-convert it)", where, info.name, info.offset,
               file.alignment_);
    SERQ_CHECK(!file.tensor_index_.contains(info.name), "{}: tensor '{}' appears twice (corrupted file? re-fetch "
               "it)", where, info.name);
    file.tensor_index_.emplace(info.name, file.tensors_.size());
    file.tensors_.push_back(std::move(info));
  }

  const std::uint64_t header_end = in.position();
  file.data_start_ = (header_end + file.alignment_ - 1) / file.alignment_ * file.alignment_;
  const std::uint64_t data_bytes = size >= file.data_start_ ? size - file.data_start_ : 0;
  for (const GgufTensorInfo& info : file.tensors_) {
    SERQ_CHECK(info.offset <= data_bytes && info.bytes <= data_bytes - info.offset, "{}: tensor '{}' ({} bytes at "
               "data offset {}) runs past the end of the file's {}-byte data region ({})", where, info.name,
               info.bytes, info.offset, data_bytes, kTruncatedHint);
  }
  // Two tensors reading the same bytes is a mis-written file, never a valid layout (ggml refuses it too).
  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& info : file.tensors_) by_offset.push_back(&info);
  std::ranges::sort(by_offset, {}, [](const GgufTensorInfo* info) { return info->offset; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& before = *by_offset[i - 1];
    const GgufTensorInfo& after = *by_offset[i];
    SERQ_CHECK(after.offset >= before.offset + before.bytes, "{}: tensors '{}' (data bytes {}–{}) and '{}' (from "
               "byte {}) overlap (corrupted or mis-written file; re-convert it)", where, before.name, before.offset,
               before.offset + before.bytes, after.name, after.offset);
  }
  return file;
}

const GgufTensorInfo* GgufFile::find(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue* GgufFile::find_value(std::string_view key) const {
  const auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufValue& GgufFile::value_of(std::string_view key, const char* wanted) const {
  const GgufValue* value = find_value(key);
  SERQ_CHECK(value, "{}: required metadata '{}' ({}) is missing (incomplete conversion? re-convert the model)",
             path_.string(), key, wanted);
  return *value;
}

std::int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue& v = value_of(key, "an integer");
  SERQ_CHECK(is_integer(v.type), "{}: metadata '{}' is a {}, expected an integer (corrupted or foreign file)",
             path_.string(), key, gguf_value_type_name(v.type));
  return std::get<std::int64_t>(v.value);
}

double GgufFile::get_float(std::string_view key) const {
  const GgufValue& v = value_of(key, "a number");
  if (is_integer(v.type)) return static_cast<double>(std::get<std::int64_t>(v.value));
  SERQ_CHECK(v.type == GgufValueType::f32 || v.type == GgufValueType::f64, "{}: metadata '{}' is a {}, expected a "
             "number (corrupted or foreign file)", path_.string(), key, gguf_value_type_name(v.type));
  return std::get<double>(v.value);
}

bool GgufFile::get_bool(std::string_view key) const {
  const GgufValue& v = value_of(key, "a bool");
  SERQ_CHECK(v.type == GgufValueType::boolean, "{}: metadata '{}' is a {}, expected a bool (corrupted or foreign "
             "file)", path_.string(), key, gguf_value_type_name(v.type));
  return std::get<bool>(v.value);
}

const std::string& GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = value_of(key, "a string");
  SERQ_CHECK(v.type == GgufValueType::string, "{}: metadata '{}' is a {}, expected a string (corrupted or foreign "
             "file)", path_.string(), key, gguf_value_type_name(v.type));
  return std::get<std::string>(v.value);
}

const std::vector<std::string>& GgufFile::get_string_array(std::string_view key) const {
  const GgufValue& v = value_of(key, "an array of strings");
  SERQ_CHECK(v.type == GgufValueType::array && v.element_type == GgufValueType::string, "{}: metadata '{}' is a "
             "{}{}, expected an array of strings (corrupted or foreign file)", path_.string(), key,
             gguf_value_type_name(v.type),
             v.type == GgufValueType::array ? std::string(" of ") + gguf_value_type_name(v.element_type) : "");
  return std::get<std::vector<std::string>>(v.value);
}

const std::vector<std::int64_t>& GgufFile::get_int_array(std::string_view key) const {
  const GgufValue& v = value_of(key, "an array of integers");
  SERQ_CHECK(v.type == GgufValueType::array && is_integer(v.element_type), "{}: metadata '{}' is a {}{}, expected "
             "an array of integers (corrupted or foreign file)", path_.string(), key, gguf_value_type_name(v.type),
             v.type == GgufValueType::array ? std::string(" of ") + gguf_value_type_name(v.element_type) : "");
  return std::get<std::vector<std::int64_t>>(v.value);
}

void GgufFile::read_f32(std::string_view name, std::span<float> out) const {
  const GgufTensorInfo* info = find(name);
  SERQ_CHECK(info, "{}: no tensor named '{}' (wrong checkpoint, or an incomplete conversion?)", path_.string(), name);
  SERQ_CHECK(static_cast<std::int64_t>(out.size()) == info->numel(), "{}: tensor '{}' has {} values but {} were "
             "expected", path_.string(), name, info->numel(), out.size());
  dequantize(info->type, map_.bytes().subspan(data_start_ + info->offset, info->bytes), out);
  const auto bad = std::ranges::find_if(out, [](float v) { return !std::isfinite(v); });
  SERQ_CHECK(bad == out.end(), "{}: tensor '{}' ({}) holds {} at index {} (a corrupted checkpoint; re-fetch it)",
             path_.string(), name, ggml_type_traits(info->type).name, *bad, bad - out.begin());
}

}  // namespace serq
