// Writes GGUF version 3 files (the layout core/formats/gguf.h reads): metadata entries in the order they are set,
// then tensor infos and the data region, every tensor aligned to 32 bytes. serq writes two kinds: a tokenizer-only
// file (the tokenizer.* keys of a GGUF checkpoint, beside an exported model) and a weight-only model export.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/formats/gguf.h"

namespace serq {

class GgufWriter {
 public:
  // Sets a metadata entry (a key set twice keeps its first place and takes the new value). Integers are written
  // with the value's own type (u32, i32, ...), so entries copied from another file keep their types.
  void set(const std::string& key, GgufValue value);
  void set_string(const std::string& key, const std::string& value);
  void set_u32(const std::string& key, std::uint32_t value);
  void set_f32(const std::string& key, float value);
  // A tensor of shape `ne` (ne[0] the row length) and ggml type `type`, as its blocks' bytes; the byte count must
  // be the type's for that shape.
  void add_tensor(const std::string& name, std::vector<std::int64_t> ne, GgmlType type, std::vector<std::byte> data);

  std::string bytes() const;

 private:
  struct Tensor {
    std::string name;
    std::vector<std::int64_t> ne;
    GgmlType type;
    std::vector<std::byte> data;
  };
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace serq
