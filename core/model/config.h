// LLaMA-family model hyper-parameters and family, shared by every loader and by the forward pass.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/model/architecture.h"

namespace serq {

// How RoPE pairs the dimensions of a head: llama2.c rotates interleaved pairs (2i, 2i+1);
// Hugging Face LLaMA rotates halves (i, i + head_dim/2) and permutes q/k rows to match.
enum class RopeLayout { interleaved, half };

// RoPE frequency scaling for long context. llama3 (LLaMA-3.1/3.2, HF rope_type "llama3"): pairs whose wavelength
// 2π/f exceeds original_max_position_embeddings / low_freq_factor have f divided by `factor`; those shorter than
// original / high_freq_factor keep f; in between f is interpolated by smooth = (original / wavelength − low) /
// (high − low): f ← (1 − smooth)·f/factor + smooth·f.
struct RopeScaling {
  enum class Type { none, llama3 };
  Type type = Type::none;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 0;
};

struct ModelConfig {
  int dim = 0;          // hidden size
  int hidden_dim = 0;   // FFN (intermediate) size
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;   // < n_heads means grouped-query attention
  int vocab_size = 0;
  int max_seq_len = 0;  // max_position_embeddings
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  bool tied_embeddings = true;  // lm_head shares the token embedding
  RopeLayout rope_layout = RopeLayout::half;
  RopeScaling rope_scaling;
  ModelFamily family = ModelFamily::llama;  // what differs from plain LLaMA (core/model/architecture.h)
  int checkpoint_linear_bytes = 4;  // bytes per linear weight as the checkpoint says it stores them (config.json
                                    // torch_dtype: 2 for bfloat16/float16, which serq reads in place), for estimates
  int bos_id = 1;
  int eos_id = 2;

  int head_dim() const { return dim / n_heads; }
  // The rotation frequency of each of the head_dim/2 pairs: θ^(-2i/head_dim) in float as llama2.c and Hugging Face
  // compute it, then rope_scaling applied.
  std::vector<float> rope_frequencies() const;
  int kv_dim() const { return n_kv_heads * head_dim(); }
  // Whether this family's linear `id` carries a bias (Qwen2's q/k/v).
  bool has_bias(LinearId id) const;
  // Weights of one decoder layer's linears (no biases, no norms).
  std::int64_t layer_linear_weights() const;
  // Parameters of the decoder and head, counting a tied head once.
  std::int64_t parameter_count() const;
};

// Reads a Hugging Face `config.json`. Throws serq::Error naming the file and the missing/bad field.
ModelConfig read_hf_config(const std::filesystem::path& config_json);

}  // namespace serq
