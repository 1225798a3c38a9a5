// The CPU's QuantLinear kernels for one input group (Backend::quant_linear): the input transform and activation
// quantization, computed once where the linears of the group agree on them, then per linear either the float GEMM
// on fake-quantized values (OpenBLAS: "cpu-fakequant-sgemm", or "cpu-sgemm" for a layer left in float) or, for a
// layer on the integer kernel (QuantLinear::int_kernel), the integer GEMM on codes (int_gemm.h: "cpu-int-<kernel>"),
// SERQ's R inside it where it fits. A low-rank correction, an R that does not fit, and the bias follow in float.
#pragma once

#include <memory>
#include <span>

#include "core/backend/backend.h"
#include "core/backend/cpu/int_gemm.h"
#include "core/linear/quant_linear.h"

namespace serq {

// The main weight of a layer on the integer kernel laid out for it, with SERQ's R as extra K where its packed form
// fits (Int8Weight::fits_salient); null for a layer that is not (QuantLinear::int_kernel). The GPU's low-bit layout
// is built from it too.
std::unique_ptr<const Int8Weight> int8_weight(const QuantLinear& layer);

// The bytes a backend reads for a layer: its Int8Weight where there is one, else the main weight as held (floats,
// or the stored form they are dequantized from), and the correction, bias and transform.
std::size_t linear_bytes(const QuantLinear& layer, const Int8Weight* int8);

// The CPU's copy of a linear: the QuantLinear read where it lies, and its Int8Weight, made once.
struct CpuLinear final : ResidentLinear {
  explicit CpuLinear(const QuantLinear& layer) : ResidentLinear(layer), int8(int8_weight(layer)) {}
  std::size_t bytes() const { return linear_bytes(layer(), int8.get()); }

  std::unique_ptr<const Int8Weight> int8;
};

// outputs[i] (x.rows() × d_out, sized by the caller) = group[i](x). With `strict`, a linear on the integer kernel
// where this CPU has only the scalar reference is a serq::Error. Records the kernel of each linear.
void cpu_quant_linear(std::span<const CpuLinear* const> group, ConstMatrixRef x, std::span<MatrixRef> outputs,
                      bool strict, KernelRecord& record);

}  // namespace serq
