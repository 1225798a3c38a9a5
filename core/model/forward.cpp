// The LLaMA decoder's forward graph: which op reads what, in order. The arithmetic is the backend's
// (core/backend/backend.h): every op runs on the backend the model is resident on, on tensors in its memory.
#include "core/model/forward.h"

#include <algorithm>
#include <cassert>
#include <initializer_list>
#include <vector>

#include "core/common/error.h"

namespace serq {
namespace {

// The linears of one input group (core/model/architecture.h) on one input x: the observer sees x for each, then the
// backend runs them together, so that it can share their input transform and quantization.
void run_linears(Backend& backend, std::initializer_list<const ResidentLinear*> layers,
                 std::initializer_list<Tensor*> outputs, const Tensor& x, LinearInputObserver* observer) {
  if (observer) {
    for (const ResidentLinear* layer : layers) observer->observe(layer->layer(), x);
  }
  backend.quant_linear(std::span<const ResidentLinear* const>(layers.begin(), layers.size()), x,
                       std::span<Tensor* const>(outputs.begin(), outputs.size()));
}

// KV-cache quantization (core/quant/kv_quant.h) on this layer's q, k (after RoPE) and v, before the keys and values
// are written to the cache or read by attention.
void store_keys_and_values(Backend& ops, const ModelConfig& c, const KvCacheSettings& kv, Tensor& q, Tensor& k,
                           Tensor& v) {
  if (kv.rotate) {
    const InputRotation per_head{.hadamard_size = c.head_dim(), .factor = {}, .description = "kv heads"};
    Tensor queries = q.reshaped(q.rows * c.n_heads, c.head_dim());
    Tensor keys = k.reshaped(k.rows * c.n_kv_heads, c.head_dim());
    ops.hadamard(queries, per_head);
    ops.hadamard(keys, per_head);
  }
  if (kv.quant.enabled()) {
    const KvQuantSpec spec = kv.op_spec(c.head_dim());
    ops.kv_quant(k, spec);
    ops.kv_quant(v, spec);
  }
}

}  // namespace

KVCache make_kv_cache(const ModelConfig& config, Backend& backend, int batch, int capacity) {
  SERQ_CHECK(capacity <= config.max_seq_len, "a sequence of {} positions exceeds max_position_embeddings = {}",
             capacity, config.max_seq_len);
  KVCache cache;
  cache.batch = batch;
  cache.capacity = capacity;
  cache.storage = std::make_unique<Buffer>(backend);
  for (int l = 0; l < config.n_layers; ++l) {
    cache.keys.push_back(cache.storage->alloc(static_cast<std::int64_t>(batch) * capacity, config.kv_dim()));
    cache.values.push_back(cache.storage->alloc(static_cast<std::int64_t>(batch) * capacity, config.kv_dim()));
  }
  return cache;
}

LayerWorkspace::LayerWorkspace(const ModelConfig& c, Buffer& work, std::int64_t rows)
    : x(work.alloc(rows, c.dim)),
      q(work.alloc(rows, static_cast<std::int64_t>(c.n_heads) * c.head_dim())),
      k(work.alloc(rows, c.kv_dim())),
      v(work.alloc(rows, c.kv_dim())),
      attn(work.alloc(rows, static_cast<std::int64_t>(c.n_heads) * c.head_dim())),
      out(work.alloc(rows, c.dim)),
      gate(work.alloc(rows, c.hidden_dim)),
      up(work.alloc(rows, c.hidden_dim)) {}


void decoder_layer_forward(const Model& model, const ResidentLayer& layer, const Tensor& rope_frequencies,
                           int layer_index, Tensor& h, int batch, int seq, LayerWorkspace& w, KVCache* cache,
                           LinearInputObserver* observer) {
  const ModelConfig& c = model.config;
  Backend& ops = *h.backend;
  const int pos0 = cache ? cache->length : 0;

  ops.rms_norm(h, layer.attn_norm, c.rms_norm_eps, w.x);
  run_linears(ops, {layer.q_proj.get(), layer.k_proj.get(), layer.v_proj.get()}, {&w.q, &w.k, &w.v}, w.x, observer);
  RopeShape rope{.head_dim = c.head_dim(), .batch = batch, .seq = seq, .pos0 = pos0, .frequencies = rope_frequencies,
                 .interleaved = c.rope_layout == RopeLayout::interleaved};
  rope.n_heads = c.n_heads;
  ops.rope(w.q, rope);
  rope.n_heads = c.n_kv_heads;
  ops.rope(w.k, rope);
  if (model.kv_cache.any()) store_keys_and_values(ops, c, model.kv_cache, w.q, w.k, w.v);

  // Keys/values visible to this call: the cache (after appending), or just this call's k and v.
  const Tensor* keys = &w.k;
  const Tensor* values = &w.v;
  int kv_rows = seq;
  if (cache) {
    assert(pos0 + seq <= cache->capacity && batch == cache->batch);
    Tensor& ck = cache->keys[static_cast<std::size_t>(layer_index)];
    Tensor& cv = cache->values[static_cast<std::size_t>(layer_index)];
    for (int b = 0; b < batch; ++b) {
      const std::int64_t dst = static_cast<std::int64_t>(b) * cache->capacity + pos0;
      Tensor key_rows = ck.middle_rows(dst, seq), value_rows = cv.middle_rows(dst, seq);
      ops.copy(w.k.middle_rows(static_cast<std::int64_t>(b) * seq, seq), key_rows);
      ops.copy(w.v.middle_rows(static_cast<std::int64_t>(b) * seq, seq), value_rows);
    }
    keys = &ck;
    values = &cv;
    kv_rows = cache->capacity;
  }
  ops.attention(w.q, *keys, *values,
                {.n_heads = c.n_heads, .n_kv_heads = c.n_kv_heads, .head_dim = c.head_dim(), .batch = batch,
                 .seq = seq, .pos0 = pos0, .kv_rows = kv_rows},
                w.attn);
  run_linears(ops, {layer.o_proj.get()}, {&w.out}, w.attn, observer);
  ops.add(h, w.out);

  ops.rms_norm(h, layer.ffn_norm, c.rms_norm_eps, w.x);
  run_linears(ops, {layer.gate_proj.get(), layer.up_proj.get()}, {&w.gate, &w.up}, w.x, observer);
  ops.swiglu(w.gate, w.up);
  run_linears(ops, {layer.down_proj.get()}, {&w.out}, w.gate, observer);
  ops.add(h, w.out);
}

std::int64_t forward_workspace_bytes(const ModelConfig& c, int batch, int seq) {
  const std::int64_t rows = static_cast<std::int64_t>(batch) * seq;
  // h, x, q, attn, out, the final norm (dim wide) + k, v (kv_dim) + the CPU attention's packed copies of k and v
  // (kv_dim each) + gate, up (hidden) + a copy for activation quantization (hidden wide at most) + one chunk of logits
  // (up to 1024 rows of a window). Attention's scores are tiles of a few kilobytes per thread.
  const std::int64_t floats = rows * (6LL * c.dim + 4LL * c.kv_dim() + 3LL * c.hidden_dim) +
                              std::min<std::int64_t>(1024, seq) * c.vocab_size;
  return floats * static_cast<std::int64_t>(sizeof(float));
}

Tensor token_tensor(const ModelConfig& config, Buffer& work, std::span<const int> tokens) {
  for (const int token : tokens) {
    SERQ_CHECK(token >= 0 && token < config.vocab_size, "token id {} is outside the vocabulary (size {}); the "
               "tokenizer does not match the model", token, config.vocab_size);
  }
  const Tensor t = work.alloc(static_cast<std::int64_t>(tokens.size()), 1, ElementType::i32);
  work.backend().set(t, tokens, "token ids");
  return t;
}

Tensor forward_hidden(const ResidentModel& model, Buffer& work, const Tensor& ids, int batch, int seq,
                      KVCache* cache, LinearInputObserver* observer) {
  const ModelConfig& c = model.model().config;
  Backend& backend = model.backend();
  const std::int64_t rows = static_cast<std::int64_t>(batch) * seq;
  check_shape(ids, rows, 1, "forward token ids");
  const int pos0 = cache ? cache->length : 0;
  SERQ_CHECK(pos0 + seq <= c.max_seq_len, "a sequence of {} positions exceeds max_position_embeddings = {}; "
             "use a shorter eval.seq_len", pos0 + seq, c.max_seq_len);
  Tensor h = work.alloc(rows, c.dim);
  backend.embedding(model.embed(), ids, h);
  LayerWorkspace workspace(c, work, rows);
  for (int l = 0; l < c.n_layers; ++l) {
    decoder_layer_forward(model.model(), model.layer(l), model.rope_frequencies(), l, h, batch, seq, workspace, cache,
                          observer);
  }
  if (cache) cache->length += seq;
  Tensor normed = work.alloc(rows, c.dim);
  backend.rms_norm(h, model.final_norm(), c.rms_norm_eps, normed);
  return normed;
}

Tensor forward_logits(const ResidentModel& model, Buffer& work, const Tensor& hidden, LinearInputObserver* observer) {
  Tensor logits = work.alloc(hidden.rows, model.model().config.vocab_size);
  run_linears(model.backend(), {&model.lm_head()}, {&logits}, hidden, observer);
  return logits;
}

Tensor gather_rows(Backend& backend, Buffer& work, const Tensor& x, std::span<const int> rows) {
  const Tensor index = work.alloc(static_cast<std::int64_t>(rows.size()), 1, ElementType::i32);
  backend.set(index, rows, "row indices");
  Tensor out = work.alloc(static_cast<std::int64_t>(rows.size()), x.cols);
  backend.embedding(x, index, out);
  return out;
}

void decoder_layer_forward(const Model& model, int layer_index, Matrix& h, int batch, int seq,
                           LinearInputObserver* observer) {
  Backend& backend = *model.backend;
  const ResidentLayer layer(model.layers[static_cast<std::size_t>(layer_index)], backend);
  Buffer work(backend);
  const Tensor frequencies = rope_frequency_tensor(model.config, work);
  Tensor states = backend.upload(h, work, "hidden states");
  LayerWorkspace workspace(model.config, work, h.rows());
  decoder_layer_forward(model, layer, frequencies, layer_index, states, batch, seq, workspace, nullptr, observer);
  backend.get(states, std::span<float>(h.data(), static_cast<std::size_t>(h.size())), "hidden states");
}

Matrix forward_hidden(const Model& model, std::span<const int> tokens, int batch, int seq,
                      LinearInputObserver* observer) {
  const ResidentModel resident(model, *model.backend);
  Buffer work(*model.backend);
  const Tensor ids = token_tensor(model.config, work, tokens);
  return model.backend->download(forward_hidden(resident, work, ids, batch, seq, nullptr, observer), "hidden states");
}

Matrix embed_tokens(const Model& model, std::span<const int> tokens) {
  Backend& backend = *model.backend;
  Buffer work(backend);
  const Tensor table = backend.resident(model.embed.data(), model.embed.rows(), model.embed.cols(), work, "weights");
  Tensor h = work.alloc(static_cast<std::int64_t>(tokens.size()), model.config.dim);
  backend.embedding(table, token_tensor(model.config, work, tokens), h);
  return backend.download(h, "hidden states");
}

Matrix forward_logits(const Model& model, const Matrix& hidden, LinearInputObserver* observer) {
  Backend& backend = *model.backend;
  const std::unique_ptr<ResidentLinear> head = backend.make_resident(model.lm_head, nullptr);
  Buffer work(backend);
  const Tensor states = backend.upload(hidden, work, "hidden states");
  Tensor logits = work.alloc(hidden.rows(), model.config.vocab_size);
  run_linears(backend, {head.get()}, {&logits}, states, observer);
  return backend.download(logits, "logits");
}

}  // namespace serq
