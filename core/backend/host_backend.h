// What the backends whose memory is the host's (cpu, reference) share: aligned host allocations, plain copies, and
// host views of tensors. Their resident linears read the QuantLinear where it lies: making one copies no float, and
// counts as "weights" the bytes its kernels read (linear_bytes), as a device would receive them.
#pragma once

#include <memory>

#include "core/backend/backend.h"

namespace serq {

class HostBackend : public Backend {
 public:
  bool host_memory() const override { return true; }
  void* allocate(std::size_t bytes) override;
  void deallocate(void* data) override;

 protected:
  void copy_to_backend(void* dst, const void* src, std::size_t bytes) override;
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override;
};

// A float tensor of a host-memory backend as an Eigen matrix over its memory (no copy).
Eigen::Map<Matrix> host_matrix(const Tensor& t);
// An int32 tensor of a host-memory backend as its values.
std::span<const int> host_ints(const Tensor& t);

}  // namespace serq
