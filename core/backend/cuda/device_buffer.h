// Device memory for the CUDA backend: a typed buffer from the stream-ordered allocator (its pool keeps freed memory
// for the next op), copies to and from host memory, and the one check that turns a CUDA or cuBLAS status into a
// serq::Error naming the call.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <span>
#include <vector>

#include "core/common/error.h"

namespace serq::cuda {

inline void check(cudaError_t status, const char* call) {
  SERQ_CHECK(status == cudaSuccess, "CUDA: {} failed: {}", call, cudaGetErrorString(status));
}

inline void check(cublasStatus_t status, const char* call) {
  SERQ_CHECK(status == CUBLAS_STATUS_SUCCESS, "cuBLAS: {} failed: {}", call, cublasGetStatusString(status));
}

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(std::size_t count, cudaStream_t stream) : count_(count), stream_(stream) {
    if (count_ > 0) {
      check(cudaMallocAsync(reinterpret_cast<void**>(&data_), count_ * sizeof(T), stream_), "cudaMallocAsync");
    }
  }
  // A copy of host values.
  DeviceBuffer(std::span<const T> values, cudaStream_t stream) : DeviceBuffer(values.size(), stream) {
    if (count_ > 0) {
      check(cudaMemcpyAsync(data_, values.data(), count_ * sizeof(T), cudaMemcpyHostToDevice, stream_), "upload");
    }
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept { swap(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    swap(other);
    return *this;
  }
  ~DeviceBuffer() {
    if (data_) cudaFreeAsync(data_, stream_);
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return count_; }
  void zero() {
    if (count_ > 0) check(cudaMemsetAsync(data_, 0, count_ * sizeof(T), stream_), "cudaMemsetAsync");
  }
  // Copies the first out.size() values back and waits for them.
  void download(std::span<T> out) const {
    if (out.empty()) return;
    check(cudaMemcpyAsync(out.data(), data_, out.size() * sizeof(T), cudaMemcpyDeviceToHost, stream_), "download");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }
  std::vector<T> to_host() const {
    std::vector<T> out(count_);
    download(out);
    return out;
  }

 private:
  void swap(DeviceBuffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
    std::swap(stream_, other.stream_);
  }
  T* data_ = nullptr;
  std::size_t count_ = 0;
  cudaStream_t stream_ = nullptr;
};

}  // namespace serq::cuda
