// Host memory for the cpu and reference backends (see host_backend.h).
#include "core/backend/host_backend.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/common/error.h"

namespace serq {

void* HostBackend::allocate(std::size_t bytes) {
  // Buffer hands out 256-byte aligned sizes, so the size is a multiple of the alignment, as aligned_alloc wants.
  void* data = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!data) throw std::bad_alloc();
  return data;
}

void HostBackend::deallocate(void* data) { std::free(data); }

void HostBackend::copy_to_backend(void* dst, const void* src, std::size_t bytes) { std::memcpy(dst, src, bytes); }

void HostBackend::copy_to_host(void* dst, const void* src, std::size_t bytes) { std::memcpy(dst, src, bytes); }

Eigen::Map<Matrix> host_matrix(const Tensor& t) {
  SERQ_CHECK(t.backend && t.backend->host_memory(), "a tensor of backend {} read as host memory (a bug in the caller)",
             t.backend ? t.backend->name() : "none");
  return {t.f32(), static_cast<Eigen::Index>(t.rows), static_cast<Eigen::Index>(t.cols)};
}

std::span<const int> host_ints(const Tensor& t) {
  SERQ_CHECK(t.backend && t.backend->host_memory(), "a tensor of backend {} read as host memory (a bug in the caller)",
             t.backend ? t.backend->name() : "none");
  return {t.i32(), static_cast<std::size_t>(t.size())};
}

}  // namespace serq
