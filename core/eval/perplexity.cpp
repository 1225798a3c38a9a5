// Perplexity evaluation: batched forward, logits in row chunks (bounded memory), NLL summed in double.
#include "core/eval/perplexity.h"

#include <chrono>
#include <cmath>

#include "core/common/error.h"
#include "core/common/progress.h"
#include "core/model/forward.h"

namespace serq {
namespace {

// Rows of hidden states turned into logits at once; keeps rows × vocab floats small for 32k+ vocabularies.
constexpr Eigen::Index kLogitRowChunk = 1024;

}  // namespace

PerplexityResult evaluate_perplexity(const Model& model, const std::vector<std::span<const int>>& windows,
                                     int batch_size, const std::string& what, KldReference* reference) {
  const auto start = std::chrono::steady_clock::now();
  PerplexityResult result;
  std::int64_t total_tokens = 0;
  for (auto w : windows) total_tokens += static_cast<std::int64_t>(w.size());
  Progress progress(what, total_tokens, "tok");

  double nll = 0.0;
  KldAccumulator kld(*model.backend);
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

    const Matrix hidden = forward_hidden(model, tokens, batch, seq);
    const Matrix* reference_hidden = reference ? &reference->hidden(tokens, batch, seq) : nullptr;
    for (int b = 0; b < batch; ++b) {
      // Position t predicts token t + 1 of the same window.
      for (Eigen::Index t0 = 0; t0 < seq - 1; t0 += kLogitRowChunk) {
        const Eigen::Index rows = std::min<Eigen::Index>(kLogitRowChunk, seq - 1 - t0);
        const Eigen::Index first_row = static_cast<Eigen::Index>(b) * seq + t0;
        const auto targets = std::span<const int>(tokens).subspan(static_cast<std::size_t>(first_row) + 1, rows);
        const Matrix logits = forward_logits(model, hidden.middleRows(first_row, rows));
        nll += reference ? kld.add(forward_logits(reference->model(), reference_hidden->middleRows(first_row, rows)),
                                   logits, targets)
                         : model.backend->nll(logits, targets);
      }
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

}  // namespace serq
