// The CUDA backend's kernels, as launch functions on raw device pointers (no Eigen, so that only these .cu files
// go through nvcc). Matrices are row-major; every launch is asynchronous on `stream`. Each kernel's arithmetic
// follows the CPU backend's (core/backend/cpu/), and test_backend_ops holds the backend to the reference.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace serq::cuda {

// Whether this build's kernels have an image for the current GPU (cudaErrorNoKernelImageForDevice where they do not).
cudaError_t probe_kernels();

// Elementwise and per-row ops (elementwise.cu).
void launch_embedding(const float* table, const int* tokens, int count, int dim, float* out, cudaStream_t stream);
void launch_rms_norm(const float* x, const float* gamma, float eps, int rows, int dim, float* out,
                     cudaStream_t stream);
// RoPE over rows × (n_heads · head_dim); row r sits at position pos0 + r % seq. frequencies: head_dim / 2 angles.
void launch_rope(float* x, const float* frequencies, int rows, int seq, int pos0, int n_heads, int head_dim,
                 bool interleaved, cudaStream_t stream);
void launch_swiglu(float* gate, const float* up, std::int64_t count, cudaStream_t stream);
void launch_add(float* h, const float* x, std::int64_t count, cudaStream_t stream);
// y[r, n] = y[r, n] / divisor[n] + bias[n]; either may be null.
void launch_rows_epilogue(float* y, int rows, int cols, const float* divisor, const float* bias, cudaStream_t stream);

// Quantization and input transforms (quantize.cu). `bad_row` (device int, initialized to INT_MAX) receives the
// smallest row with a non-finite value in a quantized group.
// x ← ((x / scale)[:, order]) row by row into out (scale, order optional).
void launch_scale_gather(const float* x, const float* scale, const int* order, int rows, int cols, float* out,
                         cudaStream_t stream);
// INT fake quantization per row and group of group_width columns (the last shorter), in place; `clip` (0, 1] scales
// each group's range first (the KV cache's quant.kv_clip; 1 for activations).
void launch_fake_quant_int(float* x, int rows, int cols, int group_width, int bits, bool symmetric, float clip,
                           int* bad_row, cudaStream_t stream);
void launch_fake_quant_mxfp4(float* x, int rows, int cols, int block, int* bad_row, cudaStream_t stream);
// The fused activation kernel: (x / scale)[:, order] → INT codes per group → the low-bit GEMM's layout
// (lowbit_layout.h), with R's groups (activation_group[g] for g ≥ main_groups) copied from the groups they read.
// codes (rows_pad × groups · group_pad) must be zeroed first; scales and offsets are rows_pad × groups.
struct ActivationPack {
  int rows = 0, cols = 0, group_width = 0, groups = 0, main_groups = 0, group_pad = 0, bits = 8;
  bool symmetric = true;
  const int* activation_group = nullptr;  // device, groups
  const int* group_columns = nullptr;     // device, groups
};
void launch_pack_activations(const float* x, const float* scale, const int* order, const ActivationPack& pack,
                             std::uint8_t* codes, float* scales, std::int32_t* offsets, int* bad_row,
                             cudaStream_t stream);
// Fast Walsh–Hadamard transform across n blocks of m channels of each row, scaled by 1/sqrt(n), in place.
void launch_hadamard(float* x, int rows, int n, int m, cudaStream_t stream);

// Softmaxes and reductions (reductions.cu).
// Causal softmax of scores (seq rows of `stride` floats): row t keeps columns 0 .. pos0 + t and zeros the rest up to
// `keys`.
void launch_causal_softmax(float* scores, int seq, int keys, int stride, int pos0, cudaStream_t stream);
// nll[r] = −log softmax(logits[r])[target[r]], in double, and argmax[r] (the first index among ties).
void launch_nll(const float* logits, const int* targets, int rows, int vocab, double* nll, int* argmax,
                cudaStream_t stream);
// Per row: kld, delta_p, reference_nll, nll (double) and top-1 agreement.
struct KldOut {
  double* kld;
  double* delta_p;
  double* reference_nll;
  double* nll;
  int* top1;
};
void launch_kld(const float* reference, const float* logits, const int* targets, int rows, int vocab,
                const KldOut& out, cudaStream_t stream);
// Per column of x (rows × cols): max |x| (NaN when the column has one) and Σ|x| (double).
void launch_column_stats(const float* x, int rows, int cols, float* abs_max, double* sum_abs, cudaStream_t stream);

// The low-bit GEMM (lowbit_gemm.cu), on the layouts of lowbit_layout.h: y (rows × n, row stride n) for rows ≤ the
// padded rows of the codes.
struct LowbitOperands {
  const std::uint8_t* act_codes = nullptr;
  const float* act_scales = nullptr;
  const std::int32_t* act_offsets = nullptr;
  const std::uint8_t* weight_codes = nullptr;
  const float* weight_scales = nullptr;
  const std::int32_t* weight_sums = nullptr;
  const float* divisors = nullptr;
  const float* bias = nullptr;  // optional
  int rows = 0, rows_pad = 0, n = 0, n_pad = 0, groups = 0, group_pad = 0, bits = 4;
};
void launch_lowbit_gemm(const LowbitOperands& op, float* y, cudaStream_t stream);

}  // namespace serq::cuda
