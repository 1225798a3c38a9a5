// The last step of log-likelihood scoring, shared by score_requests and score_shared_context: chosen rows of final
// hidden states gathered in chunks, through lm_head and the NLL of each row's target token in one op (head_nll), added
// to its request's result.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "core/eval/loglikelihood.h"
#include "core/model/resident_model.h"

namespace serq {

// Fills the padded tail of shorter inputs in a batch; any id of the vocabulary would do, since right padding is never
// attended to by a real token.
inline constexpr int kPadToken = 0;

// For each i: results[owners[i]].logprob −= NLL of targets[i] at row rows[i] of `hidden`, and its greedy flag is
// cleared where the row's argmax is not the target. `work` is reset for each chunk.
void add_row_scores(const ResidentModel& model, Buffer& work, const Tensor& hidden, std::span<const int> rows,
                    std::span<const int> targets, std::span<const std::size_t> owners,
                    std::vector<Loglikelihood>& results);

}  // namespace serq
