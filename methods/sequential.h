// Layer-wise (sequential) quantization, the protocol of GPTQ's and QuaRot's reference code and of the official SERQ
// code with GPTQ weights: decoder layer i is widened to float and prepared (Method::prepare_layer), then quantized
// with GPTQ Hessians observed on what layers 0..i−1 give once quantized (their weights and corrections), with
// activation quantization off while calibrating, as there. Then layer i's outputs, quantized the same way, feed
// layer i+1, and layer i gives its floats back (with params.release_floats) and the pages of its 16-bit values.
//
// Only one layer's floats and Hessians exist at a time, one Hessian per input group (q/k/v share one, gate/up share
// one). Activation statistics (abs-max, mean |x|) are the full-precision ones of `activation_stats`, as in the
// official code. The hidden states of every sample (samples × seq_len × dim floats) are kept between layers.
#pragma once

#include <cstdint>
#include <vector>

#include "methods/method.h"

namespace serq {

// With params.weight_quantizer rtn there is nothing to observe, and this equals method.quantize().
MethodReport quantize_sequential(Model& model, const Method& method, const QuantParams& params,
                                 const Calibration& activation_stats, const std::vector<std::vector<int>>& samples);

// What quantize_sequential holds beyond the model: the samples' hidden states in float and one input group's
// Hessian in double with its copy for the group's other linears, at the widest input.
std::int64_t sequential_calibration_bytes(const ModelConfig& model, int samples, int seq_len);

}  // namespace serq
