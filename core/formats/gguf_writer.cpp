// Serializing GGUF metadata and tensors; see gguf_writer.h.
#include "core/formats/gguf_writer.h"

#include <cstring>

#include "core/common/error.h"

namespace serq {
namespace {

constexpr std::uint64_t kAlignment = 32;

template <class T>
void put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian hosts only, as the reader
  out.append(bytes, sizeof(T));
}

void put_string(std::string& out, const std::string& text) {
  put<std::uint64_t>(out, text.size());
  out += text;
}

// One scalar of `type` from an integer, a float or a bool held by a GgufValue.
void put_number(std::string& out, GgufValueType type, std::int64_t integer, double real) {
  switch (type) {
    case GgufValueType::u8: put<std::uint8_t>(out, static_cast<std::uint8_t>(integer)); return;
    case GgufValueType::i8: put<std::int8_t>(out, static_cast<std::int8_t>(integer)); return;
    case GgufValueType::u16: put<std::uint16_t>(out, static_cast<std::uint16_t>(integer)); return;
    case GgufValueType::i16: put<std::int16_t>(out, static_cast<std::int16_t>(integer)); return;
    case GgufValueType::u32: put<std::uint32_t>(out, static_cast<std::uint32_t>(integer)); return;
    case GgufValueType::i32: put<std::int32_t>(out, static_cast<std::int32_t>(integer)); return;
    case GgufValueType::u64: put<std::uint64_t>(out, static_cast<std::uint64_t>(integer)); return;
    case GgufValueType::i64: put<std::int64_t>(out, integer); return;
    case GgufValueType::f32: put<float>(out, static_cast<float>(real)); return;
    case GgufValueType::f64: put<double>(out, real); return;
    case GgufValueType::boolean: put<std::uint8_t>(out, integer != 0); return;
    case GgufValueType::string:
    case GgufValueType::array: break;
  }
  fail("GGUF writer: {} is not a number type (a bug in the caller)", gguf_value_type_name(type));
}

bool is_real(GgufValueType type) { return type == GgufValueType::f32 || type == GgufValueType::f64; }

void put_value(std::string& out, const GgufValue& value) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(value.type));
  if (value.type == GgufValueType::string) {
    put_string(out, std::get<std::string>(value.value));
    return;
  }
  if (value.type != GgufValueType::array) {
    if (value.type == GgufValueType::boolean) {
      put_number(out, value.type, std::get<bool>(value.value) ? 1 : 0, 0.0);
    } else if (is_real(value.type)) {
      put_number(out, value.type, 0, std::get<double>(value.value));
    } else {
      put_number(out, value.type, std::get<std::int64_t>(value.value), 0.0);
    }
    return;
  }
  put<std::uint32_t>(out, static_cast<std::uint32_t>(value.element_type));
  if (value.element_type == GgufValueType::string) {
    const auto& strings = std::get<std::vector<std::string>>(value.value);
    put<std::uint64_t>(out, strings.size());
    for (const std::string& s : strings) put_string(out, s);
  } else if (is_real(value.element_type)) {
    const auto& reals = std::get<std::vector<double>>(value.value);
    put<std::uint64_t>(out, reals.size());
    for (const double r : reals) put_number(out, value.element_type, 0, r);
  } else {
    const auto& integers = std::get<std::vector<std::int64_t>>(value.value);
    put<std::uint64_t>(out, integers.size());
    for (const std::int64_t i : integers) put_number(out, value.element_type, i, 0.0);
  }
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [existing, old] : metadata_) {
    if (existing == key) {
      old = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::set_string(const std::string& key, const std::string& value) {
  set(key, GgufValue{GgufValueType::string, GgufValueType::u8, value});
}

void GgufWriter::set_u32(const std::string& key, std::uint32_t value) {
  set(key, GgufValue{GgufValueType::u32, GgufValueType::u8, static_cast<std::int64_t>(value)});
}

void GgufWriter::set_f32(const std::string& key, float value) {
  set(key, GgufValue{GgufValueType::f32, GgufValueType::u8, static_cast<double>(value)});
}

void GgufWriter::add_tensor(const std::string& name, std::vector<std::int64_t> ne, GgmlType type,
                            std::vector<std::byte> data) {
  const GgmlTypeTraits& traits = ggml_type_traits(type);
  std::int64_t numel = 1;
  for (const std::int64_t n : ne) numel *= n;
  SERQ_CHECK(!ne.empty() && ne[0] % traits.block_values == 0 &&
                 static_cast<std::uint64_t>(numel / traits.block_values) * traits.block_bytes == data.size(),
             "GGUF tensor '{}': {} bytes do not hold {} values of {} (a bug in the caller)", name, data.size(), numel,
             traits.name);
  tensors_.push_back({name, std::move(ne), type, std::move(data)});
}

std::string GgufWriter::bytes() const {
  std::string out = "GGUF";
  put<std::uint32_t>(out, 3);
  put<std::uint64_t>(out, tensors_.size());
  put<std::uint64_t>(out, metadata_.size());
  for (const auto& [key, value] : metadata_) {
    put_string(out, key);
    put_value(out, value);
  }
  std::uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(out, t.name);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(t.ne.size()));
    for (const std::int64_t n : t.ne) put<std::uint64_t>(out, static_cast<std::uint64_t>(n));
    put<std::uint32_t>(out, static_cast<std::uint32_t>(t.type));
    put<std::uint64_t>(out, offset);
    offset += (t.data.size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  out.append((kAlignment - out.size() % kAlignment) % kAlignment, '\0');
  for (const Tensor& t : tensors_) {
    out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
    out.append((kAlignment - t.data.size() % kAlignment) % kAlignment, '\0');
  }
  return out;
}

}  // namespace serq
