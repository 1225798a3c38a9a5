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

// The continuations of two or more tokens of `groups`, whose contexts all have `context_length` tokens, batch_size
// rows at a time, over copies of each one's context keys and values: rows [first_rows[g], + context_length) of
// `contexts`. The groups' equal lengths give every row of a batch the same positions.
void score_continuations(const ResidentModel& model, std::span<const SharedContext* const> groups,
                         std::span<const std::int64_t> first_rows, int context_length, const KVCache& contexts,
                         int batch_size, std::span<std::vector<Loglikelihood>* const> results) {
  const ModelConfig& config = model.model().config;
  Backend& backend = model.backend();
  struct Row {
    std::size_t group, choice;
  };
  std::vector<Row> pending;
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (std::size_t i = 0; i < groups[g]->continuations.size(); ++i)
      if (groups[g]->continuations[i]->size() > 1) pending.push_back({g, i});

  Buffer work(backend), logit_work(backend);
  std::vector<int> rows, targets;
  std::vector<std::size_t> owners;
  std::vector<Loglikelihood> scored;
  for (std::size_t first = 0; first < pending.size(); first += static_cast<std::size_t>(batch_size)) {
    const std::size_t last = std::min(pending.size(), first + static_cast<std::size_t>(batch_size));
    const int batch = static_cast<int>(last - first);
    auto continuation = [&](std::size_t k) -> const std::vector<int>& {
      return *groups[pending[k].group]->continuations[pending[k].choice];
    };
    std::size_t longest = 0;
    for (std::size_t k = first; k < last; ++k) longest = std::max(longest, continuation(k).size());
    const int seq = static_cast<int>(longest) - 1;
    KVCache cache = make_kv_cache(config, backend, batch, context_length + seq);
    for (std::size_t l = 0; l < cache.keys.size(); ++l) {
      for (int b = 0; b < batch; ++b) {
        const std::int64_t from = first_rows[pending[first + static_cast<std::size_t>(b)].group];
        const std::int64_t to = static_cast<std::int64_t>(b) * cache.capacity;
        Tensor keys = cache.keys[l].middle_rows(to, context_length);
        Tensor values = cache.values[l].middle_rows(to, context_length);
        backend.copy(contexts.keys[l].middle_rows(from, context_length), keys);
        backend.copy(contexts.values[l].middle_rows(from, context_length), values);
      }
    }
    cache.length = context_length;
    std::vector<int> tokens(static_cast<std::size_t>(batch) * seq, kPadToken);
    rows.clear();
    targets.clear();
    owners.clear();
    for (int b = 0; b < batch; ++b) {
      const std::vector<int>& tokens_of = continuation(first + static_cast<std::size_t>(b));
      std::copy(tokens_of.begin(), tokens_of.end() - 1, tokens.begin() + static_cast<std::ptrdiff_t>(b) * seq);
      for (std::size_t k = 0; k + 1 < tokens_of.size(); ++k) {
        rows.push_back(b * seq + static_cast<int>(k));
        targets.push_back(tokens_of[k + 1]);
        owners.push_back(static_cast<std::size_t>(b));
      }
    }
    work.reset();
    const Tensor hidden = forward_hidden(model, work, token_tensor(config, work, tokens), batch, seq, &cache);
    scored.assign(static_cast<std::size_t>(batch), Loglikelihood{0.0, true, false});
    add_row_scores(model, logit_work, hidden, rows, targets, owners, scored);
    for (int b = 0; b < batch; ++b) {
      const Row& row = pending[first + static_cast<std::size_t>(b)];
      Loglikelihood& result = (*results[row.group])[row.choice];
      result.logprob += scored[static_cast<std::size_t>(b)].logprob;
      result.greedy = result.greedy && scored[static_cast<std::size_t>(b)].greedy;
    }
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
    }
    // The continuations, batched across the groups whose contexts have the same length (adjacent: longest first).
    auto length_of = [&](int b) {
      return static_cast<int>(groups[order[first + static_cast<std::size_t>(b)]].context->size());
    };
    for (int b0 = 0; continues && b0 < batch;) {
      const int length = length_of(b0);
      int b1 = b0;
      std::vector<const SharedContext*> same;
      std::vector<std::int64_t> first_rows;
      std::vector<std::vector<Loglikelihood>*> same_results;
      for (; b1 < batch && length_of(b1) == length; ++b1) {
        const std::size_t g = order[first + static_cast<std::size_t>(b1)];
        same.push_back(&groups[g]);
        first_rows.push_back(static_cast<std::int64_t>(b1) * seq);
        same_results.push_back(&results[g]);
      }
      score_continuations(model, same, first_rows, length, cache, batch_size, same_results);
      b0 = b1;
    }
    if (progress) {
      std::int64_t done = 0;
      for (int b = 0; b < batch; ++b) done += static_cast<std::int64_t>(groups[order[first + b]].continuations.size());
      progress->advance(done);
    }
  }
  return results;
}

}  // namespace serq
