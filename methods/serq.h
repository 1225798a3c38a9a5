// `serq` (arXiv 2603.08185): saliency-aware low-rank error reconstruction, with the official code's INT recipe as
// the default. Per input group: static activation flattening s_j = max|x_j| over the calibration tokens (SmoothQuant
// with α = 1), channels ordered by s descending (the saliency order), then a two-stage residual quantization of the
// first r (most salient) channels: one matrix R (d_out × r) on top of the main weight, so that
//   Y = Q(X̂)·Q(Ŵ)ᵀ + Q(X̂)[:, :r]·Q(R)ᵀ,   X̂ = (X·diag(s)⁻¹)[:, order].
#pragma once

#include "methods/method.h"

namespace serq {

// quant.rank = r in 0..d_in of every layer (0: flattening and ordering only, no correction). With weights left in
// full precision (bits 16) there is no error to reconstruct, so r acts as 0.
// quant.residual_order: "code" (default, params.paper_residual_order false) quantizes R = Q_R(W̃[:, :r]) first and
// the main weight then carries the error W̃[:, :r] − R in its first r columns; "paper" quantizes the main weight
// Q(W̃) first and R = Q_R(W̃[:, :r] − Q(W̃)[:, :r]). Both are the same two-stage residual quantization.
// R's format: INT runs → symmetric per row over its r columns at the weight bits; MXFP4 runs → MXFP4 blocks of the
// weight group size. The main weight goes through the run's weight quantizer (RTN or GPTQ).
class Serq final : public Method {
 public:
  std::string name() const override { return "serq"; }
  std::string describe() const override {
    return "flattening by activation abs-max, saliency order, one residual matrix R on the r most salient channels";
  }
  std::vector<std::string> parameters() const override {
    return {"quant.rank", "quant.rank_allocation", "quant.rank_budget", "quant.residual_order", "quant.saliency",
            "quant.saliency_ties", "quant.seed", "quant.flatten_percentile", "quant.flatten_alpha"};
  }
  int max_rank(const QuantLinear& layer) const override { return layer.d_in(); }
  bool needs_activation_stats() const override { return true; }
  void prepare_model(Model& model, const QuantParams& params, const Calibration& calibration) const override;
  void prepare_layer(Model& model, int index, const QuantParams& params, const Calibration& calibration) const override;
  void prepare_head(Model& model, const QuantParams& params, const Calibration& calibration) const override;
  void quantize_linear(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) const override;
};

}  // namespace serq
