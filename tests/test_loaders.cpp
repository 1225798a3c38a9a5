// Tests of model loading: llama2.c .bin and Hugging Face directories give the same weights (q/k rows permuted
// for rotate-half RoPE), BF16 is F32 rounded, config.json rules, dispatch by path, and the memory check.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/common/error.h"
#include "core/model/forward.h"
#include "core/model/loader.h"
#include "core/model/memory.h"
#include "tests/assets.h"

using Catch::Matchers::Contains;
using nlohmann::json;
namespace fs = std::filesystem;
using serq::test::read_bytes;
using serq::test::write_bytes;

namespace {

const fs::path kBin = "models/stories260K/stories260K.bin";
const fs::path kHfDir = "models/stories260K-hf";
const fs::path kHfBf16Dir = "models/stories260K-hf-bf16";

// A scratch copy of stories260K-hf whose config.json went through `edit` (the weights are linked, not copied).
fs::path hf_with_config(const std::string& name, const std::function<void(json&)>& edit) {
  const fs::path dir = serq::test::scratch_dir(name);
  json config = json::parse(read_bytes(serq::test::asset(kHfDir / "config.json")));
  edit(config);
  write_bytes(dir / "config.json", config.dump());
  fs::create_symlink(serq::test::asset(kHfDir / "model.safetensors"), dir / "model.safetensors");
  return dir;
}

// Sets an environment variable for one scope, restoring the previous value (or its absence) afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

void require_stories_config(const serq::ModelConfig& c) {
  CHECK(c.dim == 64);
  CHECK(c.hidden_dim == 172);
  CHECK(c.n_layers == 5);
  CHECK(c.n_heads == 8);
  CHECK(c.n_kv_heads == 4);
  CHECK(c.vocab_size == 512);
  CHECK(c.max_seq_len == 512);
  CHECK(c.tied_embeddings);
  CHECK(c.rms_norm_eps == 1e-5f);
  CHECK(c.rope_theta == 10000.0f);
  CHECK(c.bos_id == 1);
  CHECK(c.eos_id == 2);
}

// HF's rotate-half permutation of a q/k weight: within each head, HF row i (i < hd/2) is .bin row 2i and
// HF row hd/2 + i is .bin row 2i + 1.
serq::Matrix permute_to_half(const serq::Matrix& interleaved, int head_dim) {
  serq::Matrix out(interleaved.rows(), interleaved.cols());
  for (int head = 0; head * head_dim < interleaved.rows(); ++head) {
    const int base = head * head_dim;
    for (int i = 0; i < head_dim / 2; ++i) {
      out.row(base + i) = interleaved.row(base + 2 * i);
      out.row(base + head_dim / 2 + i) = interleaved.row(base + 2 * i + 1);
    }
  }
  return out;
}

// float32 → bf16 → float32 with round-to-nearest-even (the values are finite).
float round_to_bf16(float x) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(x);
  const std::uint32_t rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000u;
  return std::bit_cast<float>(rounded);
}

}  // namespace

TEST_CASE("llama2.c stories260K.bin loads with its documented config", "[loaders]") {
  const serq::Model model = serq::load_model(serq::test::asset(kBin));
  require_stories_config(model.config);
  CHECK(model.config.rope_layout == serq::RopeLayout::interleaved);
  CHECK(model.source == "llama2c-v0 " + serq::test::asset(kBin).string());
  CHECK(model.lm_head.weight == model.embed);
  CHECK(model.embed.norm() > 0);
  CHECK(model.final_norm.norm() > 0);
}

TEST_CASE("stories260K-hf loads with the same config and the .bin weights (q/k permuted per head)", "[loaders]") {
  const serq::Model bin = serq::load_model(serq::test::asset(kBin));
  const serq::Model hf = serq::load_model(serq::test::asset(kHfDir));
  require_stories_config(hf.config);
  CHECK(hf.config.rope_layout == serq::RopeLayout::half);
  CHECK(hf.source == "hf-safetensors F32 " + serq::test::asset(kHfDir).string());

  REQUIRE(hf.embed == bin.embed);
  REQUIRE(hf.final_norm == bin.final_norm);
  REQUIRE(hf.lm_head.weight == bin.lm_head.weight);
  const int hd = hf.config.head_dim();
  for (int i = 0; i < hf.config.n_layers; ++i) {
    INFO("layer " << i);
    const serq::DecoderLayer &h = hf.layers[i], &b = bin.layers[i];
    REQUIRE(h.attn_norm == b.attn_norm);
    REQUIRE(h.ffn_norm == b.ffn_norm);
    REQUIRE(h.q_proj.weight == permute_to_half(b.q_proj.weight, hd));
    REQUIRE(h.k_proj.weight == permute_to_half(b.k_proj.weight, hd));
    REQUIRE(h.q_proj.weight != b.q_proj.weight);  // the permutation is real, so the check above means something
    REQUIRE(h.v_proj.weight == b.v_proj.weight);
    REQUIRE(h.o_proj.weight == b.o_proj.weight);
    REQUIRE(h.gate_proj.weight == b.gate_proj.weight);
    REQUIRE(h.up_proj.weight == b.up_proj.weight);
    REQUIRE(h.down_proj.weight == b.down_proj.weight);
  }
}

