// Elementwise and per-row kernels of the CUDA backend: embedding rows, RMSNorm, RoPE, SwiGLU, the residual add and
// a linear's divisor-and-bias epilogue. Each follows the CPU backend's arithmetic in float.
#include <cstdint>

#include "core/backend/cuda/cuda_kernels.h"

namespace serq::cuda {
namespace {

constexpr int kBlock = 256;

int blocks_for(std::int64_t count) { return static_cast<int>((count + kBlock - 1) / kBlock); }

__global__ void embedding_kernel(const float* table, const int* tokens, int count, int dim, float* out) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<std::int64_t>(count) * dim) return;
  const std::int64_t row = i / dim, col = i % dim;
  out[i] = table[static_cast<std::int64_t>(tokens[row]) * dim + col];
}

// One block per row: the sum of squares in float by a block reduction, then x · inv · γ.
__global__ void rms_norm_kernel(const float* x, const float* gamma, float eps, int dim, float* out) {
  __shared__ float partial[kBlock];
  const float* in = x + static_cast<std::int64_t>(blockIdx.x) * dim;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) sum += in[i] * in[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  const float inv = 1.0f / sqrtf(partial[0] / static_cast<float>(dim) + eps);
  float* o = out + static_cast<std::int64_t>(blockIdx.x) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = in[i] * inv * gamma[i];
}

// One thread per rotated pair.
__global__ void rope_kernel(float* x, const float* frequencies, int rows, int seq, int pos0, int n_heads,
                            int head_dim, bool interleaved) {
  const int half = head_dim / 2;
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<std::int64_t>(rows) * n_heads * half) return;
  const int pair = static_cast<int>(i % half), head = static_cast<int>((i / half) % n_heads);
  const std::int64_t row = i / (static_cast<std::int64_t>(half) * n_heads);
  const float angle = static_cast<float>(pos0 + static_cast<int>(row % seq)) * frequencies[pair];
  const float c = cosf(angle), s = sinf(angle);
  float* h = x + row * n_heads * head_dim + static_cast<std::int64_t>(head) * head_dim;
  float& a = interleaved ? h[2 * pair] : h[pair];
  float& b = interleaved ? h[2 * pair + 1] : h[pair + half];
  const float x0 = a, x1 = b;
  a = x0 * c - x1 * s;
  b = x0 * s + x1 * c;
}

__global__ void swiglu_kernel(float* gate, const float* up, std::int64_t count) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

__global__ void add_kernel(float* h, const float* x, std::int64_t count) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) h[i] += x[i];
}

__global__ void rows_epilogue_kernel(float* y, int rows, int cols, const float* divisor, const float* bias) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<std::int64_t>(rows) * cols) return;
  const int n = static_cast<int>(i % cols);
  float v = y[i];
  if (divisor) v /= divisor[n];
  if (bias) v += bias[n];
  y[i] = v;
}

}  // namespace

cudaError_t probe_kernels() {
  cudaFuncAttributes attributes{};
  return cudaFuncGetAttributes(&attributes, add_kernel);
}

void launch_embedding(const float* table, const int* tokens, int count, int dim, float* out, cudaStream_t stream) {
  embedding_kernel<<<blocks_for(std::int64_t(count) * dim), kBlock, 0, stream>>>(table, tokens, count, dim, out);
}

void launch_rms_norm(const float* x, const float* gamma, float eps, int rows, int dim, float* out,
                     cudaStream_t stream) {
  if (rows > 0) rms_norm_kernel<<<rows, kBlock, 0, stream>>>(x, gamma, eps, dim, out);
}

void launch_rope(float* x, const float* frequencies, int rows, int seq, int pos0, int n_heads, int head_dim,
                 bool interleaved, cudaStream_t stream) {
  const std::int64_t pairs = static_cast<std::int64_t>(rows) * n_heads * (head_dim / 2);
  if (pairs > 0) {
    rope_kernel<<<blocks_for(pairs), kBlock, 0, stream>>>(x, frequencies, rows, seq, pos0, n_heads, head_dim,
                                                          interleaved);
  }
}

void launch_swiglu(float* gate, const float* up, std::int64_t count, cudaStream_t stream) {
  if (count > 0) swiglu_kernel<<<blocks_for(count), kBlock, 0, stream>>>(gate, up, count);
}

void launch_add(float* h, const float* x, std::int64_t count, cudaStream_t stream) {
  if (count > 0) add_kernel<<<blocks_for(count), kBlock, 0, stream>>>(h, x, count);
}

void launch_rows_epilogue(float* y, int rows, int cols, const float* divisor, const float* bias,
                          cudaStream_t stream) {
  const std::int64_t count = static_cast<std::int64_t>(rows) * cols;
  if (count > 0 && (divisor || bias)) {
    rows_epilogue_kernel<<<blocks_for(count), kBlock, 0, stream>>>(y, rows, cols, divisor, bias);
  }
}

}  // namespace serq::cuda
