// The LLaMA decoder forward pass: RMSNorm, RoPE (both layouts), causal GQA attention, SwiGLU, as ops of the
// model's backend (core/backend/backend.h).
//
// Sequences are processed in batches of equal length: `tokens` holds batch × seq ids, row-major. The linears run as
// Op::quant_linear, one input group at a time, and an optional observer sees each linear layer's input first.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/common/matrix.h"
#include "core/model/model.h"

namespace serq {

// Sees the input X (tokens × d_in) of every linear layer, just before the layer runs (calibration hooks).
class LinearInputObserver {
 public:
  virtual ~LinearInputObserver() = default;
  virtual void observe(const QuantLinear& layer, const Matrix& input) = 0;
};

// Keys and values of earlier positions, for incremental decoding. Per layer, (batch · capacity) × kv_dim.
struct KVCache {
  int batch = 0;
  int capacity = 0;
  int length = 0;  // positions already stored
  std::vector<Matrix> keys, values;
};
KVCache make_kv_cache(const ModelConfig& config, int batch, int capacity);

// Runs one decoder layer in place on the hidden states h ((batch · seq) × dim) at positions pos0 .. pos0+seq-1.
// Without a cache pos0 must be 0; with one, pos0 = cache->length and the layer's keys/values are appended
// (the caller advances cache->length once all layers have run).
void decoder_layer_forward(const Model& model, int layer_index, Matrix& h, int batch, int seq, KVCache* cache,
                           LinearInputObserver* observer);

// Embeds the tokens, runs every layer and the final RMSNorm: returns (batch · seq) × dim.
// With a cache, positions continue from cache->length and the cache is advanced by seq.
Matrix forward_hidden(const Model& model, std::span<const int> tokens, int batch, int seq, KVCache* cache = nullptr,
                      LinearInputObserver* observer = nullptr);

// The rows of the token embedding for `tokens` (tokens × dim); an id outside the vocabulary is a serq::Error.
Matrix embed_tokens(const Model& model, std::span<const int> tokens);
// The final RMSNorm of the residual stream h (rows × dim): lm_head's input.
Matrix final_norm(const Model& model, const Matrix& h);

// Bytes of working memory a forward of batch × seq tokens needs beyond the weights (activations, attention
// scores, the logits of one chunk), for refusing runs that cannot fit before they start.
std::int64_t forward_workspace_bytes(const ModelConfig& config, int batch, int seq);

// Logits (rows × vocab) of final hidden states through lm_head.
Matrix forward_logits(const Model& model, const Matrix& hidden, LinearInputObserver* observer = nullptr);

}  // namespace serq
