// The LLaMA decoder forward pass: RMSNorm, RoPE (both layouts), causal GQA attention, SwiGLU, as ops of a backend
// (core/backend/backend.h) on a model resident there (core/model/resident_model.h).
//
// Sequences are processed in batches of equal length: `tokens` holds batch × seq ids, row-major. The token ids are
// the one thing that crosses to the backend; activations stay in a work buffer of the backend, which the caller
// owns and resets between forwards. The linears run as Op::quant_linear, one input group at a time, and an optional
// observer sees each linear layer's input first.
//
// The functions on a Model and host matrices at the end are for methods, calibration and tests that run a model or
// one layer from the host: they make the model (or the layer) resident on model.backend for the call.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/backend/tensor.h"
#include "core/common/matrix.h"
#include "core/model/model.h"
#include "core/model/resident_model.h"

namespace serq {

// Sees the input X (tokens × d_in, on the forward's backend) of every linear layer, just before the layer runs
// (calibration hooks). Backend::observe turns it into statistics without moving it; an observer that needs the
// values on the host gets them (Backend::download) and pays for the crossing.
class LinearInputObserver {
 public:
  virtual ~LinearInputObserver() = default;
  virtual void observe(const QuantLinear& layer, const Tensor& input) = 0;
};

// Keys and values of earlier positions, for incremental decoding, on one backend. Per layer,
// (batch · capacity) × kv_dim.
struct KVCache {
  int batch = 0;
  int capacity = 0;
  int length = 0;  // positions already stored
  std::unique_ptr<Buffer> storage;
  std::vector<Tensor> keys, values;
};
KVCache make_kv_cache(const ModelConfig& config, Backend& backend, int batch, int capacity);

// The temporaries of one decoder layer for `rows` rows, allocated from a work buffer once per forward and reused by
// every layer.
struct LayerWorkspace {
  LayerWorkspace(const ModelConfig& config, Buffer& work, std::int64_t rows);
  Tensor x, q, k, v, attn, out, gate, up;
};

// Runs one decoder layer of `model` in place on the hidden states h ((batch · seq) × dim) at positions
// pos0 .. pos0+seq-1, with its temporaries in `workspace`. Keys and values are stored as model.kv_cache says (rotated
// and quantized after RoPE, before attention reads them). Without a cache pos0 must be 0; with one,
// pos0 = cache->length and the layer's keys/values are appended (the caller advances cache->length once all layers
// have run).
void decoder_layer_forward(const Model& model, const ResidentLayer& layer, const Tensor& rope_frequencies,
                           int layer_index, Tensor& h, int batch, int seq, LayerWorkspace& workspace,
                           KVCache* cache, LinearInputObserver* observer);

// Embeds the token ids (batch · seq × 1, token_tensor), runs every layer and the final RMSNorm: returns
// (batch · seq) × dim in `work`. With a cache, positions continue from cache->length and the cache is advanced by seq.
Tensor forward_hidden(const ResidentModel& model, Buffer& work, const Tensor& ids, int batch, int seq,
                      KVCache* cache = nullptr, LinearInputObserver* observer = nullptr);
// Logits (rows × vocab, in `work`) of final hidden states through lm_head.
Tensor forward_logits(const ResidentModel& model, Buffer& work, const Tensor& hidden,
                      LinearInputObserver* observer = nullptr);
// Rows `rows` of x, gathered into a new tensor of `work` (the rows cross as int32 ids).
Tensor gather_rows(Backend& backend, Buffer& work, const Tensor& x, std::span<const int> rows);
// Token ids as a count × 1 int32 tensor of `work`, set as "token ids"; an id outside the vocabulary is a serq::Error.
Tensor token_tensor(const ModelConfig& config, Buffer& work, std::span<const int> tokens);

// Bytes of working memory a forward of batch × seq tokens needs beyond the weights (activations, attention
// scores, the logits of one chunk), for refusing runs that cannot fit before they start.
std::int64_t forward_workspace_bytes(const ModelConfig& config, int batch, int seq);

// From the host, on model.backend (see the top of this file).
void decoder_layer_forward(const Model& model, int layer_index, Matrix& h, int batch, int seq,
                           LinearInputObserver* observer);
Matrix forward_hidden(const Model& model, std::span<const int> tokens, int batch, int seq,
                      LinearInputObserver* observer = nullptr);
// The rows of the token embedding for `tokens` (tokens × dim); an id outside the vocabulary is a serq::Error.
Matrix embed_tokens(const Model& model, std::span<const int> tokens);
Matrix forward_logits(const Model& model, const Matrix& hidden, LinearInputObserver* observer = nullptr);

}  // namespace serq
