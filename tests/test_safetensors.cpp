// Tests of the safetensors reader (dtype conversions, header validation) and of safetensors checkpoint layouts:
// single file, sharded with an index, untied head, broken files.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/formats/safetensors.h"
#include "core/model/loader.h"
#include "tests/assets.h"
#include "tests/safetensors_writer.h"

using Catch::Matchers::Contains;
using nlohmann::json;
namespace fs = std::filesystem;
using serq::test::read_bytes;
using serq::test::write_bytes;
using serq::test::F32Tensor;
using serq::test::write_raw;
using serq::test::write_safetensors;

namespace {

const fs::path kHfDir = "models/stories260K-hf";

std::vector<F32Tensor> read_all(const fs::path& path) {
  const auto file = serq::SafetensorsFile::open(path);
  std::vector<F32Tensor> out;
  for (const serq::TensorInfo& info : file.tensors()) {
    F32Tensor t{info.name, info.shape, std::vector<float>(info.numel())};
    file.read_f32(info.name, t.values);
    out.push_back(std::move(t));
  }
  return out;
}

// A one-tensor file {"w": header_entry} with `data_bytes` zero bytes of data.
fs::path tiny_file(const std::string& scratch, const json& entry, std::size_t data_bytes) {
  const fs::path path = serq::test::scratch_dir(scratch) / "w.safetensors";
  write_raw(path, json{{"w", entry}}.dump(), std::string(data_bytes, '\0'));
  return path;
}

void require_same_weights(const serq::Model& a, const serq::Model& b) {
  REQUIRE(a.embed == b.embed);
  REQUIRE(a.final_norm == b.final_norm);
  const auto la = a.linears(), lb = b.linears();
  REQUIRE(la.size() == lb.size());
  for (std::size_t i = 0; i < la.size(); ++i) REQUIRE(la[i]->weight == lb[i]->weight);
  for (std::size_t i = 0; i < a.layers.size(); ++i) {
    REQUIRE(a.layers[i].attn_norm == b.layers[i].attn_norm);
    REQUIRE(a.layers[i].ffn_norm == b.layers[i].ffn_norm);
  }
}

}  // namespace

TEST_CASE("bf16_to_f32 is exact on hand-worked bit patterns", "[safetensors]") {
  using serq::bf16_to_f32;
  CHECK(bf16_to_f32(0x3F80) == 1.0f);
  CHECK(bf16_to_f32(0xC000) == -2.0f);
  CHECK(bf16_to_f32(0x3FC0) == 1.5f);
  CHECK(bf16_to_f32(0x4049) == 3.140625f);                        // 2 · (1 + 73/128)
  CHECK(bf16_to_f32(0x7F7F) == std::ldexp(255.0f, 127 - 7));      // largest finite: (2 − 2^-7) · 2^127
  CHECK(bf16_to_f32(0x0080) == std::ldexp(1.0f, -126));           // smallest normal
  CHECK(bf16_to_f32(0x0001) == std::ldexp(1.0f, -133));           // smallest subnormal
  CHECK(bf16_to_f32(0x807F) == -std::ldexp(127.0f, -133));        // largest negative subnormal
  CHECK(std::bit_cast<std::uint32_t>(bf16_to_f32(0x0000)) == 0u);
  CHECK(std::bit_cast<std::uint32_t>(bf16_to_f32(0x8000)) == 0x80000000u);  // −0 keeps its sign
  CHECK(bf16_to_f32(0x7F80) == INFINITY);
  CHECK(bf16_to_f32(0xFF80) == -INFINITY);
  CHECK(std::isnan(bf16_to_f32(0x7FC0)));
  CHECK(std::isnan(bf16_to_f32(0xFF81)));
}

TEST_CASE("f16_to_f32 is exact on hand-worked bit patterns", "[safetensors]") {
  using serq::f16_to_f32;
  CHECK(f16_to_f32(0x3C00) == 1.0f);
  CHECK(f16_to_f32(0xC000) == -2.0f);
  CHECK(f16_to_f32(0x3555) == 0.333251953125f);            // (1 + 341/1024) / 4
  CHECK(f16_to_f32(0x7BFF) == 65504.0f);                   // largest finite
  CHECK(f16_to_f32(0x0400) == std::ldexp(1.0f, -14));      // smallest normal
  CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));      // smallest subnormal
  CHECK(f16_to_f32(0x03FF) == std::ldexp(1023.0f, -24));   // largest subnormal
  CHECK(f16_to_f32(0x8201) == -std::ldexp(513.0f, -24));   // negative subnormal
  CHECK(std::bit_cast<std::uint32_t>(f16_to_f32(0x0000)) == 0u);
  CHECK(std::bit_cast<std::uint32_t>(f16_to_f32(0x8000)) == 0x80000000u);
  CHECK(f16_to_f32(0x7C00) == INFINITY);
  CHECK(f16_to_f32(0xFC00) == -INFINITY);
  CHECK(std::isnan(f16_to_f32(0x7E00)));
  CHECK(std::isnan(f16_to_f32(0x7C01)));  // signalling NaN stays NaN, not infinity
}

