// Log-likelihood scoring: lm-eval's request tokenization, left truncation, length-sorted right-padded batches, and
// lm_head only on the rows that predict continuation tokens.
#include "core/eval/loglikelihood.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <string>

#include "core/common/error.h"
#include "core/common/progress.h"
#include "core/eval/perplexity.h"
#include "core/eval/row_scores.h"
#include "core/eval/shared_context.h"
#include "core/model/forward.h"

namespace serq {
namespace {

// What Python's str.rstrip() removes at the end of an ASCII string (non-ASCII spaces are left in the context).
constexpr std::string_view kWhitespace = " \t\n\v\f\r\x1c\x1d\x1e\x1f";

// The tokens the model sees for a request: (context + continuation)[-(max_length + 1):][:-1].
std::vector<int> model_input(const TokenizedRequest& request, int max_length) {
  std::vector<int> all = request.context;
  all.insert(all.end(), request.continuation.begin(), request.continuation.end());
  const std::size_t keep = std::min(all.size(), static_cast<std::size_t>(max_length) + 1);
  return std::vector<int>(all.end() - static_cast<std::ptrdiff_t>(keep), all.end() - 1);
}

// A request's two parts are non-empty and its continuation's ids are in the vocabulary (the last one is never a model
// input, so forward_hidden does not check it).
void check_request(const TokenizedRequest& r, std::size_t index, const ModelConfig& config) {
  SERQ_CHECK(!r.context.empty() && !r.continuation.empty(), "zero-shot request {}: the context ({} tokens) and the "
             "continuation ({} tokens) must both be non-empty; build requests with tokenize_request", index,
             r.context.size(), r.continuation.size());
  for (int token : r.continuation) {
    SERQ_CHECK(token >= 0 && token < config.vocab_size, "zero-shot request {}: token id {} is outside the vocabulary "
               "(size {}); the tokenizer does not match the model", index, token, config.vocab_size);
  }
}

void check_finite(const Loglikelihood& result, std::size_t index) {
  SERQ_CHECK(std::isfinite(result.logprob), "the model produced non-finite logits (NaN/Inf) on zero-shot request {}; "
             "check the weights and the quantization settings", index);
}

// Scores requests whose continuation fits in max_length; progress advances by advance[i] when request i is done.
std::vector<Loglikelihood> score_fitting(const ResidentModel& resident,
                                         const std::vector<TokenizedRequest>& requests, int batch_size,
                                         int max_length, const std::vector<int>& advance, Progress* progress) {
  const Model& model = resident.model();
  Backend& backend = resident.backend();
  Buffer work(backend), logit_work(backend);  // a batch's activations; one chunk's rows and logits
  std::vector<Loglikelihood> results(requests.size());
  std::vector<int> input_length(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const TokenizedRequest& r = requests[i];
    const std::size_t total = r.context.size() + r.continuation.size();
    results[i].truncated = total > static_cast<std::size_t>(max_length) + 1;
    input_length[i] = static_cast<int>(std::min(total, static_cast<std::size_t>(max_length) + 1) - 1);
  }

  // Longest first, so each batch pads little and the first batch shows at once whether memory suffices.
  std::vector<std::size_t> order(requests.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return input_length[a] > input_length[b]; });

  for (std::size_t first = 0; first < order.size(); first += static_cast<std::size_t>(batch_size)) {
    const std::size_t last = std::min(order.size(), first + static_cast<std::size_t>(batch_size));
    const int batch = static_cast<int>(last - first);
    const int seq = input_length[order[first]];

    // Right padding: a real token keeps its position, causal attention never lets it see the padding after it, and
    // activation quantization is per token (or per group within a token), so padding cannot change a real row.
    std::vector<int> tokens(static_cast<std::size_t>(batch) * seq, kPadToken);
    // For every row that predicts a continuation token: its row in `hidden`, the token, and the request.
    std::vector<int> rows;
    std::vector<int> targets;
    std::vector<std::size_t> owners;
    for (int b = 0; b < batch; ++b) {
      const std::size_t i = order[first + static_cast<std::size_t>(b)];
      const std::vector<int> input = model_input(requests[i], max_length);
      std::copy(input.begin(), input.end(), tokens.begin() + static_cast<std::ptrdiff_t>(b) * seq);
      // Input position t predicts token t + 1; the continuation's c tokens are predicted by the last c positions.
      const std::vector<int>& continuation = requests[i].continuation;
      const int c = static_cast<int>(continuation.size());
      for (int k = 0; k < c; ++k) {
        rows.push_back(b * seq + static_cast<int>(input.size()) - c + k);
        targets.push_back(continuation[static_cast<std::size_t>(k)]);
        owners.push_back(i);
      }
      results[i].greedy = true;
    }

    work.reset();
    const Tensor hidden = forward_hidden(resident, work, token_tensor(model.config, work, tokens), batch, seq);
    add_row_scores(resident, logit_work, hidden, rows, targets, owners, results);
    for (std::size_t k = first; k < last; ++k) check_finite(results[order[k]], order[k]);
    if (progress) {
      int done = 0;
      for (std::size_t k = first; k < last; ++k) done += advance[order[k]];
      progress->advance(done);
    }
  }
  return results;
}

}  // namespace

