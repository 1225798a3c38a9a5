// A model's weights on one backend, made resident once: each linear as the backend's own copy
// (Backend::make_resident), the embedding table, the norms' γ and RoPE's frequencies as tensors beside them. The
// forward pass (core/model/forward.h) reads nothing else, so per forward only token ids cross to the backend.
//
// A model that does not fit the backend's memory is streamed: the embedding, norms and lm_head stay resident, and
// each decoder layer is made resident when the forward reaches it, replacing the previous one, so its weights cross
// once per forward (per batch of windows), never once per op.
//
// The Model must outlive its resident copy and stay unchanged while it lives: a method that edits weights works on
// the Model, and the copy is made after it (a layer-wise pipeline makes one ResidentLayer at a time).
#pragma once

#include <memory>
#include <vector>

#include "core/backend/backend.h"
#include "core/model/model.h"

namespace serq {

// One decoder layer on a backend.
struct ResidentLayer {
  ResidentLayer(const DecoderLayer& layer, Backend& backend);

  const DecoderLayer& source;
  std::unique_ptr<Buffer> storage;  // the norms' γ where the backend's memory is not the host's
  Tensor attn_norm, ffn_norm;       // 1 × dim
  std::unique_ptr<ResidentLinear> q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
};

enum class Residency {
  automatic,  // whole where it fits the backend's memory (always on the host's), else streamed
  whole,      // every layer resident at once
  streamed,   // one decoder layer at a time
};

class ResidentModel {
 public:
  ResidentModel(const Model& model, Backend& backend, Residency residency = Residency::automatic);
  ResidentModel(const ResidentModel&) = delete;
  ResidentModel& operator=(const ResidentModel&) = delete;

  const Model& model() const { return model_; }
  Backend& backend() const { return backend_; }
  // Decoder layer `index`; when streamed, made resident now unless it is the one resident already.
  const ResidentLayer& layer(int index) const;
  bool streamed() const { return layers_.empty(); }
  const Tensor& embed() const { return embed_; }
  const Tensor& final_norm() const { return final_norm_; }
  const ResidentLinear& lm_head() const { return *lm_head_; }
  const Tensor& rope_frequencies() const { return frequencies_; }

 private:
  const Model& model_;
  Backend& backend_;
  std::unique_ptr<Buffer> storage_;
  Tensor embed_, final_norm_, frequencies_;
  std::vector<std::unique_ptr<ResidentLayer>> layers_;  // every layer; empty when streamed
  mutable std::unique_ptr<ResidentLayer> current_;      // the streamed layer resident now
  mutable int current_index_ = -1;
  std::unique_ptr<ResidentLinear> lm_head_;
};

// Whether lm_head is tied to the embedding and still equal to it, so that its copy on a backend reads the
// embedding table's (serq's Model keeps a copy of a tied head, which a method may quantize or transform).
bool head_shares_embedding(const Model& model);

// Bytes the model's weights take as a backend holds them in float (an upper bound for an integer layout).
std::int64_t resident_model_bytes(const Model& model);

// RoPE's frequencies (ModelConfig::rope_frequencies) as a 1 × head_dim/2 tensor of `buffer`.
Tensor rope_frequency_tensor(const ModelConfig& config, Buffer& buffer);

}  // namespace serq
