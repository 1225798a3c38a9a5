// GGUF checkpoints: <arch>.* metadata → ModelConfig, llama.cpp tensor names (core/model/architecture.h) →
// serq::Model, with shape checks.
#include "core/model/load_gguf.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <limits>
#include <set>

#include "core/common/error.h"
#include "core/model/memory.h"

namespace serq {
namespace {

int positive_int(const GgufFile& file, const std::string& key) {
  const std::int64_t v = file.get_int(key);
  SERQ_CHECK(v > 0 && v <= std::numeric_limits<int>::max(), "{}: metadata '{}' = {} must be a positive integer",
             file.path().string(), key, v);
  return static_cast<int>(v);
}

int token_id(const GgufFile& file, const std::string& key, int fallback) {
  if (!file.has(key)) return fallback;
  const std::int64_t v = file.get_int(key);
  SERQ_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), "{}: metadata '{}' = {} is not a token id",
             file.path().string(), key, v);
  return static_cast<int>(v);
}

// Reads each tensor once after checking its shape, and remembers which were read, so that an unread tensor
// (a bias, an extra projection) is reported instead of silently ignored.
class TensorReader {
 public:
  explicit TensorReader(const GgufFile& file) : file_(file) {}

  // `ne` in GGUF order: {row length, rows}. A weight (d_out × d_in) is ne = {d_in, d_out}.
  void read(const std::string& name, const std::vector<std::int64_t>& ne, float* out) {
    const GgufTensorInfo* info = file_.find(name);
    SERQ_CHECK(info, "{}: tensor '{}' is missing (incomplete conversion, or not a LLaMA model? re-convert it)",
               file_.path().string(), name);
    SERQ_CHECK(info->ne == ne, "{}: tensor '{}' has ne [{}] but the metadata implies [{}] (the metadata and the "
               "weights disagree; re-convert the model)", file_.path().string(), name, fmt::join(info->ne, ", "),
               fmt::join(ne, ", "));
    file_.read_f32(name, {out, static_cast<std::size_t>(info->numel())});
    types_.insert(ggml_type_traits(info->type).name);
    used_.insert(name);
  }

  void check_all_used() const {
    for (const GgufTensorInfo& info : file_.tensors()) {
      SERQ_CHECK(used_.contains(info.name), "{}: tensor '{}' is not part of a LLaMA model as serq reads it (biases, "
                 "RoPE frequency factors or another architecture?)", file_.path().string(), info.name);
    }
  }

  std::string types() const { return fmt::format("{}", fmt::join(types_, "+")); }

 private:
  const GgufFile& file_;
  std::set<std::string> used_;
  std::set<std::string> types_;
};

}  // namespace

