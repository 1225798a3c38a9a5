// The LLaMA decoder's forward graph: which op reads what, in order. The arithmetic is the backend's
// (core/backend/backend.h): the model's backend runs every op.
#include "core/model/forward.h"

#include <cassert>
#include <initializer_list>
#include <vector>

#include "core/backend/cpu/cpu_backend.h"
#include "core/common/error.h"

namespace serq {
namespace {

// The linears of one input group (core/model/architecture.h) on one input x: the observer sees x for each, then the
// backend runs them together, so that it can share their input transform and quantization.
void run_linears(Backend& backend, std::initializer_list<const QuantLinear*> layers,
                 std::initializer_list<Matrix*> outputs, const Matrix& x, LinearInputObserver* observer) {
  if (observer) {
    for (const QuantLinear* layer : layers) observer->observe(*layer, x);
  }
  backend.quant_linear(std::span<const QuantLinear* const>(layers.begin(), layers.size()), x,
                       std::span<Matrix* const>(outputs.begin(), outputs.size()));
}

}  // namespace

KVCache make_kv_cache(const ModelConfig& config, int batch, int capacity) {
  SERQ_CHECK(capacity <= config.max_seq_len, "a sequence of {} positions exceeds max_position_embeddings = {}",
             capacity, config.max_seq_len);
  KVCache cache;
  cache.batch = batch;
  cache.capacity = capacity;
  for (int l = 0; l < config.n_layers; ++l) {
    cache.keys.emplace_back(static_cast<Eigen::Index>(batch) * capacity, config.kv_dim());
    cache.values.emplace_back(static_cast<Eigen::Index>(batch) * capacity, config.kv_dim());
  }
  return cache;
}

void decoder_layer_forward(const Model& model, int layer_index, Matrix& h, int batch, int seq, KVCache* cache,
                           LinearInputObserver* observer) {
  const ModelConfig& c = model.config;
  const DecoderLayer& layer = model.layers[layer_index];
  Backend& ops = *model.backend;
  const int pos0 = cache ? cache->length : 0;

  Matrix x, q, k, v;
  ops.rms_norm(h, layer.attn_norm, c.rms_norm_eps, x);
  run_linears(ops, {&layer.q_proj, &layer.k_proj, &layer.v_proj}, {&q, &k, &v}, x, observer);
  const std::vector<float> frequencies = c.rope_frequencies();
  RopeShape rope{.head_dim = c.head_dim(), .batch = batch, .seq = seq, .pos0 = pos0, .frequencies = frequencies,
                 .interleaved = c.rope_layout == RopeLayout::interleaved};
  rope.n_heads = c.n_heads;
  ops.rope(q, rope);
  rope.n_heads = c.n_kv_heads;
  ops.rope(k, rope);

  // Keys/values visible to this call: the cache (after appending), or just this call's k and v.
  const Matrix* keys = &k;
  const Matrix* values = &v;
  int kv_rows = seq;
  if (cache) {
    assert(pos0 + seq <= cache->capacity && batch == cache->batch);
    Matrix& ck = cache->keys[layer_index];
    Matrix& cv = cache->values[layer_index];
    for (int b = 0; b < batch; ++b) {
      const Eigen::Index dst = static_cast<Eigen::Index>(b) * cache->capacity + pos0;
      ck.middleRows(dst, seq) = k.middleRows(static_cast<Eigen::Index>(b) * seq, seq);
      cv.middleRows(dst, seq) = v.middleRows(static_cast<Eigen::Index>(b) * seq, seq);
    }
    keys = &ck;
    values = &cv;
    kv_rows = cache->capacity;
  }
  Matrix attn, out;
  ops.attention(q, *keys, *values,
                {.n_heads = c.n_heads, .n_kv_heads = c.n_kv_heads, .head_dim = c.head_dim(), .batch = batch,
                 .seq = seq, .pos0 = pos0, .kv_rows = kv_rows},
                attn);
  run_linears(ops, {&layer.o_proj}, {&out}, attn, observer);
  ops.add(h, out);

  ops.rms_norm(h, layer.ffn_norm, c.rms_norm_eps, x);
  Matrix gate, up;
  run_linears(ops, {&layer.gate_proj, &layer.up_proj}, {&gate, &up}, x, observer);
  ops.swiglu(gate, up);
  run_linears(ops, {&layer.down_proj}, {&out}, gate, observer);
  ops.add(h, out);
}

std::int64_t forward_workspace_bytes(const ModelConfig& c, int batch, int seq) {
  const std::int64_t rows = static_cast<std::int64_t>(batch) * seq;
  // h, x, q, attn, out (dim wide) + k, v (kv_dim) + gate, up (hidden) + a copy for activation quantization
  // (hidden wide at most) + one block of attention scores + one chunk of logits (1024 rows).
  const std::int64_t floats = rows * (5LL * c.dim + 2LL * c.kv_dim() + 3LL * c.hidden_dim) +
                              static_cast<std::int64_t>(kAttentionQueryBlock) * seq + 1024LL * c.vocab_size;
  return floats * static_cast<std::int64_t>(sizeof(float));
}

Matrix forward_hidden(const Model& model, std::span<const int> tokens, int batch, int seq, KVCache* cache,
                      LinearInputObserver* observer) {
  const ModelConfig& c = model.config;
  assert(static_cast<std::size_t>(batch) * seq == tokens.size());
  const int pos0 = cache ? cache->length : 0;
  SERQ_CHECK(pos0 + seq <= c.max_seq_len, "a sequence of {} positions exceeds max_position_embeddings = {}; "
             "use a shorter eval.seq_len", pos0 + seq, c.max_seq_len);
  Matrix h = embed_tokens(model, tokens);
  for (int l = 0; l < c.n_layers; ++l) decoder_layer_forward(model, l, h, batch, seq, cache, observer);
  if (cache) cache->length += seq;
  return final_norm(model, h);
}

Matrix embed_tokens(const Model& model, std::span<const int> tokens) {
  Matrix h;
  model.backend->embedding(model.embed, tokens, h);
  return h;
}

Matrix final_norm(const Model& model, const Matrix& h) {
  Matrix normed;
  model.backend->rms_norm(h, model.final_norm, model.config.rms_norm_eps, normed);
  return normed;
}

Matrix forward_logits(const Model& model, const Matrix& hidden, LinearInputObserver* observer) {
  Matrix logits;
  run_linears(*model.backend, {&model.lm_head}, {&logits}, hidden, observer);
  return logits;
}

}  // namespace serq
