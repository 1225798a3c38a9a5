// lm_head and the NLL of its logits in one pass over the vocabulary (Backend::head_nll on the CPU). The vocabulary
// is taken in blocks: each block's logits for a chunk of rows are made by SGEMM on one worker thread into a buffer
// that stays in cache and folded at once into each row's partial softmax (the block's maximum, Σ exp and argmax),
// which are merged per row at the end; the rows × vocab logits never exist and are never read back from memory.
#pragma once

#include <span>

#include "core/backend/backend.h"
#include "core/linear/quant_linear.h"

namespace serq {

// Whether the fused pass computes this head: a float GEMM (no input transform, activation quantizer, correction
// path or integer kernel), as lm_head is kept. Any other head goes through its logits.
bool head_nll_fuses(const QuantLinear& head);

// rows[i] = −log softmax(hidden_i · Wᵀ + b)[targets[i]] and the row's argmax (the first among ties), for a head that
// fuses; a target outside the vocabulary is a serq::Error. The sums of exponentials run in float within a block and
// in double across blocks, in a fixed order: the result does not depend on the thread count.
void cpu_head_nll(const QuantLinear& head, ConstMatrixRef hidden, std::span<const int> targets,
                  std::span<NllRow> rows);

}  // namespace serq
