// Greedy decoding one position at a time over a KV cache.
#include "core/eval/generate.h"

#include "core/common/error.h"
#include "core/model/forward.h"

namespace serq {

std::vector<int> generate_greedy(const Model& model, const std::vector<int>& prompt, int steps) {
  SERQ_CHECK(!prompt.empty(), "greedy generation needs a prompt of at least one token (BOS)");
  SERQ_CHECK(steps >= 1 && steps <= model.config.max_seq_len, "generation steps {} must be in 1..{}", steps,
             model.config.max_seq_len);
  KVCache cache = make_kv_cache(model.config, 1, steps);
  std::vector<int> out;
  int token = prompt[0];
  for (int pos = 0; pos < steps; ++pos) {
    const Matrix hidden = forward_hidden(model, std::span<const int>(&token, 1), 1, 1, &cache);
    const Matrix logits = forward_logits(model, hidden);
    int next;
    if (pos + 1 < static_cast<int>(prompt.size())) {
      next = prompt[pos + 1];
    } else {
      Eigen::Index best;
      logits.row(0).maxCoeff(&best);
      next = static_cast<int>(best);
    }
    if (next == model.config.bos_id) break;
    out.push_back(next);
    token = next;
  }
  return out;
}

}  // namespace serq
