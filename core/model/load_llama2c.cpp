// llama2.c legacy (v0) checkpoints: header validation, an exact file-size check, and the weights in file order.
#include "core/model/load_llama2c.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <span>

#include "core/common/error.h"
#include "core/model/memory.h"

namespace serq {
namespace {

constexpr std::int32_t kVersionedMagic = 0x616b3432;  // "ak42": llama2.c export versions 1 and 2

// Sequential float32 reads from the checkpoint, each checked for NaN/Inf.
class WeightReader {
 public:
  WeightReader(std::ifstream& in, std::string where) : in_(in), where_(std::move(where)) {}

  void read(std::span<float> out, const std::string& what) {
    in_.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size_bytes()));
    SERQ_CHECK(in_, "{}: read error in {} (was the file changed while loading?)", where_, what);
    const auto bad = std::ranges::find_if(out, [](float v) { return !std::isfinite(v); });
    SERQ_CHECK(bad == out.end(), "{}: {} holds {} at index {} (a corrupted checkpoint; re-export it)", where_, what,
               *bad, bad - out.begin());
  }

  void skip(std::int64_t floats) { in_.seekg(floats * static_cast<std::int64_t>(sizeof(float)), std::ios::cur); }

 private:
  std::ifstream& in_;
  std::string where_;
};

std::span<float> values(Matrix& m) { return {m.data(), static_cast<std::size_t>(m.size())}; }
std::span<float> values(Vector& v) { return {v.data(), static_cast<std::size_t>(v.size())}; }

}  // namespace

Model load_llama2c(const std::filesystem::path& file) {
  const std::string where = file.string();
  std::ifstream in(file, std::ios::binary);
  SERQ_CHECK(in, "{}: cannot open (check model.path)", where);
  const auto file_size = static_cast<std::int64_t>(std::filesystem::file_size(file));

  std::array<std::int32_t, 7> header{};
  constexpr auto kHeaderBytes = static_cast<std::int64_t>(sizeof(header));
  SERQ_CHECK(file_size >= kHeaderBytes, "{}: the file has {} bytes, fewer than the {}-byte llama2.c header "
             "(truncated? re-fetch it)", where, file_size, kHeaderBytes);
  in.read(reinterpret_cast<char*>(header.data()), kHeaderBytes);
  SERQ_CHECK(in, "{}: cannot read the header", where);
  SERQ_CHECK(header[0] != kVersionedMagic, "{}: a versioned llama2.c export (magic 'ak42'); serq reads the legacy "
             "version-0 format: re-export with export.py --version 0", where);

  const auto [dim, hidden, layers, heads, kv_heads, signed_vocab, seq_len] = header;
  constexpr std::array<const char*, 7> kNames = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                                 "n_kv_heads", "vocab_size", "seq_len"};
  for (std::size_t i = 0; i < header.size(); ++i) {
    const bool untied_vocab = i == 5 && header[i] < 0 && header[i] != INT32_MIN;  // negative: untied classifier
    SERQ_CHECK(header[i] > 0 || untied_vocab, "{}: header field {} = {} is invalid (not a llama2.c version-0 "
               "checkpoint?)", where, kNames[i], header[i]);
  }
  SERQ_CHECK(dim % heads == 0 && heads % kv_heads == 0 && (dim / heads) % 2 == 0,
             "{}: header dims dim={} n_heads={} n_kv_heads={} are inconsistent (dim must split into heads of even "
             "size, and n_heads into n_kv_heads groups)", where, dim, heads, kv_heads);

  ModelConfig config;
  config.dim = dim;
  config.hidden_dim = hidden;
  config.n_layers = layers;
  config.n_heads = heads;
  config.n_kv_heads = kv_heads;
  config.vocab_size = std::abs(signed_vocab);
  config.max_seq_len = seq_len;
  config.tied_embeddings = signed_vocab > 0;
  config.rms_norm_eps = 1e-5f;
  config.rope_theta = 10000.0f;
  config.rope_layout = RopeLayout::interleaved;
  config.bos_id = 1;
  config.eos_id = 2;

  // Sizes in floats; 128-bit so that a garbage header cannot overflow before the comparison.
  using Big = __int128;
  const Big d = dim, h = hidden, n = layers, kv = config.kv_dim(), v = config.vocab_size;
  const Big freq_floats = Big(seq_len) * (dim / heads);  // freq_cis_real and freq_cis_imag, seq_len × head_size/2
  const Big floats = v * d + n * (2 * d + 2 * d * d + 2 * kv * d + 3 * h * d) + d + freq_floats +
                     (config.tied_embeddings ? 0 : v * d);
  const Big expected = kHeaderBytes + 4 * floats;
  SERQ_CHECK(expected == file_size, "{}: the header implies {} bytes but the file has {} ({}; re-fetch or re-export "
             "it)", where, expected, file_size,
             expected > file_size ? "truncated" : "trailing bytes");

  check_fits(model_bytes(config), "loading " + where);
  Model model = make_empty_model(config);
  WeightReader reader(in, where);
  reader.read(values(model.embed), "token_embedding_table");
  for (const Llama2cTensor& tensor : llama2c_layer_order()) {  // each tensor for every layer in turn
    const char* what = tensor.norm ? norm_desc(*tensor.norm).llama2c : linear_desc(*tensor.linear).llama2c;
    for (int i = 0; i < layers; ++i) {
      DecoderLayer& layer = model.layers[i];
      const std::span<float> out =
          tensor.norm ? values(layer.norm(*tensor.norm)) : values(layer.linear(*tensor.linear).weight);
      reader.read(out, fmt::format("{}[{}]", what, i));
    }
  }
  reader.read(values(model.final_norm), "rms_final_weight");
  reader.skip(static_cast<std::int64_t>(freq_floats));  // RoPE tables: serq computes them from rope_theta
  if (config.tied_embeddings) {
    model.lm_head.weight = model.embed;
  } else {
    reader.read(values(model.lm_head.weight), "wcls");
  }

  model.source = fmt::format("llama2c-v0 {}", where);
  return model;
}

}  // namespace serq
