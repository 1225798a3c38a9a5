// The fused lm_head and NLL (head_nll.h): work items of a row chunk × a vocabulary block, each an SGEMM on its worker
// thread into a buffer that stays in cache and folded into the block's partial softmax; then the blocks of each row
// merged in order.
#include "core/backend/cpu/head_nll.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/parallel.h"
#include "core/common/error.h"

namespace serq {
namespace {

// A work item's logits: 512 rows × 1024 tokens of the vocabulary (2 MB), in cache between the SGEMM that writes them
// and the pass that reads them. Of the sizes measured (tools/bench_head_nll.cpp), the fastest at SmolLM2's width:
// fewer rows repack the weight block more often, and fewer tokens the rows.
constexpr int kRowChunk = 512;
constexpr int kVocabBlock = 1024;

// One row over one vocabulary block: its maximum, Σ exp(logit − maximum) and the maximum's first index.
struct BlockPartial {
  float max = 0.0f;
  float sum = 0.0f;
  int argmax = 0;
};

}  // namespace

bool head_nll_fuses(const QuantLinear& head) {
  return head.input.empty() && !head.act_quant.enabled() && head.low_rank.rank() == 0 && head.salient.rank() == 0 &&
         !head.int_kernel;
}

void cpu_head_nll(const QuantLinear& head, ConstMatrixRef hidden, std::span<const int> targets,
                  std::span<NllRow> rows) {
  SERQ_CHECK(head_nll_fuses(head), "{}: the fused head_nll needs a float head", head.name);
  SERQ_CHECK(hidden.cols() == head.d_in() && static_cast<Eigen::Index>(targets.size()) == hidden.rows() &&
             rows.size() == targets.size(), "{}: head_nll of {} × {} rows, {} targets and {} results for d_in = {} "
             "(a shape bug in the caller)", head.name, hidden.rows(), hidden.cols(), targets.size(), rows.size(),
             head.d_in());
  const Matrix& weight = head.main_weight();
  const int vocab = static_cast<int>(weight.rows());
  const int n_rows = static_cast<int>(hidden.rows());
  for (const int target : targets) {
    SERQ_CHECK(target >= 0 && target < vocab, "{}: target token {} is outside the vocabulary (size {}); the "
               "tokenizer does not match the model", head.name, target, vocab);
  }
  const int chunks = (n_rows + kRowChunk - 1) / kRowChunk, blocks = (vocab + kVocabBlock - 1) / kVocabBlock;
  std::vector<BlockPartial> partials(static_cast<std::size_t>(n_rows) * blocks);
  std::vector<float> target_logits(static_cast<std::size_t>(n_rows));
  const int workers = cpu_workers(0);
  std::vector<Matrix> buffers(static_cast<std::size_t>(workers));
  {
    const BlasOnCallingThread one_thread_each;
    // Items in row-chunk order, so that a worker's next item mostly reads the same rows.
    parallel_items(chunks * blocks, workers, [&](int item, int worker) {
      const int r0 = item / blocks * kRowChunk, v0 = item % blocks * kVocabBlock;
      const int n = std::min(kRowChunk, n_rows - r0), width = std::min(kVocabBlock, vocab - v0);
      Matrix& logits = buffers[static_cast<std::size_t>(worker)];
      logits.resize(n, width);
      gemm_xwt_into(hidden.middleRows(r0, n), weight.middleRows(v0, width), logits);
      if (head.bias.size() > 0) logits.rowwise() += head.bias.segment(v0, width).transpose();
      for (int i = 0; i < n; ++i) {
        const Eigen::Map<const Eigen::ArrayXf> row(logits.row(i).data(), width);
        BlockPartial& partial = partials[static_cast<std::size_t>(r0 + i) * blocks + v0 / kVocabBlock];
        Eigen::Index at = 0;
        partial.max = row.maxCoeff(&at);  // the first maximum of the block
        partial.argmax = v0 + static_cast<int>(at);
        partial.sum = (row - partial.max).exp().sum();  // a NaN or ∞ logit leaves a NaN here
        const int target = targets[static_cast<std::size_t>(r0 + i)];
        if (target >= v0 && target < v0 + width) target_logits[static_cast<std::size_t>(r0 + i)] = row[target - v0];
      }
    });
  }
  // Each row's blocks in vocabulary order: the first block holding the maximum gives the argmax (torch.argmax's
  // first index among ties), and the sums are rescaled to it in double.
  parallel_slices(n_rows, workers, [&](int begin, int end) {
    for (int r = begin; r < end; ++r) {
      const BlockPartial* row = &partials[static_cast<std::size_t>(r) * blocks];
      int best = 0;
      for (int b = 1; b < blocks; ++b) best = row[b].max > row[best].max ? b : best;
      const double max = row[best].max;
      double sum = 0.0;
      for (int b = 0; b < blocks; ++b) sum += static_cast<double>(row[b].sum) * std::exp(row[b].max - max);
      rows[static_cast<std::size_t>(r)] = {std::log(sum) + max - target_logits[static_cast<std::size_t>(r)],
                                           row[best].argmax};
    }
  });
}

}  // namespace serq
