// Perplexity evaluation: batched forward, then lm_head and the NLL in one op (head_nll), or with KL divergence both
// models' logits in row chunks (bounded memory); NLL summed in double.
#include "core/eval/perplexity.h"

#include <chrono>
#include <cmath>

#include "core/common/error.h"
#include "core/common/progress.h"
#include "core/model/forward.h"

namespace serq {
namespace {

// Rows of hidden states turned into logits at once; keeps rows × vocab floats small for 32k+ vocabularies.
constexpr std::int64_t kLogitRowChunk = 1024;

}  // namespace

PerplexityResult evaluate_perplexity(const ResidentModel& model, const std::vector<std::span<const int>>& windows,
                                     int batch_size, const std::string& what, KldReference* reference) {
  const auto start = std::chrono::steady_clock::now();
  Backend& backend = model.backend();
  PerplexityResult result;
  std::int64_t total_tokens = 0;
  for (auto w : windows) total_tokens += static_cast<std::int64_t>(w.size());
  Progress progress(what, total_tokens, "tok");

  double nll = 0.0;
  KldAccumulator kld(backend);
  std::vector<NllRow> rows_nll;
  Buffer work(backend), logit_work(backend);  // a batch's activations; one chunk's logits
  for (std::size_t first = 0; first < windows.size();) {
    // A batch is up to batch_size consecutive windows of the same length.
    const int seq = static_cast<int>(windows[first].size());
    std::size_t last = first + 1;
    while (last < windows.size() && last - first < static_cast<std::size_t>(batch_size) &&
           windows[last].size() == windows[first].size())
      ++last;
    const int batch = static_cast<int>(last - first);
    std::vector<int> tokens;
    tokens.reserve(static_cast<std::size_t>(batch) * seq);
    for (std::size_t w = first; w < last; ++w) tokens.insert(tokens.end(), windows[w].begin(), windows[w].end());

    work.reset();
    const Tensor ids = token_tensor(model.model().config, work, tokens);
    const Tensor hidden = forward_hidden(model, work, ids, batch, seq);
    const Tensor* reference_hidden = reference ? &reference->hidden(backend, tokens, ids, batch, seq) : nullptr;
    for (int b = 0; b < batch; ++b) {
      WindowScore window{seq - 1};
      // Position t predicts token t + 1 of the same window: the targets are the ids one row on.
      for (std::int64_t t0 = 0; t0 < seq - 1; t0 += kLogitRowChunk) {
        const std::int64_t rows = std::min<std::int64_t>(kLogitRowChunk, seq - 1 - t0);
        const std::int64_t first_row = static_cast<std::int64_t>(b) * seq + t0;
        const Tensor targets = ids.middle_rows(first_row + 1, rows);
        if (reference) {  // KL needs both models' whole distributions: their logits
          logit_work.reset();
          const Tensor logits = forward_logits(model, logit_work, hidden.middle_rows(first_row, rows));
          const Tensor reference_logits = forward_logits(reference->resident(backend), logit_work,
                                                         reference_hidden->middle_rows(first_row, rows));
          const KldAccumulator::Sums sums = kld.add(reference_logits, logits, targets);
          window.nll_sum += sums.nll;
          window.kld_sum += sums.kld;
        } else {  // lm_head and the NLL in one pass, without the logits
          rows_nll.clear();
          backend.head_nll(model.lm_head(), hidden.middle_rows(first_row, rows), targets, rows_nll);
          for (const NllRow& row : rows_nll) window.nll_sum += row.nll;
        }
      }
      nll += window.nll_sum;
      result.window_scores.push_back(window);
    }
    result.scored_tokens += static_cast<std::int64_t>(batch) * (seq - 1);
    progress.advance(static_cast<std::int64_t>(batch) * seq);
    first = last;
  }
  progress.finish();
  SERQ_CHECK(result.scored_tokens > 0, "perplexity needs at least one window of 2 or more tokens");
  SERQ_CHECK(std::isfinite(nll), "the model produced non-finite logits (NaN/Inf) during evaluation; check the "
             "weights and the quantization settings");
  result.windows = static_cast<std::int64_t>(windows.size());
  result.mean_nll = nll / static_cast<double>(result.scored_tokens);
  result.ppl = std::exp(result.mean_nll);
  if (reference) result.kld = kld.result();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

PerplexityResult evaluate_perplexity(const Model& model, const std::vector<std::span<const int>>& windows,
                                     int batch_size, const std::string& what, KldReference* reference) {
  const ResidentModel resident(model, *model.backend);
  return evaluate_perplexity(resident, windows, batch_size, what, reference);
}

}  // namespace serq
