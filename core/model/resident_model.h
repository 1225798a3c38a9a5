// A model's weights on one backend, made resident once: each linear as the backend's own copy
// (Backend::make_resident), the embedding table, the norms' γ and RoPE's frequencies as tensors beside them. The
// forward pass (core/model/forward.h) reads nothing else, so per forward only token ids cross to the backend.
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

class ResidentModel {
 public:
  ResidentModel(const Model& model, Backend& backend);
  ResidentModel(const ResidentModel&) = delete;
  ResidentModel& operator=(const ResidentModel&) = delete;

  const Model& model() const { return model_; }
  Backend& backend() const { return backend_; }
  const ResidentLayer& layer(int index) const { return *layers_[static_cast<std::size_t>(index)]; }
  const Tensor& embed() const { return embed_; }
  const Tensor& final_norm() const { return final_norm_; }
  const ResidentLinear& lm_head() const { return *lm_head_; }
  const Tensor& rope_frequencies() const { return frequencies_; }

 private:
  const Model& model_;
  Backend& backend_;
  std::unique_ptr<Buffer> storage_;
  Tensor embed_, final_norm_, frequencies_;
  std::vector<std::unique_ptr<ResidentLayer>> layers_;
  std::unique_ptr<ResidentLinear> lm_head_;
};

// RoPE's frequencies (ModelConfig::rope_frequencies) as a 1 × head_dim/2 tensor of `buffer`.
Tensor rope_frequency_tensor(const ModelConfig& config, Buffer& buffer);

}  // namespace serq