TEST_CASE("F16 tensors are read through the exact conversion", "[safetensors]") {
  const fs::path path = serq::test::scratch_dir("st_f16") / "h.safetensors";
  const std::vector<std::uint16_t> bits = {0x3C00, 0xC000, 0x0001, 0x7BFF};
  write_raw(path, R"({"h": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]}})",
            std::string(reinterpret_cast<const char*>(bits.data()), 8));
  const auto file = serq::SafetensorsFile::open(path);
  REQUIRE(file.find("h")->dtype == serq::DType::F16);
  std::vector<float> out(4);
  file.read_f32("h", out);
  CHECK(out == std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24), 65504.0f});
}

TEST_CASE("the stories260K F32 file: header, lookup and values", "[safetensors]") {
  const fs::path path = serq::test::asset(kHfDir / "model.safetensors");
  auto opened = serq::SafetensorsFile::open(path);
  const serq::SafetensorsFile file = std::move(opened);  // move-only; the moved-to object owns the mapping
  REQUIRE(file.tensors().size() == 47);                  // embed + 5 layers × 9 + final norm
  REQUIRE(file.find("no.such.tensor") == nullptr);

  const serq::TensorInfo* gate = file.find("model.layers.4.mlp.gate_proj.weight");
  REQUIRE(gate);
  CHECK(gate->dtype == serq::DType::F32);
  CHECK(gate->shape == std::vector<std::int64_t>{172, 64});
  CHECK(gate->end - gate->begin == 172 * 64 * 4);

  // The values are the bytes at 8 + N + begin.
  const std::string bytes = read_bytes(path);
  std::uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  std::vector<float> expected(172 * 64), got(172 * 64);
  std::memcpy(expected.data(), bytes.data() + 8 + header_bytes + gate->begin, expected.size() * 4);
  file.read_f32(gate->name, got);
  CHECK(got == expected);

  std::vector<float> wrong_size(10);
  REQUIRE_THROWS_WITH(file.read_f32(gate->name, wrong_size), Contains("11008 values"));
}

TEST_CASE("a sharded checkpoint loads equal to the single file", "[safetensors]") {
  const fs::path dir = serq::test::scratch_dir("st_sharded");
  const std::vector<F32Tensor> tensors = read_all(serq::test::asset(kHfDir / "model.safetensors"));
  std::vector<F32Tensor> shards[2];
  json weight_map;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::string shard = fmt::format("model-{:05}-of-00002.safetensors", i % 2 + 1);
    shards[i % 2].push_back(tensors[i]);
    weight_map[tensors[i].name] = shard;
  }
  write_safetensors(dir / "model-00001-of-00002.safetensors", shards[0]);
  write_safetensors(dir / "model-00002-of-00002.safetensors", shards[1]);
  write_bytes(dir / "model.safetensors.index.json",
              json{{"metadata", json::object()}, {"weight_map", weight_map}}.dump());
  fs::copy_file(serq::test::asset(kHfDir / "config.json"), dir / "config.json");

  const serq::Model sharded = serq::load_model(dir);
  require_same_weights(sharded, serq::load_model(serq::test::asset(kHfDir)));
  CHECK_THAT(sharded.source, Contains("hf-safetensors F32"));

  SECTION("a shard named by the index but absent is an error naming it") {
    fs::remove(dir / "model-00002-of-00002.safetensors");
    REQUIRE_THROWS_WITH(serq::load_model(dir), Contains("model-00002-of-00002.safetensors") && Contains("not found"));
  }
  SECTION("a tensor absent from the index is an error naming it") {
    weight_map.erase("model.norm.weight");
    write_bytes(dir / "model.safetensors.index.json", json{{"weight_map", weight_map}}.dump());
    REQUIRE_THROWS_WITH(serq::load_model(dir), Contains("model.norm.weight") && Contains("index.json"));
  }
}

