// `quarot` (Ashkboos et al. 2024): rotates the model with orthogonal matrices that leave its full-precision outputs
// unchanged but spread activation outliers over all channels, then quantizes every linear input and weight.
#pragma once

#include "methods/method.h"

namespace serq {

// What it builds (W is d_out × d_in, Y = X·Wᵀ):
//   - RMSNorm γ fused into the linears after each norm (q/k/v, gate/up, lm_head), the norms left with γ = 1;
//   - the residual stream rotated by a randomized Hadamard Q: embed·Q, readers W·Q, writers (o, down) Qᵀ·W;
//   - an online rotation before down_proj (Hadamard, or Hadamard ⊗ random orthogonal when d_in is not a power of
//     two) kept as the layer's InputRotation and fused into W_down;
//   - a Hadamard per head on v_proj's output rows and o_proj's input, and an online Hadamard across heads on o_proj.
// One-pass GPTQ (full-precision Hessians) carries each layer's raw-input Hessian through the offline part of its
// rotation first; the layer-wise pipeline observes Hessians on the rotated model and needs no carrying.
class QuaRot final : public Method {
 public:
  std::string name() const override { return "quarot"; }
  std::string describe() const override {
    return "QuaRot: Hadamard rotations of the residual stream, heads and down_proj input, then RTN or GPTQ";
  }
  std::vector<std::string> parameters() const override { return {"quant.seed"}; }
  void prepare_model(Model& model, const QuantParams& params, const Calibration& calibration) const override;
  void prepare_layer(Model& model, int index, const QuantParams& params, const Calibration& calibration) const override;
  void prepare_head(Model& model, const QuantParams& params, const Calibration& calibration) const override;
  void quantize_linear(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) const override;
  MethodReport quantize(Model& model, const QuantParams& params, const Calibration& calibration) const override;
};

}  // namespace serq
