// Quantized checkpoints out and back in: SHA-256 against FIPS 180 vectors, the safetensors and GGUF writers read back
// by serq's readers, serq-run --export then model.path: DIR giving the same perplexity bit for bit (stories260K
// for every kind of layer, SmolLM2 for the real model), a damaged export or an existing directory refused, and the
// weight-only GGUF of an RTN model read back to the exported values and evaluated to the same perplexity; a reloaded
// export with eval.kld_reference gives the exporting run's KL divergence.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "core/common/error.h"
#include "core/common/sha256.h"
#include "core/formats/gguf.h"
#include "core/formats/gguf_writer.h"
#include "core/formats/safetensors.h"
#include "core/formats/safetensors_writer.h"
#include "core/model/architecture.h"
#include "core/model/export.h"
#include "tests/support/serq_run.h"

using namespace serq;

namespace {

// serq-run on `yaml` with extra arguments; the first JSON line's ppl and run_id.
nlohmann::json run_json(const std::filesystem::path& dir, const std::string& yaml, const std::string& args) {
  const auto config = test::write_config(dir, yaml);
  const test::CliOutput out = test::serq_run(config.string() + " --json --quiet " + args, dir);
  INFO("stderr: " << out.err);
  REQUIRE(out.status == 0);
  return nlohmann::json::parse(out.out.substr(0, out.out.find('\n')));
}

// The stories260K run of kSmallRun with these quant keys (YAML lines under quant:).
std::string stories(const std::string& quant) {
  std::string yaml = test::kSmallRun;
  yaml.replace(yaml.find("  method: rtn\n"), 14, quant);
  return yaml + "calib:\n  dataset: tinystories-calib\n  samples: 8\n  seq_len: 256\n";
}

// A SmolLM2 run of these quant lines, on `windows` windows of 256 tokens of WikiText-2 test.
std::string smollm2(const std::string& quant, int windows) {
  return "experiment:\n  name: export_smollm2\nmodel:\n  path: "
         "${SERQ_ASSETS}/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf\nquant:\n" + quant +
         fmt::format("eval:\n  dataset: wikitext2\n  seq_len: 256\n  max_windows: {}\n  layer_error_samples: 0\n",
                     windows);
}

// The same run on `model` instead, as it is (quant.method: fp).
std::string smollm2_as_is(const std::filesystem::path& model, int windows) {
  std::string yaml = smollm2("  method: fp\n", windows);
  yaml.replace(yaml.find("${SERQ_ASSETS}/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"), 66, model.string());
  return yaml;
}

std::string reload(const std::filesystem::path& exported) {
  std::string yaml = test::kSmallRun;
  yaml.replace(yaml.find("${SERQ_ASSETS}/models/stories260K-hf"), 36, exported.string());
  yaml.replace(yaml.find("  method: rtn\n"), 14, "  method: fp\n");
  return yaml;
}

}  // namespace

TEST_CASE("SHA-256 gives the FIPS 180 example digests, in one piece or many") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 pieces;
  const std::string million(1000000, 'a');
  for (std::size_t i = 0; i < million.size(); i += 999) pieces.update(million.substr(i, 999));
  CHECK(pieces.hex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  const auto file = test::scratch_dir("sha256") / "abc.txt";
  test::write_bytes(file, "abc");
  CHECK(sha256_of_file(file) == sha256_hex("abc"));
}

