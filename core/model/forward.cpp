// CPU forward pass of the LLaMA decoder. GEMMs go through OpenBLAS (QuantLinear and cblas_sgemm for attention).
#include "core/model/forward.h"

#include <cblas.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <initializer_list>
#include <utility>

#include "core/common/error.h"

namespace serq {
namespace {

// x · γ / sqrt(mean(x²) + eps), row by row.
void rms_norm(const Matrix& x, const Vector& gamma, float eps, Matrix& out) {
  out.resize(x.rows(), x.cols());
  const int n = static_cast<int>(x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const float* in = x.row(r).data();
    float sum = 0.0f;
    for (int i = 0; i < n; ++i) sum += in[i] * in[i];
    const float inv = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
    float* o = out.row(r).data();
    for (int i = 0; i < n; ++i) o[i] = in[i] * inv * gamma[i];
  }
}

// Rotates the heads of x ((batch · seq) × (n_heads · head_dim)) by the position of each row, at the frequencies of
// ModelConfig::rope_frequencies.
void apply_rope(Matrix& x, int n_heads, int head_dim, int batch, int seq, int pos0, const ModelConfig& config) {
  const int half = head_dim / 2;
  const std::vector<float> frequencies = config.rope_frequencies();
  std::vector<float> cos_table(static_cast<std::size_t>(seq) * half), sin_table(cos_table.size());
  for (int t = 0; t < seq; ++t) {
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos0 + t) * frequencies[static_cast<std::size_t>(i)];
      cos_table[t * half + i] = std::cos(angle);
      sin_table[t * half + i] = std::sin(angle);
    }
  }
  const bool interleaved = config.rope_layout == RopeLayout::interleaved;
  for (int b = 0; b < batch; ++b) {
    for (int t = 0; t < seq; ++t) {
      float* row = x.row(static_cast<Eigen::Index>(b) * seq + t).data();
      const float* c = &cos_table[t * half];
      const float* s = &sin_table[t * half];
      for (int h = 0; h < n_heads; ++h) {
        float* head = row + h * head_dim;
        for (int i = 0; i < half; ++i) {
          float& a = interleaved ? head[2 * i] : head[i];
          float& bv = interleaved ? head[2 * i + 1] : head[i + half];
          const float x0 = a, x1 = bv;
          a = x0 * c[i] - x1 * s[i];
          bv = x0 * s[i] + x1 * c[i];
        }
      }
    }
  }
}

// Queries are processed in blocks of this many rows so that each block only multiplies the keys it can see.
constexpr int kQueryBlock = 256;

// Causal grouped-query attention for one batch element and one query head.
// q: seq rows of head_dim (stride q_stride); k, v: `keys` rows (stride kv_stride); query t sits at position
// pos0 + t and sees keys 0 .. pos0 + t. Writes seq rows of head_dim to out (stride out_stride).
void attend_head(const float* q, int q_stride, const float* k, const float* v, int kv_stride, int seq, int pos0,
                 int head_dim, float* out, int out_stride, Eigen::VectorXf& scores) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  for (int t0 = 0; t0 < seq; t0 += kQueryBlock) {
    const int rows = std::min(kQueryBlock, seq - t0);
    const int keys = pos0 + t0 + rows;  // keys visible to the last query of the block
    // Rows padded to a multiple of 8 floats in an aligned buffer: every row starts 32-byte aligned, so Eigen's
    // vectorized exp/max/sum take the same path (and give the same bits) wherever the heap puts the buffer.
    const int stride = (keys + 7) & ~7;
    scores.resize(static_cast<Eigen::Index>(rows) * stride);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, head_dim, scale, q + static_cast<std::size_t>(t0) * q_stride,
                q_stride, k, kv_stride, 0.0f, scores.data(), stride);
    for (int r = 0; r < rows; ++r) {
      float* row = scores.data() + static_cast<std::size_t>(r) * stride;
      const int visible = pos0 + t0 + r + 1;
      Eigen::Map<Eigen::ArrayXf> p(row, visible);  // Eigen's exp is vectorized; std::exp is not
      p = (p - p.maxCoeff()).exp();
      p *= 1.0f / p.sum();
      std::fill(row + visible, row + keys, 0.0f);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, head_dim, keys, 1.0f, scores.data(), stride, v,
                kv_stride, 0.0f, out + static_cast<std::size_t>(t0) * out_stride, out_stride);
  }
}

void run_linear(const QuantLinear& layer, const Matrix& x, Matrix& y, LinearInputObserver* observer) {
  if (observer) observer->observe(layer, x);
  layer.forward(x, y);
}

