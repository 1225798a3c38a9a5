// A model's weights made resident on a backend (see resident_model.h).
#include "core/model/resident_model.h"

#include "core/backend/cpu/cpu_quant_linear.h"

namespace serq {
namespace {

Tensor resident_vector(Backend& backend, const Vector& v, Buffer& buffer, std::string_view what) {
  return backend.resident(v.data(), 1, v.size(), buffer, what);
}

}  // namespace

ResidentLayer::ResidentLayer(const DecoderLayer& layer, Backend& backend)
    : source(layer), storage(std::make_unique<Buffer>(backend)) {
  attn_norm = resident_vector(backend, layer.attn_norm, *storage, "weights");
  ffn_norm = resident_vector(backend, layer.ffn_norm, *storage, "weights");
  q_proj = backend.make_resident(layer.q_proj, nullptr);
  k_proj = backend.make_resident(layer.k_proj, nullptr);
  v_proj = backend.make_resident(layer.v_proj, nullptr);
  o_proj = backend.make_resident(layer.o_proj, nullptr);
  gate_proj = backend.make_resident(layer.gate_proj, nullptr);
  up_proj = backend.make_resident(layer.up_proj, nullptr);
  down_proj = backend.make_resident(layer.down_proj, nullptr);
}

Tensor rope_frequency_tensor(const ModelConfig& config, Buffer& buffer) {
  const std::vector<float> frequencies = config.rope_frequencies();
  const Tensor t = buffer.alloc(1, static_cast<std::int64_t>(frequencies.size()));
  buffer.backend().set(t, frequencies, "weights");
  return t;
}

bool head_shares_embedding(const Model& model) {
  const Matrix& head = model.lm_head.weight;
  return model.config.tied_embeddings && !model.lm_head.int_kernel && head.rows() == model.embed.rows() &&
         head.cols() == model.embed.cols() && head.size() > 0 && head == model.embed;
}

std::int64_t resident_model_bytes(const Model& model) {
  std::int64_t bytes = 0;
  for (const QuantLinear* layer : model.linears()) bytes += static_cast<std::int64_t>(linear_bytes(*layer, nullptr));
  const ModelConfig& c = model.config;
  const std::int64_t embed = static_cast<std::int64_t>(c.vocab_size) * c.dim;
  return bytes + (embed + (2LL * c.n_layers + 1) * c.dim) * 4 - (head_shares_embedding(model) ? embed * 4 : 0);
}

ResidentModel::ResidentModel(const Model& model, Backend& backend, Residency residency)
    : model_(model), backend_(backend), storage_(std::make_unique<Buffer>(backend)) {
  if (residency == Residency::automatic) {
    const std::int64_t available = backend.memory_available();
    // A fifth of the device's free memory is left for activations, logits and the KLD reference.
    residency = available < 0 || resident_model_bytes(model) <= available / 5 * 4 ? Residency::whole
                                                                                   : Residency::streamed;
  }
  embed_ = backend.resident(model.embed.data(), model.embed.rows(), model.embed.cols(), *storage_, "weights");
  final_norm_ = resident_vector(backend, model.final_norm, *storage_, "weights");
  frequencies_ = rope_frequency_tensor(model.config, *storage_);
  if (residency == Residency::whole) {
    for (const DecoderLayer& layer : model.layers) layers_.push_back(std::make_unique<ResidentLayer>(layer, backend));
  }
  lm_head_ = backend.make_resident(model.lm_head, head_shares_embedding(model) ? &embed_ : nullptr);
}

const ResidentLayer& ResidentModel::layer(int index) const {
  if (!streamed()) return *layers_[static_cast<std::size_t>(index)];
  if (current_index_ != index) {
    current_.reset();  // its memory goes back before the next layer's comes
    current_ = std::make_unique<ResidentLayer>(model_.layers[static_cast<std::size_t>(index)], backend_);
    current_index_ = index;
  }
  return *current_;
}

}  // namespace serq