TEST_CASE("safetensors and GGUF files written by serq read back as written") {
  const auto dir = test::scratch_dir("writers");
  SafetensorsWriter st;
  const std::vector<float> f = {1.5f, -2.0f, 0.25f, 3.0f, 4.0f, 5.0f};
  const std::vector<std::uint8_t> u = {0, 7, 255};
  const std::vector<int> order = {2, 0, 1};
  st.add("f", DType::F32, {2, 3}, std::span<const float>(f));
  st.add("u", DType::U8, {3}, std::span<const std::uint8_t>(u));
  st.add("order", DType::I32, {3}, std::span<const int>(order));
  st.metadata("format", "test");
  const std::string bytes = st.bytes();
  test::write_bytes(dir / "t.safetensors", bytes);
  std::uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  CHECK((8 + header) % 8 == 0);  // the data region starts aligned
  const SafetensorsFile file = SafetensorsFile::open(dir / "t.safetensors");
  std::vector<float> back(6);
  file.read_f32("f", back);
  CHECK(back == f);
  CHECK(file.find("f")->shape == std::vector<std::int64_t>{2, 3});
  const auto u_bytes = file.bytes("u", DType::U8);
  CHECK(std::vector<std::uint8_t>(reinterpret_cast<const std::uint8_t*>(u_bytes.data()),
                                  reinterpret_cast<const std::uint8_t*>(u_bytes.data()) + 3) == u);
  CHECK_THROWS_WITH(file.bytes("u", DType::I32), Catch::Contains("tensor 'u' is U8, expected I32"));
  std::vector<float> three(3);
  CHECK_THROWS_WITH(file.read_f32("order", three), Catch::Contains("is I32, not a float type"));
  CHECK_THROWS_AS(st.add("f", DType::F32, {1}, std::span<const float>(f).first(1)), Error);

  GgufWriter gguf;
  gguf.set_string("general.architecture", "llama");
  gguf.set_u32("llama.block_count", 3);
  gguf.set_f32("llama.rope.freq_base", 10000.0f);
  gguf.set("tokenizer.ggml.tokens", GgufValue{GgufValueType::array, GgufValueType::string,
                                              std::vector<std::string>{"a", "b", "<s>"}});
  gguf.set("tokenizer.ggml.token_type",
           GgufValue{GgufValueType::array, GgufValueType::i32, std::vector<std::int64_t>{1, 1, 3}});
  std::vector<std::byte> q8(34);  // one Q8_0 block: f16 scale 0.5 (0x3800), then 32 int8 codes
  q8[0] = std::byte{0x00};
  q8[1] = std::byte{0x38};
  for (int i = 0; i < 32; ++i) q8[2 + i] = static_cast<std::byte>(static_cast<std::int8_t>(i - 16));
  gguf.add_tensor("w", {32, 1}, GgmlType::Q8_0, q8);
  gguf.add_tensor("v", {2}, GgmlType::F32, {std::as_bytes(std::span<const float>(f).first(2)).begin(),
                                            std::as_bytes(std::span<const float>(f).first(2)).end()});
  test::write_bytes(dir / "t.gguf", gguf.bytes());
  const GgufFile read = GgufFile::open(dir / "t.gguf");
  CHECK(read.version() == 3);
  CHECK(read.get_string("general.architecture") == "llama");
  CHECK(read.get_int("llama.block_count") == 3);
  CHECK(read.find_value("llama.block_count")->type == GgufValueType::u32);
  CHECK(read.get_float("llama.rope.freq_base") == 10000.0);
  CHECK(read.get_string_array("tokenizer.ggml.tokens") == std::vector<std::string>{"a", "b", "<s>"});
  CHECK(read.get_int_array("tokenizer.ggml.token_type") == std::vector<std::int64_t>{1, 1, 3});
  std::vector<float> w(32), v(2);
  read.read_f32("w", w);
  read.read_f32("v", v);
  for (int i = 0; i < 32; ++i) CHECK(w[static_cast<std::size_t>(i)] == 0.5f * static_cast<float>(i - 16));
  CHECK(v == std::vector<float>{1.5f, -2.0f});
}

TEST_CASE("an export reloads to the same perplexity bit for bit, for every kind of layer serq builds") {
  const auto dir = test::scratch_dir("export_roundtrip");
  struct Case {
    const char* name;
    std::string quant;
  };
  const std::vector<Case> cases = {
      {"rtn", "  method: rtn\n"},
      {"serq", "  method: serq\n  rank: 8\n"},
      {"serq-float-scales-int", "  method: serq\n  rank: 8\n  scale_dtype: float\n"},
      {"l2qer", "  method: l2qer\n  rank: 8\n"},
      {"quarot", "  method: quarot\n"},
      {"smoothquant-asym", "  method: smoothquant\n  w_sym: false\n"},
      {"serq-mxfp4", "  method: serq\n  rank: 8\n  format: mxfp4\n"},
      {"fp", "  method: fp\n"}};
  for (const Case& c : cases) {
    INFO(c.name);
    const auto exported = dir / c.name;
    const std::string kernels = std::string(c.name) == "serq-float-scales-int" ? " --set runtime.kernels=int" : "";
    const nlohmann::json original =
        run_json(dir, stories(c.quant), "--out " + (dir / "results").string() + " --export " + exported.string() + kernels);
    REQUIRE(is_serq_export(exported));
    const nlohmann::json again = run_json(dir, reload(exported), "--out " + (dir / "reloaded").string() + kernels);
    CHECK(again["ppl"].get<double>() == original["ppl"].get<double>());
    CHECK(again["bits_per_weight"].get<double>() == original["bits_per_weight"].get<double>());
  }
}

