// The decoder description (core/model/architecture.h) is consistent with itself: every linear reads exactly one
// input group, each group's input has the width its producer writes, names follow the checkpoint formats, and the
// families are found by the names checkpoints give them.
#include <catch2/catch.hpp>

#include <set>

#include "core/model/config.h"
#include "core/model/model.h"

using namespace serq;

namespace {

// A config whose three widths differ, so that a wrong width cannot pass by accident.
ModelConfig widths() {
  ModelConfig c;
  c.dim = 64;
  c.n_heads = 8;
  c.n_kv_heads = 2;
  c.hidden_dim = 176;
  c.n_layers = 2;
  c.vocab_size = 50;
  return c;
}

}  // namespace

TEST_CASE("architecture: every linear reads one input group, whose width its producers write") {
  const ModelConfig c = widths();
  std::multiset<LinearId> readers;
  for (const InputGroupDesc& group : layer_input_groups_desc()) {
    REQUIRE(!group.readers.empty());
    CHECK(group.norm.has_value() != !group.producers.empty());  // a norm's output, or linears' outputs
    for (const LinearId reader : group.readers) {
      readers.insert(reader);
      // An RMSNorm writes the residual width; a producer writes its d_out.
      for (const LinearId producer : group.producers) {
        INFO(linear_desc(reader).name << " reads " << linear_desc(producer).name);
        const int written = width(c, linear_desc(producer).d_out), read = width(c, linear_desc(reader).d_in);
        if (!group.through_attention) CHECK(written == read);
      }
      if (group.norm) CHECK(width(c, linear_desc(reader).d_in) == c.dim);
    }
    if (!group.norm) {
      REQUIRE(group.scaled_producer.has_value());
      CHECK(std::ranges::find(group.producers, *group.scaled_producer) != group.producers.end());
    }
  }
  for (const LinearDesc& l : layer_linears()) CHECK(readers.count(l.id) == 1);
  // Attention's output is n_heads · head_dim wide, from v's kv_dim through GQA: o reads dim.
  CHECK(linear_desc(LinearId::o).d_in == Width::dim);
  CHECK(width(c, Width::kv_dim) == 16);
}

TEST_CASE("architecture: the layout, names and parameter count follow the description") {
  ModelConfig c = widths();
  c.family = ModelFamily::qwen2;
  const Model model = make_empty_model(c);
  const DecoderLayer& layer = model.layers[1];
  CHECK(layer.linear(LinearId::down).name == "layers.1.mlp.down_proj");
  CHECK(layer.linear(LinearId::k).weight.rows() == 16);
  CHECK(layer.linear(LinearId::up).weight.rows() == 176);
  CHECK(layer.linear(LinearId::v).bias.size() == 16);
  CHECK(layer.linear(LinearId::o).bias.size() == 0);
  CHECK(&layer.norm(NormId::ffn) == &layer.ffn_norm);
  // Parameters by hand: embed (tied) + 2 layers × (2 norms + q, k, v, o, gate, up, down + q/k/v biases) + final norm.
  const std::int64_t per_layer = 2 * 64 + 64 * 64 + 2 * 16 * 64 + 64 * 64 + 3 * 176 * 64 + (64 + 16 + 16);
  CHECK(c.parameter_count() == 50 * 64 + 2 * per_layer + 64);

  CHECK(kHfNames.layer_tensor(3, linear_desc(LinearId::q).name, "bias") == "model.layers.3.self_attn.q_proj.bias");
  CHECK(kGgufNames.layer_tensor(3, norm_desc(NormId::attn).gguf, "weight") == "blk.3.attn_norm.weight");
  CHECK(std::string(linear_desc(LinearId::down).llama2c) == "w2");  // llama2.c: w1 gate, w2 down, w3 up
}

TEST_CASE("architecture: families are found by the names checkpoints give them, and unknown ones are not") {
  REQUIRE(find_hf_family("qwen2"));
  CHECK(find_hf_family("qwen2")->id == ModelFamily::qwen2);
  CHECK(find_hf_family("mistral")->id == ModelFamily::mistral);
  CHECK(find_hf_family("gemma") == nullptr);
  CHECK(find_gguf_family("llama")->id == ModelFamily::llama);
  CHECK(find_gguf_family("qwen2")->gguf_interleaved_rope == false);
  CHECK(find_gguf_family("mistral") == nullptr);  // llama.cpp writes Mistral as "llama"
  CHECK(supported_hf_model_types() == "llama (LLaMA-1/2/3/3.1/3.2, SmolLM2), mistral (Mistral) or qwen2 (Qwen2/2.5)");
  for (const FamilyDesc& family : model_families()) CHECK(&family_desc(family.id) == &family);
}
