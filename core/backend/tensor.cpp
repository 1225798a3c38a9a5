// Tensors and the arena that holds them (see tensor.h).
#include "core/backend/tensor.h"

#include <algorithm>

#include "core/backend/backend.h"
#include "core/common/error.h"

namespace serq {
namespace {

// Every tensor starts on a 256-byte boundary: what vector loads and CUDA's coalesced accesses want.
constexpr std::size_t kAlignment = 256;

std::size_t aligned(std::size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

std::size_t element_bytes(ElementType type) { return type == ElementType::f32 ? sizeof(float) : sizeof(int); }

float* Tensor::f32() const {
  SERQ_CHECK(type == ElementType::f32, "a tensor of int32 was read as float32 (a bug in the caller)");
  return static_cast<float*>(data);
}

int* Tensor::i32() const {
  SERQ_CHECK(type == ElementType::i32, "a tensor of float32 was read as int32 (a bug in the caller)");
  return static_cast<int*>(data);
}

Tensor Tensor::middle_rows(std::int64_t first, std::int64_t count) const {
  SERQ_CHECK(first >= 0 && count >= 0 && first + count <= rows, "rows {}..{} of a tensor of {} rows", first,
             first + count, rows);
  Tensor view = *this;
  view.data = static_cast<char*>(data) + static_cast<std::size_t>(first * cols) * element_bytes(type);
  view.rows = count;
  return view;
}

Tensor Tensor::reshaped(std::int64_t new_rows, std::int64_t new_cols) const {
  SERQ_CHECK(new_rows >= 0 && new_cols >= 0 && new_rows * new_cols == size(), "a tensor of {}×{} read as {}×{}", rows,
             cols, new_rows, new_cols);
  Tensor view = *this;
  view.rows = new_rows;
  view.cols = new_cols;
  return view;
}

Buffer::Buffer(Backend& backend) : backend_(&backend) {}

Buffer::~Buffer() { release(); }

void Buffer::release() {
  for (const Chunk& chunk : chunks_) backend_->deallocate(chunk.data);
  chunks_.clear();
  used_ = 0;
}

Tensor Buffer::alloc(std::int64_t rows, std::int64_t cols, ElementType type) {
  SERQ_CHECK(rows >= 0 && cols >= 0, "a tensor of {} × {}", rows, cols);
  Tensor t{.data = nullptr, .rows = rows, .cols = cols, .type = type, .backend = backend_};
  const std::size_t bytes = aligned(std::max<std::size_t>(t.bytes(), 1));
  if (chunks_.empty() || used_ + bytes > chunks_.back().bytes) {
    // A new chunk at least twice the last, so that a growing pass allocates O(log) times.
    const std::size_t size = std::max(bytes, chunks_.empty() ? std::size_t{1} << 20 : 2 * chunks_.back().bytes);
    chunks_.push_back({backend_->allocate(size), size});
    used_ = 0;
  }
  t.data = static_cast<char*>(chunks_.back().data) + used_;
  used_ += bytes;
  used_total_ += bytes;
  return t;
}

void Buffer::reset() {
  if (chunks_.size() > 1) {  // one chunk that holds all the last pass needed
    const std::size_t need = used_total_;
    release();
    chunks_.push_back({backend_->allocate(need), need});
  }
  used_ = 0;
  used_total_ = 0;
}

}  // namespace serq
