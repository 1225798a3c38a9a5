// lm_head and NLL on chosen rows of hidden states (see row_scores.h).
#include "core/eval/row_scores.h"

#include <algorithm>

#include "core/model/forward.h"

namespace serq {

namespace {
constexpr std::size_t kLogitRowChunk = 1024;  // rows gathered and scored at once
}  // namespace

void add_row_scores(const ResidentModel& model, Buffer& work, const Tensor& hidden, std::span<const int> rows,
                    std::span<const int> targets, std::span<const std::size_t> owners,
                    std::vector<Loglikelihood>& results) {
  Backend& backend = model.backend();
  std::vector<NllRow> scored;
  for (std::size_t c0 = 0; c0 < rows.size(); c0 += kLogitRowChunk) {
    const std::size_t count = std::min(rows.size() - c0, kLogitRowChunk);
    work.reset();
    const Tensor selected = gather_rows(backend, work, hidden, rows.subspan(c0, count));
    scored.clear();
    backend.head_nll(model.lm_head(), selected, token_tensor(model.model().config, work, targets.subspan(c0, count)),
                     scored);
    // A request's rows are consecutive and may be cut by a chunk boundary: its sums add up over chunks.
    for (std::size_t r = 0; r < count; ++r) {
      Loglikelihood& result = results[owners[c0 + r]];
      result.logprob -= scored[r].nll;
      result.greedy = result.greedy && scored[r].argmax == targets[c0 + r];
    }
  }
}

}  // namespace serq