TEST_CASE("stories260K-hf-bf16 holds the F32 weights rounded to nearest-even bf16", "[loaders]") {
  const serq::Model f32 = serq::load_model(serq::test::asset(kHfDir));
  const serq::Model bf16 = serq::load_model(serq::test::asset(kHfBf16Dir));
  require_stories_config(bf16.config);
  CHECK_THAT(bf16.source, Contains("hf-safetensors BF16"));

  auto require_rounded = [](const auto& low, const auto& full) {
    REQUIRE(low.size() == full.size());
    for (Eigen::Index i = 0; i < full.size(); ++i) {
      REQUIRE(low.data()[i] == round_to_bf16(full.data()[i]));
      REQUIRE(std::abs(low.data()[i] - full.data()[i]) <= std::ldexp(std::abs(full.data()[i]), -8));
    }
  };
  require_rounded(bf16.embed, f32.embed);
  require_rounded(bf16.final_norm, f32.final_norm);
  const auto lb = bf16.linears(), lf = f32.linears();
  for (std::size_t i = 0; i + 1 < lf.size(); ++i) {  // the linears stay BF16 as stored, widened when they run
    REQUIRE(lb[i]->weight.size() == 0);
    REQUIRE(lb[i]->packed.storage() == serq::PackedWeight::Storage::bf16);
    REQUIRE(lb[i]->storage_bits() == 16.0 * lf[i]->weight.size());
    require_rounded(lb[i]->packed.dequantize(), lf[i]->weight);
  }
  require_rounded(bf16.lm_head.weight, f32.lm_head.weight);  // tied: a float copy of the embedding
  for (std::size_t i = 0; i < f32.layers.size(); ++i) {
    require_rounded(bf16.layers[i].attn_norm, f32.layers[i].attn_norm);
    require_rounded(bf16.layers[i].ffn_norm, f32.layers[i].ffn_norm);
  }
  REQUIRE(bf16.embed != f32.embed);  // BF16 really is coarser
}

TEST_CASE("read_hf_config applies the Hugging Face defaults to optional fields", "[loaders]") {
  const fs::path dir = serq::test::scratch_dir("ld_defaults");
  write_bytes(dir / "config.json", R"({"hidden_size": 128, "intermediate_size": 344, "num_hidden_layers": 2,
      "num_attention_heads": 4, "vocab_size": 1000, "rms_norm_eps": 1e-6, "max_position_embeddings": 2048,
      "eos_token_id": [7, 8]})");
  const serq::ModelConfig c = serq::read_hf_config(dir / "config.json");
  CHECK(c.n_kv_heads == 4);
  CHECK(c.rope_theta == 10000.0f);
  CHECK_FALSE(c.tied_embeddings);
  CHECK(c.bos_id == 1);
  CHECK(c.eos_id == 7);
  CHECK(c.rms_norm_eps == 1e-6f);
  CHECK(c.rope_layout == serq::RopeLayout::half);
}

TEST_CASE("a LLaMA-3.1 config.json gets llama3 RoPE scaling, and its frequencies match values worked by hand",
          "[loaders]") {
  const fs::path dir = serq::test::scratch_dir("ld_llama31");
  // LLaMA-3.1-8B's config.json fields that serq reads.
  write_bytes(dir / "config.json", R"({"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
      "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
      "rms_norm_eps": 1e-5, "max_position_embeddings": 131072, "rope_theta": 500000.0, "hidden_act": "silu",
      "tie_word_embeddings": false, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
      "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 8192, "rope_type": "llama3"}})");
  const serq::ModelConfig c = serq::read_hf_config(dir / "config.json");
  REQUIRE(c.rope_scaling.type == serq::RopeScaling::Type::llama3);
  CHECK(c.rope_scaling.factor == 8.0f);
  CHECK(c.rope_scaling.original_max_position_embeddings == 8192);
  CHECK(c.n_kv_heads == 8);
  CHECK(c.eos_id == 128001);
  const std::vector<float> f = c.rope_frequencies();
  REQUIRE(f.size() == 64);
  // Pair i has base frequency 500000^(−2i/128) and wavelength 2π/f; worked in double:
  // i = 0: f = 1, wavelength 6.28 < 8192/4 = 2048: high frequency, kept.
  CHECK(f[0] == 1.0f);
  // i = 30: f = 0.0021311195, wavelength 2948.3 in [2048, 8192]: smooth = (8192/2948.3 − 1)/(4 − 1) = 0.592849,
  // f ← (1 − smooth)·f/8 + smooth·f = 0.0013718936.
  CHECK(f[30] == Approx(0.0013718935677611381).epsilon(2e-6));
  // i = 40: f = 2.742481757e-4, wavelength 22910.6 > 8192: low frequency, f/8 = 3.428102196e-5.
  CHECK(f[40] == Approx(3.428102195952591e-05).epsilon(2e-6));
  // i = 63: f = 2.455140791e-6, f/8 = 3.068925989e-7.
  CHECK(f[63] == Approx(3.068925988914511e-07).epsilon(2e-6));
  // Without scaling the same config keeps every base frequency.
  serq::ModelConfig plain = c;
  plain.rope_scaling = {};
  CHECK(plain.rope_frequencies()[40] == Approx(2.742481756762073e-04).epsilon(2e-6));
  CHECK(plain.rope_frequencies()[30] == Approx(0.0021311195369119653).epsilon(2e-6));
}

