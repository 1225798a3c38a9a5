// Memory that belongs to a backend (ggml's backend buffers, llm.c's allocate-once): a Tensor is a row-major array
// in one backend's memory, and a Buffer is the arena that holds it. Host data reaches a tensor only through
// Backend::set and Backend::get (core/backend/backend.h), which count the bytes that cross; the ops of that backend
// read and write it in place.
//
// A Tensor does not own its memory. It stays valid until the Buffer it came from is reset or destroyed (or, for a
// resident copy of host data, while that data lives). On the cpu and reference backends its data is host memory;
// on cuda it is device memory, and host code must not touch it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace serq {

class Backend;

enum class ElementType : std::uint8_t { f32, i32 };
std::size_t element_bytes(ElementType type);

struct Tensor {
  void* data = nullptr;
  std::int64_t rows = 0, cols = 0;
  ElementType type = ElementType::f32;
  Backend* backend = nullptr;  // whose memory `data` is

  std::int64_t size() const { return rows * cols; }
  std::size_t bytes() const { return static_cast<std::size_t>(size()) * element_bytes(type); }
  // Typed access for the backend that owns the memory; a wrong type is a serq::Error.
  float* f32() const;
  int* i32() const;
  // Rows first .. first + count - 1, as a tensor sharing this one's memory.
  Tensor middle_rows(std::int64_t first, std::int64_t count) const;
  // The same memory read as rows × cols (rows · cols = size()), e.g. (tokens · heads) × head_dim.
  Tensor reshaped(std::int64_t rows, std::int64_t cols) const;
};

// An arena of one backend's memory. alloc() hands out tensors from large chunks; reset() makes every tensor handed
// out invalid and keeps the memory (merged into one chunk of the size last needed), so a loop that allocates the
// same shapes each pass allocates from the backend only in its first pass.
class Buffer {
 public:
  explicit Buffer(Backend& backend);
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  Backend& backend() const { return *backend_; }
  // An uninitialized rows × cols tensor of `type`.
  Tensor alloc(std::int64_t rows, std::int64_t cols, ElementType type = ElementType::f32);
  void reset();

 private:
  struct Chunk {
    void* data = nullptr;
    std::size_t bytes = 0;
  };
  void release();

  Backend* backend_;
  std::vector<Chunk> chunks_;
  std::size_t used_ = 0;        // bytes used in the last chunk
  std::size_t used_total_ = 0;  // bytes handed out since the last reset, over all chunks
};

}  // namespace serq
