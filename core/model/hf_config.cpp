// Reads a Hugging Face config.json of a LLaMA-architecture model (a family of core/model/architecture.h) into
// ModelConfig.
#include <algorithm>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/model/config.h"

namespace serq {
namespace {

using nlohmann::json;

// A present, non-null field, or nullptr.
const json* optional_field(const json& config, const char* key) {
  const auto it = config.find(key);
  return it == config.end() || it->is_null() ? nullptr : &*it;
}

const json& required_field(const json& config, const char* key, const std::string& where) {
  const json* value = optional_field(config, key);
  SERQ_CHECK(value, "{}: missing required field '{}' (is this the config.json of a LLaMA-family model?)", where, key);
  return *value;
}

int positive_int(const json& value, const char* key, const std::string& where) {
  SERQ_CHECK(value.is_number_integer() && value.get<std::int64_t>() > 0 &&
                 value.get<std::int64_t>() <= std::numeric_limits<int>::max(),
             "{}: '{}' must be a positive integer, got {}", where, key, value.dump());
  return value.get<int>();
}

int token_id(const json& value, const char* key, const std::string& where) {
  SERQ_CHECK(value.is_number_integer() && value.get<std::int64_t>() >= 0 &&
                 value.get<std::int64_t>() <= std::numeric_limits<int>::max(),
             "{}: '{}' must be a token id (a non-negative integer), got {}", where, key, value.dump());
  return value.get<int>();
}

float positive_float(const json& value, const char* key, const std::string& where) {
  SERQ_CHECK(value.is_number() && value.get<double>() > 0, "{}: '{}' must be a positive number, got {}", where, key,
             value.dump());
  return value.get<float>();
}

// rope_scaling of type llama3 (HF writes the type as "rope_type", older files as "type"); any other is refused.
RopeScaling rope_scaling(const json& scaling, const std::string& where) {
  SERQ_CHECK(scaling.is_object(), "{}: 'rope_scaling' must be an object, got {}", where, scaling.dump());
  const json* type = optional_field(scaling, "rope_type");
  if (!type) type = optional_field(scaling, "type");
  const std::string name = type && type->is_string() ? type->get<std::string>() : type ? type->dump() : "";
  if (name == "default") return {};
  SERQ_CHECK(name == "llama3", "{}: rope_scaling of type '{}' is not supported; serq implements 'llama3' "
             "(LLaMA-3.1/3.2) and no scaling", where, name);
  const std::string field = where + ": rope_scaling";
  RopeScaling s;
  s.type = RopeScaling::Type::llama3;
  s.factor = positive_float(required_field(scaling, "factor", field), "rope_scaling.factor", where);
  s.low_freq_factor =
      positive_float(required_field(scaling, "low_freq_factor", field), "rope_scaling.low_freq_factor", where);
  s.high_freq_factor =
      positive_float(required_field(scaling, "high_freq_factor", field), "rope_scaling.high_freq_factor", where);
  s.original_max_position_embeddings =
      positive_int(required_field(scaling, "original_max_position_embeddings", field),
                   "rope_scaling.original_max_position_embeddings", where);
  SERQ_CHECK(s.high_freq_factor > s.low_freq_factor, "{}: rope_scaling.high_freq_factor {} must exceed "
             "low_freq_factor {}", where, s.high_freq_factor, s.low_freq_factor);
  return s;
}

}  // namespace

ModelConfig read_hf_config(const std::filesystem::path& config_json) {
  const std::string where = config_json.string();
  std::ifstream in(config_json);
  SERQ_CHECK(in, "{}: file not found (a Hugging Face model directory must contain config.json)", where);
  const json config = json::parse(in, nullptr, /*allow_exceptions=*/false);
  SERQ_CHECK(!config.is_discarded() && config.is_object(), "{}: not a valid JSON object (corrupted? re-fetch it)",
             where);

  const FamilyDesc* family = &family_desc(ModelFamily::llama);  // older LLaMA config.json files name no type
  if (const json* type = optional_field(config, "model_type")) {
    const std::string model_type = type->is_string() ? type->get<std::string>() : type->dump();
    family = find_hf_family(model_type);
    SERQ_CHECK(family, "{}: model_type '{}' is not supported; serq loads LLaMA-architecture models: model_type {}",
               where, model_type, supported_hf_model_types());
  }
  const json* sliding = optional_field(config, "use_sliding_window");  // Qwen2: windows on some layers when true
  SERQ_CHECK(family->sliding_window != SlidingWindow::refused_if_on || !sliding || *sliding == false,
             "{}: use_sliding_window true is not supported ({}'s per-layer sliding windows); use a checkpoint with "
             "it false, as Qwen2.5 ships", where, family->name);
  if (const json* act = optional_field(config, "hidden_act")) {
    SERQ_CHECK(*act == "silu", "{}: hidden_act {} is not supported; LLaMA-family MLPs use \"silu\"", where,
               act->dump());
  }
  for (const char* bias : {"attention_bias", "mlp_bias"}) {
    const json* value = optional_field(config, bias);
    SERQ_CHECK(!value || *value == false, "{}: {} = {} is not supported; serq reads only the biases its family's "
               "layout has", where, bias, value ? value->dump() : "");
  }

  ModelConfig c;
  c.dim = positive_int(required_field(config, "hidden_size", where), "hidden_size", where);
  c.hidden_dim = positive_int(required_field(config, "intermediate_size", where), "intermediate_size", where);
  c.n_layers = positive_int(required_field(config, "num_hidden_layers", where), "num_hidden_layers", where);
  c.n_heads = positive_int(required_field(config, "num_attention_heads", where), "num_attention_heads", where);
  c.vocab_size = positive_int(required_field(config, "vocab_size", where), "vocab_size", where);
  c.rms_norm_eps = positive_float(required_field(config, "rms_norm_eps", where), "rms_norm_eps", where);
  c.max_seq_len =
      positive_int(required_field(config, "max_position_embeddings", where), "max_position_embeddings", where);

  const json* kv_heads = optional_field(config, "num_key_value_heads");
  c.n_kv_heads = kv_heads ? positive_int(*kv_heads, "num_key_value_heads", where) : c.n_heads;
  if (const json* theta = optional_field(config, "rope_theta")) {
    c.rope_theta = positive_float(*theta, "rope_theta", where);
  }
  if (const json* scaling = optional_field(config, "rope_scaling")) c.rope_scaling = rope_scaling(*scaling, where);
  if (const json* tied = optional_field(config, "tie_word_embeddings")) {
    SERQ_CHECK(tied->is_boolean(), "{}: 'tie_word_embeddings' must be true or false, got {}", where, tied->dump());
    c.tied_embeddings = tied->get<bool>();
  } else {
    c.tied_embeddings = false;  // the Hugging Face default
  }
  if (const json* bos = optional_field(config, "bos_token_id")) c.bos_id = token_id(*bos, "bos_token_id", where);
  if (const json* eos = optional_field(config, "eos_token_id")) {
    const bool list = eos->is_array();
    SERQ_CHECK(!list || !eos->empty(), "{}: 'eos_token_id' is an empty list; give at least one id", where);
    c.eos_id = token_id(list ? eos->front() : *eos, "eos_token_id", where);
  }
  c.family = family->id;
  if (const json* dtype = optional_field(config, "torch_dtype"); dtype && dtype->is_string()) {
    const std::string name = dtype->get<std::string>();
    c.checkpoint_linear_bytes = name == "bfloat16" || name == "float16" ? 2 : 4;
  }
  // Mistral's sliding-window attention equals full causal attention on sequences no longer than the window.
  if (const json* window = family->sliding_window == SlidingWindow::caps_context
                                ? optional_field(config, "sliding_window") : nullptr) {
    c.max_seq_len = std::min(c.max_seq_len, positive_int(*window, "sliding_window", where));
  }
  c.rope_layout = RopeLayout::half;

  SERQ_CHECK(c.dim % c.n_heads == 0,
             "{}: hidden_size {} is not divisible by num_attention_heads {} (a corrupted config.json?)", where, c.dim,
             c.n_heads);
  SERQ_CHECK(c.n_heads % c.n_kv_heads == 0,
             "{}: num_attention_heads {} is not divisible by num_key_value_heads {} (a corrupted config.json?)", where,
             c.n_heads, c.n_kv_heads);
  SERQ_CHECK(c.head_dim() % 2 == 0, "{}: head dimension {} is odd; RoPE needs it even", where, c.head_dim());
  if (const json* head_dim = optional_field(config, "head_dim")) {
    SERQ_CHECK(*head_dim == c.head_dim(), "{}: head_dim {} differs from hidden_size / num_attention_heads = {}, "
               "which serq does not support", where, head_dim->dump(), c.head_dim());
  }
  return c;
}

}  // namespace serq