TEST_CASE("config.json missing a required field is an error naming the file and field", "[loaders][bad-input]") {
  const fs::path dir = hf_with_config("ld_nofield", [](json& c) { c.erase("hidden_size"); });
  REQUIRE_THROWS_WITH(serq::load_model(dir), Contains((dir / "config.json").string()) && Contains("'hidden_size'"));
}

TEST_CASE("config.json with unsupported architecture settings is refused", "[loaders][bad-input]") {
  SECTION("rope_scaling of a type serq does not implement") {
    const fs::path dir = hf_with_config("ld_scaling", [](json& c) {
      c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
    });
    REQUIRE_THROWS_WITH(serq::load_model(dir), Contains("rope_scaling of type 'yarn' is not supported"));
  }
  SECTION("llama3 rope_scaling without one of its fields") {
    const fs::path dir = hf_with_config("ld_scaling_field", [](json& c) {
      c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
    });
    REQUIRE_THROWS_WITH(serq::load_model(dir), Contains("rope_scaling") && Contains("'low_freq_factor'"));
  }
  SECTION("model_type") {
    const fs::path dir = hf_with_config("ld_type", [](json& c) { c["model_type"] = "gpt2"; });
    REQUIRE_THROWS_WITH(serq::load_model(dir), Contains("model_type 'gpt2'"));
  }
  SECTION("heads that do not divide") {
    const fs::path dir = hf_with_config("ld_heads", [](json& c) { c["num_key_value_heads"] = 3; });
    REQUIRE_THROWS_WITH(serq::load_model(dir), Contains("num_key_value_heads 3"));
  }
}

TEST_CASE("a missing model path is an error naming model.path", "[loaders][bad-input]") {
  const fs::path path = serq::test::scratch_dir("ld_nopath") / "nothing-here";
  REQUIRE_THROWS_WITH(serq::load_model(path), Contains("model.path: " + path.string() + " does not exist"));
}

TEST_CASE("a path that is neither a directory nor a .bin file is an error saying what is accepted",
          "[loaders][bad-input]") {
  REQUIRE_THROWS_WITH(serq::load_model(serq::test::asset(kHfDir / "config.json")),
                      Contains("model.path") && Contains("Hugging Face model directory") && Contains(".bin"));
}

TEST_CASE("a llama2.c .bin of the wrong size is an error with both sizes", "[loaders][bad-input]") {
  const std::string bytes = read_bytes(serq::test::asset(kBin));
  REQUIRE(bytes.size() == 1056540);
  const fs::path dir = serq::test::scratch_dir("ld_bin_size");
  write_bytes(dir / "cut.bin", bytes.substr(0, bytes.size() - 4096));
  REQUIRE_THROWS_WITH(serq::load_model(dir / "cut.bin"),
                      Contains("1056540 bytes") && Contains("has 1052444") && Contains("truncated"));
  write_bytes(dir / "long.bin", bytes + "junk");
  REQUIRE_THROWS_WITH(serq::load_model(dir / "long.bin"), Contains("has 1056544") && Contains("trailing bytes"));
  write_bytes(dir / "tiny.bin", bytes.substr(0, 20));
  REQUIRE_THROWS_WITH(serq::load_model(dir / "tiny.bin"), Contains("20 bytes"));
}

TEST_CASE("a NaN in a llama2.c weight is an error naming the array and layer", "[loaders][bad-input]") {
  std::string bytes = read_bytes(serq::test::asset(kBin));
  // wq of layer 1 starts after the header, the embedding (512×64), rms_att (5×64) and wq of layer 0 (64×64).
  const std::size_t offset = 28 + 4 * (512 * 64 + 5 * 64 + 64 * 64 + 10);
  const float inf = INFINITY;
  std::memcpy(bytes.data() + offset, &inf, 4);
  const fs::path path = serq::test::scratch_dir("ld_bin_nan") / "nan.bin";
  write_bytes(path, bytes);
  REQUIRE_THROWS_WITH(serq::load_model(path), Contains("wq[1]") && Contains("inf at index 10"));
}

