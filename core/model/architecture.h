// The LLaMA-family decoder as data, the one place that knows it: the tensors of a decoder layer (their names in
// serq, Hugging Face, GGUF and llama2.c files, and their shapes), which RMSNorm or linear produces each linear's
// input (the input groups that share one input transform), and the families that share this decoder with what
// differs between them (biases, RoPE layout in GGUF files, sliding windows). The model layout, the loaders,
// folding, QuaRot and the methods' input groups read it; the forward pass reads what it puts in ModelConfig.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace serq {

struct ModelConfig;

// A side of a linear, in ModelConfig's terms: dim (hidden size), kv_dim (n_kv_heads · head_dim) or hidden_dim (FFN).
enum class Width { dim, kv_dim, hidden_dim };
int width(const ModelConfig& config, Width w);

// The seven linears of a decoder layer, in forward order.
enum class LinearId { q, k, v, o, gate, up, down };

struct LinearDesc {
  LinearId id;
  const char* name;        // serq's and Hugging Face's name inside a layer: "self_attn.q_proj"
  const char* gguf;        // llama.cpp's name inside a block: "attn_q"
  const char* llama2c;     // llama2.c's array: "wq"
  Width d_out, d_in;       // the weight is (d_out × d_in), PyTorch's orientation
  bool writes_residual;    // its output is added to the residual stream
};
std::span<const LinearDesc> layer_linears();
const LinearDesc& linear_desc(LinearId id);
// Every linear's serq name in forward order, "layers.0.self_attn.q_proj" … "layers.{n-1}.mlp.down_proj", then
// "lm_head", as Model::linears() names them.
std::vector<std::string> linear_names(const ModelConfig& config);

// The two RMSNorms of a decoder layer.
enum class NormId { attn, ffn };

struct NormDesc {
  NormId id;
  const char* name;     // serq's: "attn_norm"
  const char* hf;       // "input_layernorm"
  const char* gguf;     // "attn_norm"
  const char* llama2c;  // "rms_att_weight"
};
std::span<const NormDesc> layer_norms();
const NormDesc& norm_desc(NormId id);

// Linears that read one input, and what produces that input. A per-channel input scale or permutation that all
// readers share can move into the producer (core/model/fold.h), and rotations follow the same edges (QuaRot).
struct InputGroupDesc {
  std::vector<LinearId> readers;
  std::optional<NormId> norm;       // the input is this RMSNorm's output: a shared scale folds into its γ
  std::vector<LinearId> producers;  // otherwise these linears' output channels are the input's channels: a
                                    // permutation folds into all of their rows (gate and up through SwiGLU)
  std::optional<LinearId> scaled_producer;  // the producer whose output the input is linear in: a scale folds into
                                            // its rows (up: silu(gate)·up; v: attention mixes positions, not channels)
  bool through_attention = false;  // channels pass through attention head by head: with GQA one v channel feeds
                                   // several heads, and a permutation folds only when it keeps channels in heads
};
// {q, k, v} after attn_norm, {o} after attention, {gate, up} after ffn_norm, {down} after SwiGLU.
std::span<const InputGroupDesc> layer_input_groups_desc();

// The order of llama2.c's version-0 file: each tensor for every layer in turn, in this order.
struct Llama2cTensor {
  std::optional<NormId> norm;
  std::optional<LinearId> linear;
};
std::span<const Llama2cTensor> llama2c_layer_order();

// How a family treats Hugging Face's sliding_window field.
enum class SlidingWindow {
  caps_context,   // Mistral: equal to full causal attention on sequences no longer than the window
  refused_if_on,  // Qwen2: per-layer windows, used only when use_sliding_window is true; serq refuses that
};

enum class ModelFamily { llama, mistral, qwen2 };

// A LLaMA-architecture family: what a checkpoint says to name it, and what differs from plain LLaMA.
struct FamilyDesc {
  ModelFamily id;
  const char* name;           // "llama"
  const char* members;        // for messages: "LLaMA-1/2/3/3.1/3.2, SmolLM2"
  const char* hf_model_type;  // config.json model_type
  const char* gguf_arch;      // GGUF general.architecture; nullptr where llama.cpp writes the family as "llama"
  std::vector<LinearId> biased;     // linears that carry a bias
  SlidingWindow sliding_window;
  bool gguf_interleaved_rope;  // llama.cpp's converter permutes q/k rows into interleaved RoPE pairs (llama);
                               // families it does not permute rotate halves (NEOX layout)
};
std::span<const FamilyDesc> model_families();
const FamilyDesc& family_desc(ModelFamily family);
const FamilyDesc* find_hf_family(std::string_view model_type);
const FamilyDesc* find_gguf_family(std::string_view arch);
// "llama (LLaMA-1/2/3/3.1/3.2, SmolLM2), mistral (Mistral) or qwen2 (Qwen2/2.5)", for error messages.
std::string supported_hf_model_types();
std::string supported_gguf_archs();

// Tensor names of the two named checkpoint formats. `kind` is "weight" or "bias".
struct CheckpointNames {
  const char* embed;       // the token embedding
  const char* final_norm;  // the RMSNorm before the head
  const char* head;        // lm_head; absent in GGUF when tied
  std::string (*layer_tensor)(int layer, const char* name, const char* kind);
};
extern const CheckpointNames kHfNames;    // "model.layers.{i}.{name}.{kind}"
extern const CheckpointNames kGgufNames;  // "blk.{i}.{name}.{kind}"

}  // namespace serq
