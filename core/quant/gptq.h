// GPTQ (Frantar et al., ICLR 2023): quantizes a weight column by column (input channel by input channel), spreading
// each column's rounding error over the columns not yet quantized through the inverse Hessian of the layer's inputs,
// H = Σ xᵀx. Blocked lazy updates, dampening, groups and act_order follow the reference implementation; the number
// format is any QuantSpec (INT sym/asym per row or group, MXFP4 blocks), with a group's scale fixed from the
// (updated) weights when the quantizer reaches the group's first column.
#pragma once

#include <string>

#include <Eigen/Core>

#include "core/common/matrix.h"
#include "core/quant/int_quant.h"

namespace serq {

struct GptqOptions {
  double damp = 0.01;      // λ = damp · mean(diag H) added to the diagonal
  int block_size = 128;    // columns quantized per lazy-update block
  bool act_order = false;  // quantize columns in order of decreasing diag(H) (groups still follow channel order)
};

// Quantizes w (d_out × d_in) in place with spec, given the Gram matrix H (d_in × d_in) of the layer's inputs.
// Input channels that never fire (H_jj = 0) are quantized as plain RTN columns. A Hessian that is not positive
// definite after dampening (or has NaN/Inf, or the wrong shape) is a serq::Error starting with `what` (the layer
// name) and saying what to change (more calibration samples, a larger gptq.damp).
void gptq_quantize(Matrix& w, const Eigen::MatrixXd& hessian, const QuantSpec& spec, const GptqOptions& options,
                   const std::string& what);

}  // namespace serq
