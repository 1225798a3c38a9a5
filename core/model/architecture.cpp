// The LLaMA-family decoder's tables (see architecture.h).
#include "core/model/architecture.h"

#include <fmt/format.h>

#include <array>
#include <cassert>

#include "core/model/config.h"

namespace serq {
namespace {

using enum LinearId;

constexpr std::array<LinearDesc, 7> kLinears = {{
    {q, "self_attn.q_proj", "attn_q", "wq", Width::dim, Width::dim, false},
    {k, "self_attn.k_proj", "attn_k", "wk", Width::kv_dim, Width::dim, false},
    {v, "self_attn.v_proj", "attn_v", "wv", Width::kv_dim, Width::dim, false},
    {o, "self_attn.o_proj", "attn_output", "wo", Width::dim, Width::dim, true},
    {gate, "mlp.gate_proj", "ffn_gate", "w1", Width::hidden_dim, Width::dim, false},
    {up, "mlp.up_proj", "ffn_up", "w3", Width::hidden_dim, Width::dim, false},
    {down, "mlp.down_proj", "ffn_down", "w2", Width::dim, Width::hidden_dim, true},
}};

constexpr bool indexed_by_id() {
  for (std::size_t i = 0; i < kLinears.size(); ++i) {
    if (static_cast<std::size_t>(kLinears[i].id) != i) return false;
  }
  return true;
}
static_assert(indexed_by_id(), "kLinears must list the linears in LinearId order (linear_desc indexes it)");

constexpr std::array<NormDesc, 2> kNorms = {{
    {NormId::attn, "attn_norm", "input_layernorm", "attn_norm", "rms_att_weight"},
    {NormId::ffn, "ffn_norm", "post_attention_layernorm", "ffn_norm", "rms_ffn_weight"},
}};

const std::array<InputGroupDesc, 4> kInputGroups = {{
    {{q, k, v}, NormId::attn, {}, std::nullopt, false},
    {{o}, std::nullopt, {v}, v, true},
    {{gate, up}, NormId::ffn, {}, std::nullopt, false},
    {{down}, std::nullopt, {gate, up}, up, false},
}};

constexpr std::array<Llama2cTensor, 9> kLlama2cOrder = {{
    {NormId::attn, std::nullopt}, {std::nullopt, q}, {std::nullopt, k}, {std::nullopt, v}, {std::nullopt, o},
    {NormId::ffn, std::nullopt}, {std::nullopt, gate}, {std::nullopt, down}, {std::nullopt, up},
}};

const std::array<FamilyDesc, 3> kFamilies = {{
    {ModelFamily::llama, "llama", "LLaMA-1/2/3/3.1/3.2, SmolLM2", "llama", "llama", {}, SlidingWindow::caps_context,
     true},
    {ModelFamily::mistral, "mistral", "Mistral", "mistral", nullptr, {}, SlidingWindow::caps_context, true},
    {ModelFamily::qwen2, "qwen2", "Qwen2/2.5", "qwen2", "qwen2", {q, k, v}, SlidingWindow::refused_if_on, false},
}};

std::string hf_layer_tensor(int layer, const char* name, const char* kind) {
  return fmt::format("model.layers.{}.{}.{}", layer, name, kind);
}

std::string gguf_layer_tensor(int layer, const char* name, const char* kind) {
  return fmt::format("blk.{}.{}.{}", layer, name, kind);
}

// "a (A), b (B) or c (C)" over the families that `name_of` names.
template <class NameOf>
std::string list_families(NameOf name_of) {
  std::vector<std::string> items;
  for (const FamilyDesc& family : kFamilies) {
    if (const char* name = name_of(family)) items.push_back(fmt::format("{} ({})", name, family.members));
  }
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == items.size() ? " or " : ", ") + items[i];
  }
  return out;
}

}  // namespace

const CheckpointNames kHfNames = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
                                  hf_layer_tensor};
const CheckpointNames kGgufNames = {"token_embd.weight", "output_norm.weight", "output.weight", gguf_layer_tensor};

int width(const ModelConfig& config, Width w) {
  switch (w) {
    case Width::dim: return config.dim;
    case Width::kv_dim: return config.kv_dim();
    case Width::hidden_dim: return config.hidden_dim;
  }
  assert(false);
  return 0;
}

std::span<const LinearDesc> layer_linears() { return kLinears; }

std::vector<std::string> linear_names(const ModelConfig& config) {
  std::vector<std::string> names;
  for (int i = 0; i < config.n_layers; ++i) {
    for (const LinearDesc& l : layer_linears()) names.push_back(fmt::format("layers.{}.{}", i, l.name));
  }
  names.push_back("lm_head");
  return names;
}

const LinearDesc& linear_desc(LinearId id) { return kLinears[static_cast<std::size_t>(id)]; }

std::span<const NormDesc> layer_norms() { return kNorms; }

const NormDesc& norm_desc(NormId id) { return kNorms[static_cast<std::size_t>(id)]; }

std::span<const InputGroupDesc> layer_input_groups_desc() { return kInputGroups; }

std::span<const Llama2cTensor> llama2c_layer_order() { return kLlama2cOrder; }

std::span<const FamilyDesc> model_families() { return kFamilies; }

const FamilyDesc& family_desc(ModelFamily family) { return kFamilies[static_cast<std::size_t>(family)]; }

const FamilyDesc* find_hf_family(std::string_view model_type) {
  for (const FamilyDesc& family : kFamilies) {
    if (model_type == family.hf_model_type) return &family;
  }
  return nullptr;
}

const FamilyDesc* find_gguf_family(std::string_view arch) {
  for (const FamilyDesc& family : kFamilies) {
    if (family.gguf_arch && arch == family.gguf_arch) return &family;
  }
  return nullptr;
}

std::string supported_hf_model_types() {
  return list_families([](const FamilyDesc& f) { return f.hf_model_type; });
}

std::string supported_gguf_archs() {
  return list_families([](const FamilyDesc& f) { return f.gguf_arch; });
}

}  // namespace serq
