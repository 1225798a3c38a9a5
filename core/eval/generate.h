// Greedy generation with a KV cache, for checks against reference decoders (llama2.c run.c semantics).
#pragma once

#include <vector>

#include "core/model/model.h"

namespace serq {

// Feeds the prompt, then the argmax token, for `steps` positions in all (like run.c's -n steps, -t 0): returns
// the token chosen after each position (the prompt's own tokens while it lasts), `steps` tokens at most.
// Stops before a produced BOS, as run.c does. Ties pick the lowest id.
std::vector<int> generate_greedy(const Model& model, const std::vector<int>& prompt, int steps);

}  // namespace serq