TEST_CASE("an untied checkpoint reads lm_head.weight, and is an error without it", "[safetensors]") {
  const fs::path dir = serq::test::scratch_dir("st_untied");
  std::vector<F32Tensor> tensors = read_all(serq::test::asset(kHfDir / "model.safetensors"));
  json config = json::parse(read_bytes(serq::test::asset(kHfDir / "config.json")));
  config["tie_word_embeddings"] = false;
  write_bytes(dir / "config.json", config.dump());

  SECTION("with lm_head.weight: the head is read, distinct from the embedding") {
    F32Tensor head = tensors.front();  // model.embed_tokens.weight (sorted first), halved to tell them apart
    REQUIRE(head.name == "model.embed_tokens.weight");
    head.name = "lm_head.weight";
    for (float& v : head.values) v *= 0.5f;
    tensors.push_back(head);
    write_safetensors(dir / "model.safetensors", tensors);
    const serq::Model model = serq::load_model(dir);
    CHECK_FALSE(model.config.tied_embeddings);
    CHECK(model.lm_head.weight == model.embed * 0.5f);
    CHECK(model.embed == serq::load_model(serq::test::asset(kHfDir)).embed);
  }
  SECTION("without lm_head.weight") {
    write_safetensors(dir / "model.safetensors", tensors);
    REQUIRE_THROWS_WITH(serq::load_model(dir), Contains("lm_head.weight") && Contains("tie_word_embeddings"));
  }
}

TEST_CASE("a tensor the LLaMA layout does not use is an error", "[safetensors]") {
  const fs::path dir = serq::test::scratch_dir("st_extra");
  std::vector<F32Tensor> tensors = read_all(serq::test::asset(kHfDir / "model.safetensors"));
  tensors.push_back({"model.layers.0.self_attn.q_proj.bias", {64}, std::vector<float>(64, 1.0f)});
  write_safetensors(dir / "model.safetensors", tensors);
  fs::copy_file(serq::test::asset(kHfDir / "config.json"), dir / "config.json");
  REQUIRE_THROWS_WITH(serq::load_model(dir), Contains("model.layers.0.self_attn.q_proj.bias"));
}

TEST_CASE("a weight whose shape disagrees with config.json is an error naming both shapes", "[safetensors]") {
  const fs::path dir = serq::test::scratch_dir("st_shape");
  json config = json::parse(read_bytes(serq::test::asset(kHfDir / "config.json")));
  config["intermediate_size"] = 128;
  write_bytes(dir / "config.json", config.dump());
  fs::create_symlink(serq::test::asset(kHfDir / "model.safetensors"), dir / "model.safetensors");
  REQUIRE_THROWS_WITH(serq::load_model(dir), Contains("model.layers.0.mlp.gate_proj.weight") &&
                                                 Contains("[172, 64]") && Contains("[128, 64]"));
}

TEST_CASE("a directory without safetensors files is an error", "[safetensors][bad-input]") {
  const fs::path dir = serq::test::scratch_dir("st_missing");
  fs::copy_file(serq::test::asset(kHfDir / "config.json"), dir / "config.json");
  REQUIRE_THROWS_WITH(serq::load_model(dir), Contains("model.safetensors") && Contains(dir.string()));
}

TEST_CASE("a missing safetensors file is an error naming it", "[safetensors][bad-input]") {
  const fs::path path = serq::test::scratch_dir("st_nofile") / "absent.safetensors";
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(path), Contains(path.string()) && Contains("not found"));
}

TEST_CASE("a file shorter than the 8-byte length is an error", "[safetensors][bad-input]") {
  const fs::path path = serq::test::scratch_dir("st_short") / "short.safetensors";
  write_bytes(path, "abc");
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(path), Contains("3 bytes") && Contains("truncated"));
}

TEST_CASE("the real file cut short is reported as truncated", "[safetensors][bad-input]") {
  const std::string bytes = read_bytes(serq::test::asset(kHfDir / "model.safetensors"));
  const fs::path dir = serq::test::scratch_dir("st_truncated");
  write_bytes(dir / "cut.safetensors", bytes.substr(0, bytes.size() - 100));
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(dir / "cut.safetensors"),
                      Contains("truncated") && Contains("tensor 'model.") && Contains("ends at byte"));
  write_bytes(dir / "header_cut.safetensors", bytes.substr(0, 1000));  // inside the 4848-byte header
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(dir / "header_cut.safetensors"),
                      Contains("header of 4848 bytes runs past the end") && Contains("truncated"));
}

