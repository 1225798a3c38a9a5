// Per-layer quantization diagnostics: how far each linear a method quantized is from the same method applied with
// quantization switched off, measured layer by layer on calibration windows.
//
// Every layer is measured in isolation and in its own (transformed) basis, the same way for every method, so a
// method's rotations, scales or permutations need no special code:
// - the reference is a full-precision copy of the model transformed by the same method with every quantizer off
//   (reference_model). Each method is then an exact transform of the full-precision model (rotations, scales and
//   permutations in float32; low-rank corrections of a zero error are zero), so the reference computes the
//   full-precision function in the method's basis. Neither model is folded;
// - the reference model runs over the windows; the input X of each measured linear goes through the reference
//   layer (Y) and the quantized layer of the same name (Ŷ);
// - output_rel_error = sqrt(Σ‖Ŷ − Y‖² / Σ‖Y‖²) over all windows, and output_qsnr_db = −20·log10(output_rel_error)
//   capped at 300 dB: an error of zero (or below 1e-15) is stored as 300 dB, so every stored value is finite;
// - weight_rel_error = ‖Ŵ − W‖_F / ‖W‖_F of the effective weights, the main weight plus its correction path (B·A,
//   or R added to the first r columns), in the layer's X̂ basis. SERQ's main weight alone is far from W where R
//   holds the salient part, so the main weight by itself would not say how well the layer is represented;
// - bits_per_weight = QuantLinear::storage_bits() / (d_out · d_in); extra_parameters = extra_parameters().
// A layer whose reference output (or weight) is zero everywhere has no relative error: NaN, and NaN dB.
#pragma once

#include <string>
#include <vector>

#include "core/formats/result_file.h"
#include "methods/method.h"

namespace serq {

// `params` with every quantizer switched off: weight, activation and factor bits 16.
QuantParams without_quantization(QuantParams params);

// A copy of `full_precision` transformed by `method` with without_quantization(params) and the same calibration:
// the reference that quantized layers are compared with. Not folded.
Model reference_model(const Model& full_precision, const Method& method, const QuantParams& params,
                      const Calibration& calibration);

// Diagnostics of the named linears of `quantized` (unfolded), in model order, against the same layers of
// `reference`, with the reference's inputs over `windows` (each one sequence). Progress with ETA on stderr.
std::vector<LayerDiagnostics> layer_diagnostics(const Model& reference, const Model& quantized,
                                                const std::vector<std::string>& layers,
                                                const std::vector<std::vector<int>>& windows);

}  // namespace serq