TokenizedRequest tokenize_request(const Tokenizer& tokenizer, std::string_view context, std::string_view continuation,
                                  bool bos, int bos_id) {
  const std::size_t last_kept = context.find_last_not_of(kWhitespace);
  const std::size_t cut = last_kept == std::string_view::npos ? 0 : last_kept + 1;
  const std::string moved_continuation = std::string(context.substr(cut)) + std::string(continuation);
  context = context.substr(0, cut);

  TokenizedRequest request;
  request.context = tokenizer.encode(context);
  const std::vector<int> whole = tokenizer.encode(std::string(context) + moved_continuation);
  if (whole.size() > request.context.size())
    request.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(request.context.size()), whole.end());
  SERQ_CHECK(!request.continuation.empty(), "zero-shot request: the continuation {:?} adds no tokens after its "
             "context; every scored continuation needs at least one token", std::string(continuation));
  if (bos || request.context.empty()) request.context.insert(request.context.begin(), bos_id);
  return request;
}


std::vector<Loglikelihood> score_requests(const ResidentModel& resident,
                                          const std::vector<TokenizedRequest>& requests, int batch_size,
                                          int max_length, Progress* progress, bool share_contexts) {
  const Model& model = resident.model();
  SERQ_CHECK(batch_size >= 1, "eval.batch_size: {} is not positive; use 1 or more", batch_size);
  SERQ_CHECK(max_length >= 2 && max_length <= model.config.max_seq_len, "zero-shot max_length {} is outside 2..{} "
             "(the model's max_position_embeddings); use a length the model supports", max_length,
             model.config.max_seq_len);
  for (std::size_t i = 0; i < requests.size(); ++i) check_request(requests[i], i, model.config);
  std::vector<Loglikelihood> results(requests.size(), Loglikelihood{0.0, true, false});

  // Requests that share their context with another and fit untruncated run the context once (shared_context.h).
  std::map<std::vector<int>, std::vector<std::size_t>> by_context;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const TokenizedRequest& r = requests[i];
    if (share_contexts && r.context.size() + r.continuation.size() <= static_cast<std::size_t>(max_length) + 1)
      by_context[r.context].push_back(i);
  }
  std::vector<bool> shared(requests.size(), false);
  std::vector<SharedContext> groups;
  std::vector<const std::vector<std::size_t>*> members_of;
  for (const auto& [context, members] : by_context) {
    if (members.size() < 2) continue;
    SharedContext& group = groups.emplace_back(SharedContext{&context, {}});
    for (const std::size_t i : members) {
      group.continuations.push_back(&requests[i].continuation);
      shared[i] = true;
    }
    members_of.push_back(&members);
  }
  const std::vector<std::vector<Loglikelihood>> by_group =
      score_shared_contexts(resident, groups, batch_size, progress);
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (std::size_t k = 0; k < members_of[g]->size(); ++k) {
      const std::size_t i = (*members_of[g])[k];
      check_finite(by_group[g][k], i);
      results[i] = by_group[g][k];
    }
  }

  // A continuation longer than max_length becomes pieces of max_length / 2 tokens, each scored given every token
  // before it (then cut from the left like any request), so each of its tokens is predicted from at least
  // max_length / 2 tokens. lm-eval has no answer for such a continuation (its logits slice comes out too short); it
  // only happens with short-context models such as stories260K (512 positions).
  const std::size_t piece_length = static_cast<std::size_t>(max_length) / 2;
  std::vector<TokenizedRequest> pieces;
  std::vector<std::size_t> owner;
  std::vector<int> advance;  // 1 on the last piece of each request
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (shared[i]) continue;
    const TokenizedRequest& r = requests[i];
    if (r.continuation.size() <= static_cast<std::size_t>(max_length)) {
      pieces.push_back(r);
    } else {
      for (std::size_t start = 0; start < r.continuation.size(); start += piece_length) {
        TokenizedRequest piece{r.context, {}};
        piece.context.insert(piece.context.end(), r.continuation.begin(),
                             r.continuation.begin() + static_cast<std::ptrdiff_t>(start));
        const std::size_t end = std::min(r.continuation.size(), start + piece_length);
        piece.continuation.assign(r.continuation.begin() + static_cast<std::ptrdiff_t>(start),
                                  r.continuation.begin() + static_cast<std::ptrdiff_t>(end));
        pieces.push_back(std::move(piece));
        owner.push_back(i);
        advance.push_back(0);
      }
      owner.pop_back();
      advance.pop_back();
    }
    owner.push_back(i);
    advance.push_back(1);
  }
  const std::vector<Loglikelihood> scored = score_fitting(resident, pieces, batch_size, max_length, advance, progress);
  for (std::size_t p = 0; p < pieces.size(); ++p) {
    Loglikelihood& result = results[owner[p]];
    result.logprob += scored[p].logprob;
    result.greedy = result.greedy && scored[p].greedy;
    result.truncated = result.truncated || scored[p].truncated;
  }
  return results;
}

std::vector<Loglikelihood> score_requests(const Model& model, const std::vector<TokenizedRequest>& requests,
                                          int batch_size, int max_length, Progress* progress, bool share_contexts) {
  const ResidentModel resident(model, *model.backend);
  return score_requests(resident, requests, batch_size, max_length, progress, share_contexts);
}

}  // namespace serq