// Linears that read one input (an input group of core/model/architecture.h): when they transform and quantize it
// alike, Xq is computed once and shared, which gives the same outputs as running each on its own.
void run_input_group(std::initializer_list<std::pair<const QuantLinear*, Matrix*>> linears, const Matrix& x,
                     LinearInputObserver* observer) {
  const QuantLinear& first = *linears.begin()->first;
  bool shared = first.transforms_input();
  for (const auto& [layer, y] : linears) shared = shared && layer->shares_input_with(first);
  if (!shared) {
    for (const auto& [layer, y] : linears) run_linear(*layer, x, *y, observer);
    return;
  }
  const PreparedInput xq = first.prepare_input(x);
  for (const auto& [layer, y] : linears) {
    if (observer) observer->observe(*layer, x);
    layer->forward_prepared(xq, *y);
  }
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
  const int head_dim = c.head_dim(), kv_dim = c.kv_dim(), group = c.n_heads / c.n_kv_heads;
  const int pos0 = cache ? cache->length : 0;

  Matrix x, q, k, v;
  rms_norm(h, layer.attn_norm, c.rms_norm_eps, x);
  run_input_group({{&layer.q_proj, &q}, {&layer.k_proj, &k}, {&layer.v_proj, &v}}, x, observer);
  apply_rope(q, c.n_heads, head_dim, batch, seq, pos0, c);
  apply_rope(k, c.n_kv_heads, head_dim, batch, seq, pos0, c);

  // Keys/values visible to this call: the cache (after appending), or just this call's k and v.
  const Matrix* keys = &k;
  const Matrix* values = &v;
  int kv_rows_per_batch = seq;
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
    kv_rows_per_batch = cache->capacity;
  }

  Matrix attn(static_cast<Eigen::Index>(batch) * seq, c.dim);
  Eigen::VectorXf scores;
  for (int b = 0; b < batch; ++b) {
    for (int head = 0; head < c.n_heads; ++head) {
      const int kv_head = head / group;
      const std::size_t q_offset = static_cast<std::size_t>(b) * seq * c.dim + head * head_dim;
      const std::size_t kv_offset = static_cast<std::size_t>(b) * kv_rows_per_batch * kv_dim + kv_head * head_dim;
      attend_head(q.data() + q_offset, c.dim, keys->data() + kv_offset, values->data() + kv_offset, kv_dim, seq, pos0,
                  head_dim, attn.data() + q_offset, c.dim, scores);
    }
  }
  Matrix out;
  run_linear(layer.o_proj, attn, out, observer);
  h += out;

  rms_norm(h, layer.ffn_norm, c.rms_norm_eps, x);
  Matrix gate, up;
  run_input_group({{&layer.gate_proj, &gate}, {&layer.up_proj, &up}}, x, observer);
  auto g = gate.array();
  g = g / (1.0f + (-g).exp()) * up.array();  // silu(gate) · up
  run_linear(layer.down_proj, gate, out, observer);
  h += out;
}

std::int64_t forward_workspace_bytes(const ModelConfig& c, int batch, int seq) {
  const std::int64_t rows = static_cast<std::int64_t>(batch) * seq;
  // h, x, q, attn, out (dim wide) + k, v (kv_dim) + gate, up (hidden) + a copy for activation quantization
  // (hidden wide at most) + one block of attention scores + one chunk of logits (1024 rows).
  const std::int64_t floats = rows * (5LL * c.dim + 2LL * c.kv_dim() + 3LL * c.hidden_dim) +
                              static_cast<std::int64_t>(kQueryBlock) * seq + 1024LL * c.vocab_size;
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
  const ModelConfig& c = model.config;
  Matrix h(static_cast<Eigen::Index>(tokens.size()), c.dim);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    SERQ_CHECK(tokens[i] >= 0 && tokens[i] < c.vocab_size, "token id {} is outside the vocabulary (size {}); the "
               "tokenizer does not match the model", tokens[i], c.vocab_size);
    h.row(static_cast<Eigen::Index>(i)) = model.embed.row(tokens[i]);
  }
  return h;
}

Matrix final_norm(const Model& model, const Matrix& h) {
  Matrix normed;
  rms_norm(h, model.final_norm, model.config.rms_norm_eps, normed);
  return normed;
}

Matrix forward_logits(const Model& model, const Matrix& hidden, LinearInputObserver* observer) {
  Matrix logits;
  run_linear(model.lm_head, hidden, logits, observer);
  return logits;
}

}  // namespace serq
