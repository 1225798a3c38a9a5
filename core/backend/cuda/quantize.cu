// Quantization kernels of the CUDA backend: the input transform's scale and gather, INT and MXFP4 fake
// quantization, the fused activation kernel that writes the low-bit GEMM's codes, and the online Hadamard. One warp
// per (row, group): the group's range by warp reductions, then its values; the formulas are lowbit_layout.h's, the
// same float operations as the CPU's fake quantization, so the values agree bit for bit.
#include <climits>
#include <cstdint>

#include "core/backend/cuda/cuda_kernels.h"
#include "core/backend/cuda/lowbit_layout.h"

namespace serq::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kWarpsPerBlock = kBlock / 32;

// The transformed input value (x / scale)[:, order] at column j of row `row`.
__device__ __forceinline__ float transformed(const float* x, const float* scale, const int* order, int cols,
                                             std::int64_t row, int j) {
  const int from = order ? order[j] : j;
  const float v = x[row * cols + from];
  return scale ? v / scale[from] : v;
}

struct Range {
  float lo, hi, amax;
  bool finite;
};

// lo = min(min x, 0), hi = max(max x, 0) and max |x| over columns c0 .. c0 + n − 1, reduced across the warp.
__device__ Range warp_range(const float* x, const float* scale, const int* order, int cols, std::int64_t row, int c0,
                            int n) {
  Range r{0.0f, 0.0f, 0.0f, true};
  for (int k = threadIdx.x % 32; k < n; k += 32) {
    const float v = transformed(x, scale, order, cols, row, c0 + k);
    r.finite = r.finite && isfinite(v);
    r.lo = fminf(r.lo, v);
    r.hi = fmaxf(r.hi, v);
    r.amax = fmaxf(r.amax, fabsf(v));
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    r.lo = fminf(r.lo, __shfl_xor_sync(0xFFFFFFFFu, r.lo, offset));
    r.hi = fmaxf(r.hi, __shfl_xor_sync(0xFFFFFFFFu, r.hi, offset));
    r.amax = fmaxf(r.amax, __shfl_xor_sync(0xFFFFFFFFu, r.amax, offset));
  }
  r.finite = __all_sync(0xFFFFFFFFu, r.finite);
  return r;
}

// The warp's group among rows × groups of `width` columns (the last one shorter): its row, first column, width and
// range. False when the warp has none, or when a value is not finite (then the smallest such row goes to bad_row).
struct WarpGroup {
  std::int64_t row;
  int group, c0, n;
  Range range;
};

__device__ bool warp_group(const float* x, const float* scale, const int* order, int rows, int cols, int width,
                           int groups, int* bad_row, WarpGroup& w) {
  const std::int64_t task = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (task >= static_cast<std::int64_t>(rows) * groups) return false;
  w.row = task / groups;
  w.group = static_cast<int>(task % groups);
  w.c0 = w.group * width;
  w.n = min(width, cols - w.c0);
  w.range = warp_range(x, scale, order, cols, w.row, w.c0, w.n);
  if (!w.range.finite && threadIdx.x % 32 == 0) atomicMin(bad_row, static_cast<int>(w.row));
  return w.range.finite;
}

__global__ void scale_gather_kernel(const float* x, const float* scale, const int* order, int rows, int cols,
                                    float* out) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<std::int64_t>(rows) * cols) return;
  out[i] = transformed(x, scale, order, cols, i / cols, static_cast<int>(i % cols));
}

__global__ void fake_quant_int_kernel(float* x, int rows, int cols, int group_width, int groups, int bits,
                                      bool symmetric, float clip, int* bad_row) {
  WarpGroup w;
  if (!warp_group(x, nullptr, nullptr, rows, cols, group_width, groups, bad_row, w)) return;
  // Each range end scaled and rounded on its own (__fmul_rn is never fused), as core/quant/grid.h's clip_range.
  const GroupQuant q = group_quant(__fmul_rn(w.range.lo, clip), __fmul_rn(w.range.hi, clip), bits, symmetric);
  float* values = x + w.row * cols + w.c0;
  for (int k = threadIdx.x % 32; k < w.n; k += 32) values[k] = fake_quant_value(values[k], q);
}

__global__ void fake_quant_mxfp4_kernel(float* x, int rows, int cols, int block, int groups, int* bad_row) {
  WarpGroup w;
  if (!warp_group(x, nullptr, nullptr, rows, cols, block, groups, bad_row, w)) return;
  const float scale = mxfp4_block_scale(w.range.amax);
  float* values = x + w.row * cols + w.c0;
  for (int k = threadIdx.x % 32; k < w.n; k += 32) values[k] = mxfp4_value(values[k], scale);
}

