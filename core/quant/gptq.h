// GPTQ (Frantar et al., ICLR 2023): quantizes a weight column by column (input channel by input channel), spreading
// each column's rounding error over the columns not yet quantized through the inverse Hessian of the layer's inputs,
// H = Σ xᵀx. Blocked lazy updates, dampening, groups and act_order follow the reference implementation; the number
// format is any QuantSpec (INT sym/asym per row or group, MXFP4 blocks), with the same formulas as fake_quant_rows.
//
// Groups: without act_order a group's parameters (scale, zero; MXFP4: the block's power-of-two scale) are fitted
// per row on the group's error-updated values when GPTQ reaches the group's first column, and then frozen. With
// act_order columns are visited out of channel order, so every group is fitted up front on the original weights
// (the reference's "static groups"). Either way the result does not depend on block_size.
#pragma once

#include <string>

#include <Eigen/Core>

#include "core/common/matrix.h"
#include "core/quant/int_quant.h"
#include "core/quant/packed_weight.h"

namespace serq {

struct GptqOptions {
  double damp = 0.01;      // gptq.damp: λ = damp · mean(diag H) added to the diagonal
  int block_size = 128;    // gptq.block_size: columns quantized per lazy-update block (speed only)
  bool act_order = false;  // gptq.act_order: quantize columns in order of decreasing diag(H)
};

// Quantizes w (d_out × d_in) in place with spec, given the Gram matrix H (d_in × d_in) of the layer's inputs.
// Input channels that never fire (H_jj = 0) get no error from the other columns and spread none: their weights are
// rounded as they are (the reference zeroes them instead). A Hessian that is not positive definite after
// dampening, has NaN/Inf or the wrong shape, a weight with NaN/Inf, or bad options are a serq::Error: one line
// starting with `what` (the layer name) that says what to change. With `packed`, the result is also packed there
// on GPTQ's own grid (its frozen scales and zero points).
void gptq_quantize(Matrix& w, const Eigen::MatrixXd& hessian, const QuantSpec& spec, const GptqOptions& options,
                   const std::string& what, PackedWeight* packed = nullptr);

}  // namespace serq
