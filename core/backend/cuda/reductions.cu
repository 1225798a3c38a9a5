// Row softmaxes and column statistics of the CUDA backend: attention's causal softmax (float, as the CPU), the NLL
// and KLD of logits (double, as the CPU), and the calibration observer's per-channel abs-max and Σ|x|. One block per
// row; ties of an argmax go to the smaller index, as Eigen's maxCoeff.
#include <cfloat>
#include <cstdint>

#include "core/backend/cuda/cuda_kernels.h"

namespace serq::cuda {
namespace {

constexpr int kBlock = 256;

template <class T>
__device__ T block_max(T v, T* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) shared[threadIdx.x] = max(shared[threadIdx.x], shared[threadIdx.x + width]);
    __syncthreads();
  }
  const T result = shared[0];
  __syncthreads();
  return result;
}

template <class T>
__device__ T block_sum(T v, T* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) shared[threadIdx.x] += shared[threadIdx.x + width];
    __syncthreads();
  }
  const T result = shared[0];
  __syncthreads();
  return result;
}

// The first index of the row's largest value.
__device__ int block_argmax(const float* row, int n, float* values, int* indices) {
  float best = -FLT_MAX;
  int at = n;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    if (row[i] > best || at == n) {
      best = row[i];
      at = i;
    }
  }
  values[threadIdx.x] = best;
  indices[threadIdx.x] = at;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) {
      const float v = values[threadIdx.x + width];
      const int i = indices[threadIdx.x + width];
      if (v > values[threadIdx.x] || (v == values[threadIdx.x] && i < indices[threadIdx.x])) {
        values[threadIdx.x] = v;
        indices[threadIdx.x] = i;
      }
    }
    __syncthreads();
  }
  const int result = indices[0];
  __syncthreads();
  return result;
}

// max and max + log Σ exp(x − max) of a row, in double.
struct LogSumExp {
  double max, lse;
};

__device__ LogSumExp row_logsumexp(const float* row, int n, double* shared) {
  double m = -DBL_MAX;
  for (int i = threadIdx.x; i < n; i += blockDim.x) m = max(m, static_cast<double>(row[i]));
  m = block_max(m, shared);
  double s = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += exp(static_cast<double>(row[i]) - m);
  s = block_sum(s, shared);
  return {m, m + log(s)};
}

__global__ void causal_softmax_kernel(float* scores, int keys, int stride, int pos0) {
  __shared__ float shared[kBlock];
  float* row = scores + static_cast<std::int64_t>(blockIdx.x) * stride;
  const int visible = pos0 + static_cast<int>(blockIdx.x) + 1;
  float m = -FLT_MAX;
  for (int i = threadIdx.x; i < visible; i += blockDim.x) m = fmaxf(m, row[i]);
  m = block_max(m, shared);
  float s = 0.0f;
  for (int i = threadIdx.x; i < visible; i += blockDim.x) {
    row[i] = expf(row[i] - m);
    s += row[i];
  }
  s = block_sum(s, shared);
  const float inv = 1.0f / s;
  for (int i = threadIdx.x; i < keys; i += blockDim.x) row[i] = i < visible ? row[i] * inv : 0.0f;
}

__global__ void nll_kernel(const float* logits, const int* targets, int vocab, double* nll, int* argmax) {
  __shared__ double shared[kBlock];
  __shared__ float values[kBlock];
  __shared__ int indices[kBlock];
  const float* row = logits + static_cast<std::int64_t>(blockIdx.x) * vocab;
  const LogSumExp z = row_logsumexp(row, vocab, shared);
  const int top = block_argmax(row, vocab, values, indices);
  if (threadIdx.x == 0) {
    nll[blockIdx.x] = z.lse - static_cast<double>(row[targets[blockIdx.x]]);
    argmax[blockIdx.x] = top;
  }
}

__global__ void kld_kernel(const float* reference, const float* logits, const int* targets, int vocab, KldOut out) {
  __shared__ double shared[kBlock];
  __shared__ float values[kBlock];
  __shared__ int indices[kBlock];
  const std::int64_t r = blockIdx.x;
  const float* p_row = reference + r * vocab;
  const float* q_row = logits + r * vocab;
  const LogSumExp p = row_logsumexp(p_row, vocab, shared);
  const LogSumExp q = row_logsumexp(q_row, vocab, shared);
  double kld = 0.0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const double log_p = p_row[i] - p.lse, log_q = q_row[i] - q.lse;
    kld += exp(log_p) * (log_p - log_q);
  }
  kld = block_sum(kld, shared);
  const int top_p = block_argmax(p_row, vocab, values, indices);
  const int top_q = block_argmax(q_row, vocab, values, indices);
  if (threadIdx.x == 0) {
    const int target = targets[r];
    const double log_p = p_row[target] - p.lse, log_q = q_row[target] - q.lse;
    out.kld[r] = kld > 0.0 ? kld : 0.0;  // rounding can leave a tiny negative sum; KL is never below 0
    out.delta_p[r] = exp(log_q) - exp(log_p);
    out.reference_nll[r] = -log_p;
    out.nll[r] = -log_q;
    out.top1[r] = top_p == top_q;
  }
}

// One thread per column, down the rows (adjacent threads read adjacent columns).
__global__ void column_stats_kernel(const float* x, int rows, int cols, float* abs_max, double* sum_abs) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  float m = 0.0f;
  double s = 0.0;
  for (int r = 0; r < rows; ++r) {
    const float v = fabsf(x[static_cast<std::int64_t>(r) * cols + j]);
    m = isnan(v) || isnan(m) ? __int_as_float(0x7FC00000) : fmaxf(m, v);
    s += v;
  }
  abs_max[j] = m;
  sum_abs[j] = s;
}

}  // namespace

void launch_causal_softmax(float* scores, int seq, int keys, int stride, int pos0, cudaStream_t stream) {
  if (seq > 0) causal_softmax_kernel<<<seq, kBlock, 0, stream>>>(scores, keys, stride, pos0);
}

void launch_nll(const float* logits, const int* targets, int rows, int vocab, double* nll, int* argmax,
                cudaStream_t stream) {
  if (rows > 0) nll_kernel<<<rows, kBlock, 0, stream>>>(logits, targets, vocab, nll, argmax);
}

void launch_kld(const float* reference, const float* logits, const int* targets, int rows, int vocab,
                const KldOut& out, cudaStream_t stream) {
  if (rows > 0) kld_kernel<<<rows, kBlock, 0, stream>>>(reference, logits, targets, vocab, out);
}

void launch_column_stats(const float* x, int rows, int cols, float* abs_max, double* sum_abs, cudaStream_t stream) {
  if (cols > 0) {
    column_stats_kernel<<<(cols + kBlock - 1) / kBlock, kBlock, 0, stream>>>(x, rows, cols, abs_max, sum_abs);
  }
}

}  // namespace serq::cuda