// One warp per (row, activation group): its codes go to the group's place and to R's group that reads it.
__global__ void pack_activations_kernel(const float* x, const float* scale, const int* order, ActivationPack pack,
                                        std::uint8_t* codes, float* scales, std::int32_t* offsets, int* bad_row) {
  WarpGroup w;
  if (!warp_group(x, scale, order, pack.rows, pack.cols, pack.group_width, pack.main_groups, bad_row, w)) return;
  const std::int64_t row = w.row;
  const int group = w.group, c0 = w.c0, n = w.n;
  const GroupQuant q = group_quant(w.range.lo, w.range.hi, pack.bits, pack.symmetric);
  const int salient_group = pack.main_groups + group;  // R's group reading this one, where there is one
  const bool salient = salient_group < pack.groups && pack.activation_group[salient_group] == group;
  const int salient_columns = salient ? pack.group_columns[salient_group] : 0;
  const std::int64_t row_bytes = static_cast<std::int64_t>(pack.groups) * pack.group_pad;
  std::uint8_t* out = codes + row * row_bytes;
  for (int k = threadIdx.x % 32; k < n; k += 32) {
    const std::uint8_t u = activation_code(transformed(x, scale, order, pack.cols, row, c0 + k), q);
    out[static_cast<std::int64_t>(group) * pack.group_pad + k] = u;
    if (k < salient_columns) out[static_cast<std::int64_t>(salient_group) * pack.group_pad + k] = u;
  }
  if (threadIdx.x % 32 == 0) {
    scales[row * pack.groups + group] = q.scale;
    offsets[row * pack.groups + group] = q.offset;
    if (salient) {
      scales[row * pack.groups + salient_group] = q.scale;
      offsets[row * pack.groups + salient_group] = q.offset;
    }
  }
}

// One block per row: log2(n) butterfly stages in place (the block owns its row), then the 1/sqrt(n) scale.
__global__ void hadamard_kernel(float* x, int n, int m) {
  float* row = x + static_cast<std::int64_t>(blockIdx.x) * n * m;
  const int pairs = n / 2 * m;
  for (int half = 1; half < n; half *= 2) {
    for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
      const int j = p / m, b = p % m;
      const int lo = (j / half) * 2 * half + j % half, hi = lo + half;
      const float a = row[lo * m + b], c = row[hi * m + b];
      row[lo * m + b] = a + c;
      row[hi * m + b] = a - c;
    }
    __syncthreads();
  }
  const float norm = 1.0f / sqrtf(static_cast<float>(n));
  for (int i = threadIdx.x; i < n * m; i += blockDim.x) row[i] *= norm;
}

int warp_blocks(std::int64_t tasks) { return static_cast<int>((tasks + kWarpsPerBlock - 1) / kWarpsPerBlock); }

}  // namespace

void launch_scale_gather(const float* x, const float* scale, const int* order, int rows, int cols, float* out,
                         cudaStream_t stream) {
  const std::int64_t count = static_cast<std::int64_t>(rows) * cols;
  if (count > 0) {
    scale_gather_kernel<<<static_cast<int>((count + kBlock - 1) / kBlock), kBlock, 0, stream>>>(x, scale, order, rows,
                                                                                               cols, out);
  }
}

void launch_fake_quant_int(float* x, int rows, int cols, int group_width, int bits, bool symmetric, float clip,
                           int* bad_row, cudaStream_t stream) {
  const int groups = (cols + group_width - 1) / group_width;
  const std::int64_t tasks = static_cast<std::int64_t>(rows) * groups;
  if (tasks > 0) {
    fake_quant_int_kernel<<<warp_blocks(tasks), kBlock, 0, stream>>>(x, rows, cols, group_width, groups, bits,
                                                                     symmetric, clip, bad_row);
  }
}

void launch_fake_quant_mxfp4(float* x, int rows, int cols, int block, int* bad_row, cudaStream_t stream) {
  const int groups = (cols + block - 1) / block;
  const std::int64_t tasks = static_cast<std::int64_t>(rows) * groups;
  if (tasks > 0) {
    fake_quant_mxfp4_kernel<<<warp_blocks(tasks), kBlock, 0, stream>>>(x, rows, cols, block, groups, bad_row);
  }
}

void launch_pack_activations(const float* x, const float* scale, const int* order, const ActivationPack& pack,
                             std::uint8_t* codes, float* scales, std::int32_t* offsets, int* bad_row,
                             cudaStream_t stream) {
  const std::int64_t tasks = static_cast<std::int64_t>(pack.rows) * pack.main_groups;
  if (tasks > 0) {
    pack_activations_kernel<<<warp_blocks(tasks), kBlock, 0, stream>>>(x, scale, order, pack, codes, scales, offsets,
                                                                       bad_row);
  }
}

void launch_hadamard(float* x, int rows, int n, int m, cudaStream_t stream) {
  if (rows > 0 && n > 1) hadamard_kernel<<<rows, kBlock, 0, stream>>>(x, n, m);
}

}  // namespace serq::cuda
