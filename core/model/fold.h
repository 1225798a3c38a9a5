// Offline folding: moves a layer's input transform into the operation before it, where that is exact, so the
// runtime does less work. Folding is an optimization of the QuantLinear form and keeps the model's outputs (up to
// float rounding); tests/test_fold.cpp checks that.
//
// What folds follows the input groups of core/model/architecture.h, per decoder layer in forward order (anything
// else stays in the QuantLinear's InputTransform):
//   - q/k/v input scales, when all three are equal  → attn_norm γ_j / s_j
//   - o_proj input scale                            → v_proj output rows, only without GQA (n_heads == n_kv_heads)
//   - o_proj input permutation                      → v_proj output rows, only without GQA and when the
//                                                     permutation keeps every channel inside its head
//   - gate/up input scales, when both are equal     → ffn_norm γ_j / s_j
//   - down_proj input scale                         → up_proj output row j (weight row, B row, R row) / s_j
//   - down_proj input permutation                   → gate_proj and up_proj output rows (weights and corrections)
// A scale or permutation folds only when it comes first in the transform (no rotation before it is possible, as
// InputTransform applies scale, then order, then rotation).
#pragma once

#include <string>
#include <vector>

#include "core/model/model.h"

namespace serq {

// Folds what can be folded; returns one line per fold done, e.g. "layers.0.mlp.down_proj: scale -> up_proj rows".
std::vector<std::string> fold_input_transforms(Model& model);

}  // namespace serq
