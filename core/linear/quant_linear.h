// QuantLinear: the one runtime form of every linear layer of the model, quantized or not.
//
// Y = Q_a(X) · Wᵀ, with W (d_out × d_in) as in core/common/matrix.h. Methods are offline transforms that
// produce QuantLinear layers; the backends only run this form. Today it holds an activation quantizer and a
// (fake-quantized) weight; later stages add an input transform and a correction path here, not in a method.
#pragma once

#include <string>

#include "core/common/matrix.h"
#include "core/quant/int_quant.h"

namespace serq {

struct QuantLinear {
  std::string name;     // stable, e.g. "layers.3.mlp.down_proj" or "lm_head"
  Matrix weight;        // (d_out × d_in); holds dequantized values once the weight is quantized
  QuantSpec act_quant;  // dynamic activation quantizer on the input rows; bits = 16 means none
  QuantSpec weight_quant;  // how `weight` was quantized (bits = 16: full precision); for accounting

  int d_in() const { return static_cast<int>(weight.cols()); }
  int d_out() const { return static_cast<int>(weight.rows()); }

  // Y (rows × d_out) = Q_a(X) · Wᵀ for X (rows × d_in). Y is resized as needed.
  void forward(const Matrix& x, Matrix& y) const;
};

}  // namespace serq