ModelConfig read_gguf_config(const GgufFile& file) {
  const std::string where = file.path().string();
  const std::string& arch = file.get_string("general.architecture");
  const FamilyDesc* family = find_gguf_family(arch);
  SERQ_CHECK(family, "{}: general.architecture is '{}'; serq reads LLaMA-architecture GGUF files: {}", where, arch,
             supported_gguf_archs());
  const std::string a = arch + ".";

  ModelConfig c;
  c.family = family->id;
  c.n_layers = positive_int(file, a + "block_count");
  c.dim = positive_int(file, a + "embedding_length");
  c.hidden_dim = positive_int(file, a + "feed_forward_length");
  c.n_heads = positive_int(file, a + "attention.head_count");
  c.n_kv_heads = file.has(a + "attention.head_count_kv") ? positive_int(file, a + "attention.head_count_kv")
                                                         : c.n_heads;
  c.max_seq_len = positive_int(file, a + "context_length");
  c.rms_norm_eps = static_cast<float>(file.get_float(a + "attention.layer_norm_rms_epsilon"));
  SERQ_CHECK(c.rms_norm_eps > 0, "{}: metadata '{}attention.layer_norm_rms_epsilon' must be positive", where, a);
  if (file.has(a + "rope.freq_base")) c.rope_theta = static_cast<float>(file.get_float(a + "rope.freq_base"));
  SERQ_CHECK(c.rope_theta > 0, "{}: metadata '{}rope.freq_base' must be positive", where, a);
  if (file.has(a + "rope.scaling.type")) {
    const std::string& scaling = file.get_string(a + "rope.scaling.type");
    SERQ_CHECK(scaling == "none", "{}: metadata '{}rope.scaling.type' is '{}'; RoPE scaling is not supported yet "
               "(use a model without it)", where, a, scaling);
  }

  if (file.has(a + "vocab_size")) {
    c.vocab_size = positive_int(file, a + "vocab_size");
  } else {
    const GgufTensorInfo* embed = file.find(kGgufNames.embed);
    SERQ_CHECK(embed && embed->ne.size() == 2, "{}: neither metadata '{}vocab_size' nor a 2-D tensor "
               "'{}' gives the vocabulary size (re-convert the model)", where, a, kGgufNames.embed);
    c.vocab_size = static_cast<int>(embed->ne[1]);
  }
  c.tied_embeddings = file.find(kGgufNames.head) == nullptr;
  c.rope_layout = family->gguf_interleaved_rope ? RopeLayout::interleaved : RopeLayout::half;
  c.bos_id = token_id(file, "tokenizer.ggml.bos_token_id", c.bos_id);
  c.eos_id = token_id(file, "tokenizer.ggml.eos_token_id", c.eos_id);

  SERQ_CHECK(c.dim % c.n_heads == 0 && c.n_heads % c.n_kv_heads == 0 && c.head_dim() % 2 == 0,
             "{}: embedding_length {}, head_count {} and head_count_kv {} are inconsistent (dim must split into "
             "heads of even size, and the heads into KV groups)", where, c.dim, c.n_heads, c.n_kv_heads);
  if (file.has(a + "rope.dimension_count")) {
    const std::int64_t rotary = file.get_int(a + "rope.dimension_count");
    SERQ_CHECK(rotary == c.head_dim(), "{}: metadata '{}rope.dimension_count' = {} rotates part of each {}-wide "
               "head; serq supports full rotary embeddings only", where, a, rotary, c.head_dim());
  }
  return c;
}

Model load_gguf(const std::filesystem::path& path) {
  const GgufFile file = GgufFile::open(path);
  const ModelConfig config = read_gguf_config(file);
  check_fits(model_bytes(config), "loading " + path.string());
  Model model = make_empty_model(config);
  TensorReader reader(file);

  const std::int64_t d = config.dim, vocab = config.vocab_size;
  reader.read(kGgufNames.embed, {d, vocab}, model.embed.data());
  for (int i = 0; i < config.n_layers; ++i) {
    DecoderLayer& layer = model.layers[i];
    for (const NormDesc& n : layer_norms()) {
      reader.read(kGgufNames.layer_tensor(i, n.gguf, "weight"), {d}, layer.norm(n.id).data());
    }
    for (const LinearDesc& l : layer_linears()) {
      QuantLinear& linear = layer.linear(l.id);
      const std::int64_t d_out = width(config, l.d_out);
      reader.read(kGgufNames.layer_tensor(i, l.gguf, "weight"), {width(config, l.d_in), d_out}, linear.weight.data());
      if (config.has_bias(l.id)) reader.read(kGgufNames.layer_tensor(i, l.gguf, "bias"), {d_out}, linear.bias.data());
    }
  }
  reader.read(kGgufNames.final_norm, {d}, model.final_norm.data());
  if (config.tied_embeddings) {
    model.lm_head.weight = model.embed;
  } else {
    reader.read(kGgufNames.head, {d, vocab}, model.lm_head.weight.data());
  }
  reader.check_all_used();

  model.source = fmt::format("gguf-v{} {} {}", file.version(), reader.types(), path.string());
  return model;
}

}  // namespace serq