TEST_CASE("an export of SmolLM2 reloads to the same perplexity bit for bit") {
  const auto dir = test::scratch_dir("export_smollm2");
  const std::string yaml =
      smollm2("  method: serq\n  w_bits: 4\n  a_bits: 4\n  group_size: 64\n  rank: 32\n", 2) +
      "calib:\n  dataset: wikitext2-valid\n  samples: 2\n  seq_len: 256\n";
  const nlohmann::json original =
      run_json(dir, yaml, "--out " + (dir / "results").string() + " --export " + (dir / "serq").string());
  const nlohmann::json again = run_json(dir, smollm2_as_is(dir / "serq", 2), "--out " + (dir / "reloaded").string());
  CHECK(again["ppl"].get<double>() == original["ppl"].get<double>());
  // The tokenizer travels as a GGUF file of the checkpoint's tokenizer.* keys alone.
  CHECK(std::filesystem::file_size(dir / "serq" / "tokenizer.gguf") < 4u << 20);
}

TEST_CASE("a damaged export, an edited manifest or an existing directory is a one-line error") {
  const auto dir = test::scratch_dir("export_damaged");
  const auto exported = dir / "serq";
  run_json(dir, stories("  method: serq\n  rank: 8\n"), "--out " + (dir / "results").string() + " --export " +
                                                            exported.string());
  const auto reload_config = [&](const std::filesystem::path& path) {
    const auto config_dir = dir / "reload";
    std::filesystem::create_directories(config_dir);
    return test::write_config(config_dir, reload(path)).string() + " --out " + (dir / "reloaded").string();
  };
  // The directory exists: refused before any work.
  test::check_one_line_error(test::serq_run(test::write_config(dir, stories("  method: rtn\n")).string() +
                                                " --export " + exported.string(), dir),
                             {exported.string(), "already exists"});

  const std::string weights = test::read_bytes(exported / "model.safetensors");
  const auto copy = [&](const char* name) {
    const auto to = dir / name;
    std::filesystem::remove_all(to);
    std::filesystem::copy(exported, to);
    return to;
  };
  const auto tampered = copy("tampered");
  std::string changed = weights;
  changed[changed.size() / 2] = static_cast<char>(changed[changed.size() / 2] ^ 0x10);
  test::write_bytes(tampered / "model.safetensors", changed);
  test::check_one_line_error(test::serq_run(reload_config(tampered), dir),
                             {(tampered / "model.safetensors").string(), "SHA-256 differs"});

  const auto truncated = copy("truncated");
  test::write_bytes(truncated / "model.safetensors", weights.substr(0, weights.size() - 100));
  test::check_one_line_error(test::serq_run(reload_config(truncated), dir),
                             {(truncated / "model.safetensors").string(), "truncated"});

  const auto edited = copy("edited");
  std::string manifest = test::read_bytes(edited / kExportManifest);
  const std::size_t bits = manifest.find("\"bits\": 4");
  REQUIRE(bits != std::string::npos);
  manifest.replace(bits, 9, "\"bits\": 3");
  test::write_bytes(edited / kExportManifest, manifest);
  test::check_one_line_error(test::serq_run(reload_config(edited), dir),
                             {(edited / kExportManifest).string(), "edited since?", "export the model again"});

  // Quantizing an export again is refused; so are KLD without the checkpoint it was made from, and an export as that
  // checkpoint.
  std::string again = reload(exported);
  again.replace(again.find("  method: fp\n"), 13, "  method: rtn\n");
  test::check_one_line_error(test::serq_run(test::write_config(dir / "reload", again).string(), dir),
                             {"is a serq export, already quantized (serq w4a4 g32 r8)", "quant.method: fp"});
  test::check_one_line_error(test::serq_run(reload_config(exported) + " --set eval.kld=true", dir),
                             {"eval.kld: model.path", "is a serq export", "set eval.kld_reference"});
  test::check_one_line_error(test::serq_run(reload_config(exported) + " --set eval.kld=true --set "
                                            "eval.kld_reference=" + exported.string(), dir),
                             {"eval.kld_reference: " + exported.string() + " is a serq export"});
  test::check_one_line_error(test::serq_run(reload_config(exported) + " --set eval.kld=true --set "
                                            "eval.kld_reference=" + (dir / "none").string(), dir),
                             {"eval.kld_reference: " + (dir / "none").string() + " does not exist"});
  const std::string smollm2 = test::asset("models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf").string();
  test::check_one_line_error(test::serq_run(reload_config(exported) + " --set eval.kld=true --set "
                                            "eval.kld_reference=" + smollm2, dir),
                             {"eval.kld_reference: " + smollm2 + " has a vocabulary of 49152 tokens", "512"});
}

