// Greedy decoding one position at a time over a KV cache on the model's backend: per step one token id goes in and
// one argmax comes back.
#include "core/eval/generate.h"

#include "core/common/error.h"
#include "core/model/forward.h"

namespace serq {

std::vector<int> generate_greedy(const Model& model, const std::vector<int>& prompt, int steps) {
  SERQ_CHECK(!prompt.empty(), "greedy generation needs a prompt of at least one token (BOS)");
  SERQ_CHECK(steps >= 1 && steps <= model.config.max_seq_len, "generation steps {} must be in 1..{}", steps,
             model.config.max_seq_len);
  Backend& backend = *model.backend;
  const ResidentModel resident(model, backend);
  KVCache cache = make_kv_cache(model.config, backend, 1, steps);
  Buffer work(backend);
  std::vector<NllRow> scored;
  std::vector<int> out;
  int token = prompt[0];
  for (int pos = 0; pos < steps; ++pos) {
    work.reset();
    const Tensor ids = token_tensor(model.config, work, std::span<const int>(&token, 1));
    const Tensor hidden = forward_hidden(resident, work, ids, 1, 1, &cache);
    scored.clear();
    backend.nll(forward_logits(resident, work, hidden), ids, scored);  // only the argmax is read
    const int next = pos + 1 < static_cast<int>(prompt.size()) ? prompt[pos + 1] : scored[0].argmax;
    if (next == model.config.bos_id) break;
    out.push_back(next);
    token = next;
  }
  return out;
}

}  // namespace serq
