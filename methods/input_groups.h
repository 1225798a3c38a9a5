// The input groups of a model (linears that read one input and so share one input scale) and the per-channel
// input scaling that smoothquant and serq's flattening put on them.
#pragma once

#include <vector>

#include "methods/method.h"

namespace serq {

// Linears that read the same input and so must share one input scale (it folds into the RMSNorm γ or into the
// previous layer): per decoder layer the groups of core/model/architecture.h ({q, k, v}, {o}, {gate, up}, {down});
// then {lm_head} if params.quantize_lm_head.
using InputGroup = std::vector<QuantLinear*>;
std::vector<InputGroup> input_groups(Model& model, const QuantParams& params);
// The four input groups of one decoder layer, in forward order.
std::vector<InputGroup> layer_input_groups(DecoderLayer& layer);

// max |x_j| over the calibration tokens of a group's input: the element-wise max of its layers' abs_max (they read
// the same input, so these agree). A serq::Error names the layer whose statistics are missing or mis-sized.
Eigen::VectorXf group_abs_max(const InputGroup& group, const Calibration& calibration);

// Puts the input scale s on a layer without changing what it computes: input.scale = s, W ← W·diag(s).
void scale_input_channels(QuantLinear& layer, const Vector& scale);

}  // namespace serq