TEST_CASE("a reloaded export with eval.kld_reference gives the exporting run's KL divergence bit for bit") {
  const auto dir = test::scratch_dir("export_kld");
  const auto exported = dir / "serq";
  std::string exporting = stories("  method: serq\n  rank: 8\n");
  exporting.replace(exporting.find("  max_windows: 4\n"), 17, "  max_windows: 4\n  kld: true\n");
  const nlohmann::json original =
      run_json(dir, exporting, "--out " + (dir / "results").string() + " --export " + exported.string());
  std::string yaml = reload(exported) + "  kld: true\n  kld_reference: ${SERQ_ASSETS}/models/stories260K-hf\n";
  const nlohmann::json again = run_json(dir, yaml, "--out " + (dir / "reloaded").string());
  CHECK(again["ppl"].get<double>() == original["ppl"].get<double>());
  REQUIRE(original.contains("kld"));
  CHECK(original["kld"]["mean"].get<double>() > 0.0);
  for (const char* name : {"mean", "median", "p99", "max", "top1_agreement", "dp_mean"}) {
    INFO(name);
    CHECK(again["kld"][name].get<double>() == original["kld"][name].get<double>());
  }
}

TEST_CASE("the weight-only GGUF of an RTN model reads back to the exported values and evaluates the same") {
  const auto dir = test::scratch_dir("export_gguf");
  const std::string yaml = smollm2("  method: rtn\n  a_bits: 16\n  group_size: 32\n", 1);
  for (const auto& [bits, type] : {std::pair{4, GgmlType::Q4_0}, std::pair{8, GgmlType::Q8_0}}) {
    INFO("INT" << bits);
    const auto exported = dir / fmt::format("w{}", bits);
    std::string config = yaml;
    config.replace(config.find("  a_bits: 16\n"), 13, fmt::format("  w_bits: {}\n  a_bits: 16\n", bits));
    const nlohmann::json original =
        run_json(dir, config, "--out " + (dir / "results").string() + " --export " + exported.string());
    REQUIRE(std::filesystem::exists(exported / "model.gguf"));
    const Model model = load_export(exported);
    const GgufFile gguf = GgufFile::open(exported / "model.gguf");
    const QuantLinear& q = model.layers[3].q_proj;
    REQUIRE(gguf.find("blk.3.attn_q.weight"));
    CHECK(gguf.find("blk.3.attn_q.weight")->type == type);
    for (const QuantLinear* layer : const_cast<Model&>(model).linears()) {
      if (layer->name == "lm_head") continue;
      const std::size_t dot = layer->name.find('.', 7);  // "layers.<i>."
      const int index = std::stoi(layer->name.substr(7, dot - 7));
      const std::string kind = layer->name.substr(dot + 1);
      const char* gguf_name = nullptr;
      for (const LinearDesc& l : layer_linears()) {
        if (kind == l.name) gguf_name = l.gguf;
      }
      Matrix values(layer->d_out(), layer->d_in());
      gguf.read_f32(fmt::format("blk.{}.{}.weight", index, gguf_name), {values.data(), static_cast<std::size_t>(values.size())});
      REQUIRE(values == layer->packed.dequantize());
    }
    Matrix embed(model.config.vocab_size, model.config.dim);
    gguf.read_f32("token_embd.weight", {embed.data(), static_cast<std::size_t>(embed.size())});
    CHECK(embed == model.embed);
    CHECK(q.packed.spec().bits == bits);
    // The GGUF as a model of its own: the same perplexity as the quantized run (weights only: activations are FP).
    const std::string from_gguf = smollm2_as_is(exported / "model.gguf", 1);
    const nlohmann::json again = run_json(dir, from_gguf, "--out " + (dir / "from_gguf").string());
    CHECK(again["ppl"].get<double>() == original["ppl"].get<double>());
  }
  // What GGUF cannot hold is named, and no model.gguf is written: SERQ's permutation (and R), or asymmetric blocks
  // whose minimum is not a half.
  for (const auto& [quant, why] : {std::pair<std::string, std::string>{"  method: serq\n  rank: 32\n  a_bits: 16\n",
                                                                        "keeps an input transform"},
                                   std::pair<std::string, std::string>{"  method: rtn\n  w_sym: false\n  a_bits: 16\n",
                                                                        "so Q4_1 cannot hold it exactly"}}) {
    std::string config = yaml;
    config.replace(config.find("  method: rtn\n  a_bits: 16\n"), 26, quant);
    if (quant.find("serq") != std::string::npos) {
      config += "calib:\n  dataset: wikitext2-valid\n  samples: 1\n  seq_len: 256\n";
    }
    const auto exported = dir / (quant.find("serq") != std::string::npos ? "serq" : "asym");
    const nlohmann::json run = run_json(dir, config, "--out " + (dir / "results").string() + " --export " +
                                                         exported.string());
    CHECK_FALSE(std::filesystem::exists(exported / "model.gguf"));
    const std::string manifest = test::read_bytes(exported / kExportManifest);
    CHECK(manifest.find(why) != std::string::npos);
  }
}
