// lm-eval-harness's loglikelihood requests on our model: log P(continuation | context) and whether the
// continuation is the greedy prediction, for the requests of zero-shot tasks (core/eval/zero_shot.h).
#pragma once

#include <string_view>
#include <vector>

#include "core/model/model.h"
#include "core/model/resident_model.h"
#include "core/tokenizer/tokenizer.h"

namespace serq {

class Progress;

struct TokenizedRequest {
  std::vector<int> context, continuation;
};

// As lm-eval's _encode_pair: the trailing whitespace of the context (what Python's rstrip() removes) moves to the
// front of the continuation; whole = encode(context + continuation), context_ids = encode(context), and the
// continuation ids are whole[len(context_ids):]. With bos, bos_id is put before the context ids. A context with no
// ids (the empty string, or only whitespace) becomes [bos_id] whether or not bos is set, as lm-eval scores it after
// its prefix token. Throws serq::Error when the continuation has no ids of its own.
TokenizedRequest tokenize_request(const Tokenizer& tokenizer, std::string_view context, std::string_view continuation,
                                  bool bos, int bos_id);

struct Loglikelihood {
  double logprob = 0;      // Σ over continuation tokens of log softmax(logits)[token], in double
  bool greedy = false;     // every continuation token is the (first) argmax of its logits (lm-eval is_greedy)
  bool truncated = false;  // the model did not see all of context + continuation at once (cut from the left)
};

// Scores every request. The model sees (context + continuation)[-(max_length + 1):][:-1], so a long context is cut
// from the left as lm-eval cuts it. A continuation longer than max_length (lm-eval cannot score one) is scored in
// pieces of max_length / 2 tokens, each given all the tokens before it, cut the same way. Requests that share their
// context with another and fit untruncated run the context once and their continuations over its KV cache
// (core/eval/shared_context.h); the others run longest first in batches of batch_size, right-padded to the batch's
// longest, and only the rows that predict continuation tokens go through lm_head and the NLL (Backend::head_nll, in
// chunks of rows). Results come back in request order; `progress` (may be null) is advanced by one per request. Per
// batch the token ids, and per scored token its row and target, cross to the backend; its log-likelihood and argmax
// come back.
// share_contexts = false scores every request as the others are (its whole input), for comparison.
std::vector<Loglikelihood> score_requests(const ResidentModel& model, const std::vector<TokenizedRequest>& requests,
                                          int batch_size, int max_length, Progress* progress,
                                          bool share_contexts = true);
// The same with `model` made resident on model.backend for the call.
std::vector<Loglikelihood> score_requests(const Model& model, const std::vector<TokenizedRequest>& requests,
                                          int batch_size, int max_length, Progress* progress,
                                          bool share_contexts = true);

}  // namespace serq
