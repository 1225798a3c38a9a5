// QuantLinear::forward on the CPU: dynamic activation fake quantization on a copy of X, then one GEMM.
#include "core/linear/quant_linear.h"

#include "core/backend/cpu/gemm.h"
#include "core/common/error.h"

namespace serq {

void QuantLinear::forward(const Matrix& x, Matrix& y) const {
  SERQ_CHECK(x.cols() == weight.cols(),
             "{}: the input has {} columns but the layer takes d_in = {} (a shape bug in the caller)", name, x.cols(),
             weight.cols());
  if (!act_quant.enabled()) {
    gemm_xwt(x, weight, y);
    return;
  }
  Matrix xq = x;
  try {
    fake_quant_rows(xq, act_quant);
  } catch (const Error& e) {
    fail("{}: {}", name, e.what());
  }
  gemm_xwt(xq, weight, y);
}

}  // namespace serq
