// Test helper: writes GGUF files byte by byte (header, metadata, tensor infos, aligned data), so that tests can make
// small valid models and every kind of broken file without any other tool.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace serq::test {

class GgufWriter {
 public:
  std::uint32_t version = 3;
  std::uint64_t alignment = 32;  // the padding written; general.alignment must be added by hand to differ from 32

  void add_u32(const std::string& key, std::uint32_t v) { key_type(key, 4), put(v); }
  void add_i32(const std::string& key, std::int32_t v) { key_type(key, 5), put(v); }
  void add_f32(const std::string& key, float v) { key_type(key, 6), put(v); }
  void add_bool(const std::string& key, bool v) { key_type(key, 7), put(static_cast<std::uint8_t>(v)); }
  void add_string(const std::string& key, const std::string& v) { key_type(key, 8), put_string(meta_, v); }
  void add_string_array(const std::string& key, const std::vector<std::string>& v) {
    key_type(key, 9), put(std::uint32_t{8}), put(static_cast<std::uint64_t>(v.size()));
    for (const std::string& s : v) put_string(meta_, s);
  }
  void add_i32_array(const std::string& key, const std::vector<std::int32_t>& v) {
    key_type(key, 9), put(std::uint32_t{5}), put(static_cast<std::uint64_t>(v.size()));
    for (std::int32_t x : v) put(x);
  }

  // A tensor with raw data bytes; `offset_override` replaces the computed (aligned) offset when set.
  void add_tensor(const std::string& name, const std::vector<std::uint64_t>& ne, std::uint32_t type,
                  const std::string& data, std::int64_t offset_override = -1) {
    tensors_.push_back({name, ne, type, data, offset_override});
  }
  void add_f32_tensor(const std::string& name, const std::vector<std::uint64_t>& ne, const std::vector<float>& values) {
    std::string data(values.size() * 4, '\0');
    std::memcpy(data.data(), values.data(), data.size());
    add_tensor(name, ne, 0, data);
  }

  std::string bytes() const {
    std::string out;
    append(out, std::uint32_t{0x46554747});
    append(out, version);
    append(out, static_cast<std::uint64_t>(tensors_.size()));
    append(out, static_cast<std::uint64_t>(n_meta_));
    out += meta_;
    std::string data;
    for (const Tensor& t : tensors_) {
      while (data.size() % alignment) data += '\0';
      put_string(out, t.name);
      append(out, static_cast<std::uint32_t>(t.ne.size()));
      for (std::uint64_t d : t.ne) append(out, d);
      append(out, t.type);
      append(out, static_cast<std::uint64_t>(t.offset_override >= 0 ? t.offset_override : data.size()));
      data += t.data;
    }
    while (out.size() % alignment) out += '\0';
    return out + data;
  }

 private:
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> ne;
    std::uint32_t type;
    std::string data;
    std::int64_t offset_override;
  };
  template <class T>
  static void append(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  static void put_string(std::string& out, const std::string& s) {
    append(out, static_cast<std::uint64_t>(s.size()));
    out += s;
  }
  template <class T>
  void put(T v) {
    append(meta_, v);
  }
  void key_type(const std::string& key, std::uint32_t type) {
    put_string(meta_, key);
    put(type);
    ++n_meta_;
  }

  std::string meta_;
  int n_meta_ = 0;
  std::vector<Tensor> tensors_;
};

}  // namespace serq::test
