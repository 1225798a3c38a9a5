// A LLaMA-family decoder in memory: embeddings, norms and the QuantLinear layers, laid out and named as
// core/model/architecture.h describes.
#pragma once

#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/common/matrix.h"
#include "core/linear/quant_linear.h"
#include "core/model/config.h"
#include "core/quant/kv_quant.h"

namespace serq {

struct DecoderLayer {
  Vector attn_norm;  // input_layernorm γ (dim)
  Vector ffn_norm;   // post_attention_layernorm γ (dim)
  QuantLinear q_proj, k_proj, v_proj, o_proj;  // self_attn.*
  QuantLinear gate_proj, up_proj, down_proj;   // mlp.* (SwiGLU: down(silu(gate x) * up x))

  // The members that core/model/architecture.h describes.
  QuantLinear& linear(LinearId id);
  const QuantLinear& linear(LinearId id) const;
  Vector& norm(NormId id);
  const Vector& norm(NormId id) const;

  // Its seven linears in forward order.
  std::vector<QuantLinear*> linears();
  std::vector<const QuantLinear*> linears() const;
};

struct Model {
  ModelConfig config;
  Matrix embed;        // (vocab × dim)
  std::vector<DecoderLayer> layers;
  Vector final_norm;   // (dim)
  QuantLinear lm_head; // (vocab × dim); a copy of embed when the checkpoint ties them
  std::string source;  // where it was loaded from, e.g. "hf-safetensors:BF16 /path" or "llama2c-v0 /path"
  Backend* backend = &cpu_backend();  // runs every op of its forward pass (runtime.device)
  KvCacheSettings kv_cache;  // how keys and values are stored for attention (quant.kv_*); not quantized by default

  // Every linear layer in forward order: layers.i.self_attn.{q,k,v,o}_proj, layers.i.mlp.{gate,up,down}_proj,
  // then lm_head.
  std::vector<QuantLinear*> linears();
  std::vector<const QuantLinear*> linears() const;
};

// Allocates a zero-initialised model of the given shape, with every linear named. Loaders fill it in. Without
// allocate_linears the linears' weights are left empty, for a loader that stores them packed (16-bit as loaded).
Model make_empty_model(const ModelConfig& config, bool allocate_linears = true);

// Widens every linear weight that is held only in its stored form (a 16-bit checkpoint's values) to float, for a
// method that edits weights. Quantized layers are left as they are. restore_layer_weights and restore_head_weight
// do it for one decoder layer or lm_head, as the layer-wise pipelines reach them.
void restore_weights(Model& model);
void restore_layer_weights(DecoderLayer& layer);
void restore_head_weight(Model& model);

// What a layer-wise pipeline does when it is done with a decoder layer, so that memory holds one layer's floats at a
// time: release_layer_weights drops the floats where a stored form holds the weight (codes once quantized, or the
// 16-bit checkpoint values), and both give back the resident pages of 16-bit values read from a file mapping.
void release_layer_weights(DecoderLayer& layer);
void release_layer_pages(const DecoderLayer& layer);

}  // namespace serq
