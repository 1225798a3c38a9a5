// Scoring continuations over shared contexts (see shared_context.h). The last context position predicts each
// continuation's first token; position k of a continuation predicts its token k + 1. Right padding never reaches a
// real token (causal attention), and only a context's own rows are copied into its continuations' cache.
#include "core/eval/shared_context.h"

#include <algorithm>
#include <numeric>

#include "core/common/error.h"
#include "core/common/progress.h"
#include "core/eval/row_scores.h"
#include "core/model/forward.h"

namespace serq {
namespace {

// Group g's continuations of two or more tokens, batch_size at a time, over copies of its context's keys and values:
// rows [first_row, first_row + context length) of `contexts`.
void score_continuations(const ResidentModel& model, const SharedContext& group, const KVCache& contexts,
                         std::int64_t first_row, int batch_size, std::vector<Loglikelihood>& results) {
  const ModelConfig& config = model.model().config;
  Backend& backend = model.backend();
  const int context_length = static_cast<int>(group.context->size());
  Buffer work(backend), logit_work(backend);
  std::vector<int> rows, targets;
  std::vector<std::size_t> owners;
  const std::size_t count = group.continuations.size();
  for (std::size_t first = 0; first < count; first += static_cast<std::size_t>(batch_size)) {
    const std::size_t last = std::min(count, first + static_cast<std::size_t>(batch_size));
    std::size_t longest = 0;
    for (std::size_t i = first; i < last; ++i) longest = std::max(longest, group.continuations[i]->size());
    if (longest < 2) continue;  // one-token continuations were all predicted by the context
    const int batch = static_cast<int>(last - first), seq = static_cast<int>(longest) - 1;
    KVCache cache = make_kv_cache(config, backend, batch, context_length + seq);
    for (std::size_t l = 0; l < cache.keys.size(); ++l) {
      for (int b = 0; b < batch; ++b) {
        const std::int64_t row = static_cast<std::int64_t>(b) * cache.capacity;
        Tensor keys = cache.keys[l].middle_rows(row, context_length);
        Tensor values = cache.values[l].middle_rows(row, context_length);
        backend.copy(contexts.keys[l].middle_rows(first_row, context_length), keys);
        backend.copy(contexts.values[l].middle_rows(first_row, context_length), values);
      }
    }
    cache.length = context_length;
    std::vector<int> tokens(static_cast<std::size_t>(batch) * seq, kPadToken);
    rows.clear();
    targets.clear();
    owners.clear();
    for (int b = 0; b < batch; ++b) {
      const std::vector<int>& continuation = *group.continuations[first + static_cast<std::size_t>(b)];
      std::copy(continuation.begin(), continuation.end() - 1, tokens.begin() + static_cast<std::ptrdiff_t>(b) * seq);
      for (std::size_t k = 0; k + 1 < continuation.size(); ++k) {
        rows.push_back(b * seq + static_cast<int>(k));
        targets.push_back(continuation[k + 1]);
        owners.push_back(first + static_cast<std::size_t>(b));
      }
    }
    work.reset();
    const Tensor hidden = forward_hidden(model, work, token_tensor(config, work, tokens), batch, seq, &cache);
    add_row_scores(model, logit_work, hidden, rows, targets, owners, results);
  }
}

}  // namespace

std::vector<std::vector<Loglikelihood>> score_shared_contexts(const ResidentModel& model,
                                                              std::span<const SharedContext> groups, int batch_size,
                                                              Progress* progress) {
  const ModelConfig& config = model.model().config;
  Backend& backend = model.backend();
  SERQ_CHECK(batch_size >= 1, "eval.batch_size: {} is not positive; use 1 or more", batch_size);
  std::vector<std::vector<Loglikelihood>> results(groups.size());
  for (std::size_t g = 0; g < groups.size(); ++g) {
    SERQ_CHECK(!groups[g].context->empty(), "shared-context scoring needs a context (a bug in the caller)");
    results[g].assign(groups[g].continuations.size(), Loglikelihood{0.0, true, false});
  }
  // Longest context first, so each batch pads little.
  std::vector<std::size_t> order(groups.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return groups[a].context->size() > groups[b].context->size();
  });

  Buffer work(backend), logit_work(backend);
  for (std::size_t first = 0; first < order.size(); first += static_cast<std::size_t>(batch_size)) {
    const std::size_t last = std::min(order.size(), first + static_cast<std::size_t>(batch_size));
    const int batch = static_cast<int>(last - first), seq = static_cast<int>(groups[order[first]].context->size());
    std::vector<int> tokens(static_cast<std::size_t>(batch) * seq, kPadToken);
    bool continues = false;  // whether some continuation has two or more tokens, and so needs the contexts' cache
    for (int b = 0; b < batch; ++b) {
      const SharedContext& group = groups[order[first + static_cast<std::size_t>(b)]];
      std::copy(group.context->begin(), group.context->end(), tokens.begin() + static_cast<std::ptrdiff_t>(b) * seq);
      for (const std::vector<int>* continuation : group.continuations) continues |= continuation->size() > 1;
    }
    KVCache cache;
    if (continues) cache = make_kv_cache(config, backend, batch, seq);
    work.reset();
    const Tensor hidden =
        forward_hidden(model, work, token_tensor(config, work, tokens), batch, seq, continues ? &cache : nullptr);

    for (int b = 0; b < batch; ++b) {
      const std::size_t g = order[first + static_cast<std::size_t>(b)];
      const SharedContext& group = groups[g];
      const int last_row = b * seq + static_cast<int>(group.context->size()) - 1;
      std::vector<int> rows(group.continuations.size(), last_row), targets;
      std::vector<std::size_t> owners(group.continuations.size());
      std::iota(owners.begin(), owners.end(), std::size_t{0});
      for (const std::vector<int>* continuation : group.continuations) targets.push_back(continuation->front());
      add_row_scores(model, logit_work, hidden, rows, targets, owners, results[g]);
      if (continues) {
        score_continuations(model, group, cache, static_cast<std::int64_t>(b) * seq, batch_size, results[g]);
      }
      if (progress) progress->advance(static_cast<std::int64_t>(group.continuations.size()));
    }
  }
  return results;
}

}  // namespace serq