TEST_CASE("an absurd header length is an error", "[safetensors][bad-input]") {
  const fs::path path = serq::test::scratch_dir("st_absurd") / "absurd.safetensors";
  const std::uint64_t huge = 1ull << 40;
  std::string bytes(16, ' ');
  std::memcpy(bytes.data(), &huge, 8);
  write_bytes(path, bytes);
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(path), Contains("absurd"));
}

TEST_CASE("a header that is not JSON is an error", "[safetensors][bad-input]") {
  const fs::path path = serq::test::scratch_dir("st_notjson") / "bad.safetensors";
  write_raw(path, "{\"w\": {\"dtype\": ", "");
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(path), Contains("not valid JSON"));
}

TEST_CASE("a header entry missing a field is an error naming tensor and field", "[safetensors][bad-input]") {
  const fs::path path = tiny_file("st_nofield", {{"dtype", "F32"}, {"data_offsets", {0, 16}}}, 16);
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(path), Contains("tensor 'w'") && Contains("'shape'"));
}

TEST_CASE("a header lying about a tensor's size is an error", "[safetensors][bad-input]") {
  const fs::path path =
      tiny_file("st_lying", {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 12}}}, 16);
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(path),
                      Contains("tensor 'w'") && Contains("needs 16 bytes") && Contains("span 12 bytes"));
}

TEST_CASE("data_offsets with begin after end are an error", "[safetensors][bad-input]") {
  const fs::path path = tiny_file("st_reversed", {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {8, 4}}}, 16);
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(path), Contains("tensor 'w'") && Contains("begin after end"));
}

TEST_CASE("offsets beyond the data region are an error", "[safetensors][bad-input]") {
  const fs::path path =
      tiny_file("st_beyond", {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {8, 24}}}, 16);
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(path),
                      Contains("tensor 'w'") && Contains("ends at byte 24") && Contains("only 16 bytes"));
}

TEST_CASE("an unsupported dtype is an error listing the supported ones", "[safetensors][bad-input]") {
  const fs::path path = tiny_file("st_dtype", {{"dtype", "I8"}, {"shape", {4}}, {"data_offsets", {0, 4}}}, 4);
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(path),
                      Contains("tensor 'w'") && Contains("'I8'") && Contains("F32, F16, BF16, U8 and I32"));
}

TEST_CASE("a NaN in a weight is an error naming the tensor", "[safetensors][bad-input]") {
  const fs::path dir = serq::test::scratch_dir("st_nan");
  const fs::path real = serq::test::asset(kHfDir / "model.safetensors");
  std::string bytes = read_bytes(real);
  const std::string name = "model.layers.2.post_attention_layernorm.weight";
  const serq::TensorInfo norm = *serq::SafetensorsFile::open(real).find(name);
  std::uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  const float nan = std::nanf("");
  std::memcpy(bytes.data() + 8 + header_bytes + norm.begin + 5 * sizeof(float), &nan, sizeof(float));
  write_bytes(dir / "model.safetensors", bytes);
  fs::copy_file(serq::test::asset(kHfDir / "config.json"), dir / "config.json");
  REQUIRE_THROWS_WITH(serq::load_model(dir),
                      Contains(name) && Contains("nan at index 5"));
}

namespace {

// The stories260K file with its header rewritten by `edit` and `extra` bytes after the data region.
fs::path edited_real_file(const std::string& name, const std::function<void(json&)>& edit, const std::string& extra) {
  const std::string bytes = read_bytes(serq::test::asset(kHfDir / "model.safetensors"));
  std::uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  json header = json::parse(bytes.substr(8, header_bytes));
  edit(header);
  const fs::path path = serq::test::scratch_dir(name) / "model.safetensors";
  write_raw(path, header.dump(), bytes.substr(8 + header_bytes) + extra);
  return path;
}

}  // namespace

TEST_CASE("the real file with two tensors on the same bytes is refused, naming the tensor",
          "[safetensors][bad-input]") {
  const fs::path path = edited_real_file("st_overlap", [](json& header) {
    header["model.layers.1.self_attn.q_proj.weight"]["data_offsets"] =
        header["model.layers.0.self_attn.q_proj.weight"]["data_offsets"];
  }, "");
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(path),
                      Contains("self_attn.q_proj.weight") && Contains("overlaps") && Contains(path.string()));
}

TEST_CASE("the real file with bytes no tensor covers is refused", "[safetensors][bad-input]") {
  const fs::path path = edited_real_file("st_gap", [](json&) {}, std::string(4, '\0'));
  REQUIRE_THROWS_WITH(serq::SafetensorsFile::open(path), Contains("belongs to no tensor") && Contains(path.string()));
}
