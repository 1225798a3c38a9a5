// The CPU's QuantLinear kernels for one input group (Backend::quant_linear): the input transform and activation
// quantization, computed once where the linears of the group agree on them, then per linear either the float GEMM
// on fake-quantized values (OpenBLAS: "cpu-fakequant-sgemm", or "cpu-sgemm" for a layer left in float) or the
// integer GEMM on codes for a main weight with an Int8Weight (int_gemm.h: "cpu-int-<kernel>"), SERQ's R inside it
// where it fits. A low-rank correction, an R that does not fit, and the bias follow in float.
#pragma once

#include <span>

#include "core/backend/backend.h"
#include "core/linear/quant_linear.h"

namespace serq {

// outputs[i] = group[i](x). With `strict`, a linear on the integer kernel where this CPU has only the scalar
// reference is a serq::Error. Records the kernel of each linear.
void cpu_quant_linear(std::span<const QuantLinear* const> group, const Matrix& x, std::span<Matrix* const> outputs,
                      bool strict, KernelRecord& record);

}  // namespace serq
