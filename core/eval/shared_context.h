// Zero-shot requests that share their context (a HellaSwag item's four endings, a BoolQ passage's yes and no): each
// context runs through the model once, batched with other items' contexts, and the choices' continuations run over
// copies of its KV cache, instead of running context + continuation once per choice.
#pragma once

#include <span>
#include <vector>

#include "core/eval/loglikelihood.h"
#include "core/model/resident_model.h"

namespace serq {

class Progress;

// One context and the continuations scored after it.
struct SharedContext {
  const std::vector<int>* context = nullptr;
  std::vector<const std::vector<int>*> continuations;
};

// log P(continuation | context) and greediness of every continuation of every group, as score_requests computes them
// for requests that fit max_length untruncated (context + continuation ≤ max_length + 1 tokens): result[g][i] for
// group g's continuation i. Contexts go batch_size at a time (longest first, right-padded); a group's continuations
// of two or more tokens then go batch_size at a time over a cache that holds its context in every row. `progress`
// (may be null) advances by a group's continuations when the group is done.
std::vector<std::vector<Loglikelihood>> score_shared_contexts(const ResidentModel& model,
                                                              std::span<const SharedContext> groups, int batch_size,
                                                              Progress* progress);

}  // namespace serq