TEST_CASE("model_bytes counts float32 weights with a tied head held twice", "[loaders][memory]") {
  const serq::ModelConfig c = serq::load_model(serq::test::asset(kBin)).config;
  // embed + head 2·512·64, per layer 2·64 + 2·64·64 + 2·32·64 + 3·172·64, final norm 64.
  CHECK(serq::model_bytes(c) == 4 * (2 * 512 * 64 + 5 * (2 * 64 + 2 * 64 * 64 + 2 * 32 * 64 + 3 * 172 * 64) + 64));
}

TEST_CASE("model_bytes counts linears read in place from a file mapping as nothing", "[loaders][memory]") {
  serq::ModelConfig c = serq::load_model(serq::test::asset(kHfBf16Dir)).config;
  CHECK(c.checkpoint_linear_bytes == 2);  // config.json torch_dtype bfloat16
  CHECK(serq::load_model(serq::test::asset(kHfDir)).config.checkpoint_linear_bytes == 4);
  // Tied: embed and its float copy in lm_head 2·512·64, norms 5·2·64 + 64; the decoder's linears cost nothing.
  CHECK(serq::model_bytes(c, 0) == 4 * (2 * 512 * 64 + 5 * 2 * 64 + 64));
  c.tied_embeddings = false;  // an untied head is stored like the other linears
  CHECK(serq::model_bytes(c, 0) == 4 * (512 * 64 + 5 * 2 * 64 + 64));
  CHECK(serq::model_bytes(c, 2) == serq::model_bytes(c, 0) + 2 * (512 * 64 + 5 * (2 * 64 * 64 + 2 * 32 * 64 +
                                                                                   3 * 172 * 64)));
}

TEST_CASE("BF16 weights read in place give the same logits after their pages are given back", "[loaders][memory]") {
  serq::Model model = serq::load_model(serq::test::asset(kHfBf16Dir));
  const std::vector<int> tokens = {1, 72, 101, 108, 108, 111, 44, 32, 119, 111};
  const serq::Matrix before = serq::forward_logits(model, serq::forward_hidden(model, tokens, 1, 10));
  for (serq::DecoderLayer& layer : model.layers) serq::release_layer_pages(layer);
  REQUIRE(serq::forward_logits(model, serq::forward_hidden(model, tokens, 1, 10)) == before);
  // A layer widened, then released, reads its values from the mapping again.
  serq::restore_layer_weights(model.layers[2]);
  REQUIRE(model.layers[2].q_proj.weight.size() > 0);
  REQUIRE(model.layers[2].q_proj.packed.empty());  // widened full precision drops the 16-bit form
  serq::release_layer_weights(model.layers[3]);
  REQUIRE(model.layers[3].q_proj.packed.storage() == serq::PackedWeight::Storage::bf16);
  REQUIRE(serq::forward_logits(model, serq::forward_hidden(model, tokens, 1, 10)) == before);
}

TEST_CASE("available memory is positive and SERQ_MEMORY_LIMIT_MB overrides it", "[loaders][memory]") {
  CHECK(serq::available_memory_bytes() > 0);
  {
    const ScopedEnv limit("SERQ_MEMORY_LIMIT_MB", "3");
    CHECK(serq::available_memory_bytes() == 3 << 20);
  }
  const ScopedEnv bad("SERQ_MEMORY_LIMIT_MB", "lots");
  REQUIRE_THROWS_WITH(serq::available_memory_bytes(), Contains("SERQ_MEMORY_LIMIT_MB='lots'"));
}

TEST_CASE("a model that does not fit is refused before allocation", "[loaders][memory][bad-input]") {
  const ScopedEnv limit("SERQ_MEMORY_LIMIT_MB", "1");
  for (const fs::path& model : {kBin, kHfDir}) {
    REQUIRE_THROWS_WITH(serq::load_model(serq::test::asset(model)),
                        Contains("needs 0.00117 GB of RAM as float32") && Contains("0.00105 GB is available"));
  }
  // A LLaMA-2-70B config.json with no weights at all: the refusal comes from the config alone, before any
  // weight file is opened or any memory allocated.
  const fs::path dir = serq::test::scratch_dir("ld_70b");
  write_bytes(dir / "config.json", R"({"model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672,
      "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 32000,
      "rms_norm_eps": 1e-5, "max_position_embeddings": 4096})");
  REQUIRE_THROWS_WITH(serq::load_model(dir), Contains("loading " + dir.string() + " needs 275.9 GB"));
}
