// Writing serq exports; see export.h (the loader is load_export.cpp, the manifest's JSON export_manifest.cpp).
#include "core/model/export.h"

#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <optional>

#include "core/common/durable_file.h"
#include "core/common/error.h"
#include "core/common/sha256.h"
#include "core/formats/gguf.h"
#include "core/formats/gguf_writer.h"
#include "core/formats/safetensors_writer.h"
#include "core/model/export_gguf.h"
#include "core/model/export_manifest.h"

namespace serq {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

template <class T>
std::span<const std::byte> as_bytes_of(const std::vector<T>& values) {
  return std::as_bytes(std::span<const T>(values));
}

class TensorSink {
 public:
  void matrix(const std::string& name, const Matrix& m) {
    writer_.add(name, DType::F32, {m.rows(), m.cols()}, std::as_bytes(std::span<const float>(m.data(), m.size())));
  }
  void vector(const std::string& name, const Vector& v) {
    writer_.add(name, DType::F32, {v.size()}, std::as_bytes(std::span<const float>(v.data(), v.size())));
  }
  template <class T>
  void raw(const std::string& name, DType dtype, const std::vector<T>& values) {
    writer_.add(name, dtype, {static_cast<std::int64_t>(values.size() * sizeof(T) / dtype_size(dtype))},
                as_bytes_of(values));
  }

  // A packed weight's parts under `prefix`, and its descriptor.
  json packed(const std::string& prefix, const PackedWeight& w) {
    const PackedWeight::StoredParts parts = w.stored_parts();
    json d = {{"rows", w.rows()}, {"cols", w.cols()}, {"divisor", parts.divisor.size() > 0}};
    switch (w.storage()) {
      case PackedWeight::Storage::int_codes:
      case PackedWeight::Storage::mxfp4:
        d["storage"] = w.storage() == PackedWeight::Storage::mxfp4 ? "mxfp4" : "int";
        d["spec"] = spec_json(w.spec());
        raw(prefix + ".codes", DType::U8, parts.codes);
        if (!parts.zeros.empty()) raw(prefix + ".zeros", DType::U8, parts.zeros);
        if (!parts.exponents.empty()) raw(prefix + ".exponents", DType::U8, parts.exponents);
        if (!parts.half_scales.empty()) raw(prefix + ".scales", DType::F16, parts.half_scales);
        if (!parts.float_scales.empty()) raw(prefix + ".scales", DType::F32, parts.float_scales);
        if (parts.divisor.size() > 0) vector(prefix + ".divisor", parts.divisor);
        return d;
      case PackedWeight::Storage::f32:
        d["storage"] = "f32";
        matrix(prefix + ".values", parts.f32);
        return d;
      case PackedWeight::Storage::bf16:
      case PackedWeight::Storage::f16:
        d["storage"] = w.storage() == PackedWeight::Storage::bf16 ? "bf16" : "f16";
        raw(prefix + ".values", w.storage() == PackedWeight::Storage::bf16 ? DType::BF16 : DType::F16, parts.sixteen);
        return d;
      case PackedWeight::Storage::none: break;
    }
    fail("{}: an empty packed weight cannot be exported (a bug in the caller)", prefix);
  }

  // A float matrix that has no packed form (the values a method left in full precision).
  json floats(const std::string& prefix, const Matrix& m) {
    matrix(prefix + ".values", m);
    return {{"storage", "float"}, {"rows", m.rows()}, {"cols", m.cols()}, {"divisor", false}};
  }

  // A weight as stored: its packed form where it has one (checked to dequantize to `values` where those are held),
  // else its floats.
  json weight(const std::string& prefix, const PackedWeight& packed, const Matrix& values) {
    if (packed.empty()) return floats(prefix, values);
    SERQ_CHECK(values.size() == 0 || packed.dequantize() == values, "{}: its float values differ from its packed "
               "form, so the export could not reproduce them (a bug: please report it)", prefix);
    return this->packed(prefix, packed);
  }

  const SafetensorsWriter& writer() const { return writer_; }

 private:
  SafetensorsWriter writer_;
};

json linear_json(TensorSink& sink, const QuantLinear& layer) {
  json j = {{"name", layer.name},
            {"transform", layer.transform},
            {"weight_quant", spec_json(layer.weight_quant)},
            {"act_quant", spec_json(layer.act_quant)},
            {"bias", layer.bias.size() > 0}};
  SERQ_CHECK(!layer.packed.empty() || layer.weight.size() > 0, "{}: no weight to export", layer.name);
  j["weight"] = sink.weight(layer.name + ".weight", layer.packed, layer.weight);
  const InputTransform& input = layer.input;
  j["input"] = {{"scale", input.scale.size() > 0}, {"order", !input.order.empty()}, {"rotation", nullptr}};
  if (input.scale.size() > 0) sink.vector(layer.name + ".input_scale", input.scale);
  if (!input.order.empty()) sink.raw(layer.name + ".input_order", DType::I32, input.order);
  if (input.rotation.enabled()) {
    j["input"]["rotation"] = {{"hadamard_size", input.rotation.hadamard_size},
                              {"factor", input.rotation.factor.size() > 0},
                              {"description", input.rotation.description}};
    if (input.rotation.factor.size() > 0) sink.matrix(layer.name + ".rotation_factor", input.rotation.factor);
  }
  j["low_rank"] = nullptr;
  if (layer.low_rank.rank() > 0) {
    const LowRankCorrection& c = layer.low_rank;
    j["low_rank"] = {{"factor_quant", spec_json(c.factor_quant)},
                     {"intermediate_quant", spec_json(c.intermediate_quant)},
                     {"a", sink.weight(layer.name + ".lowrank_a", c.packed_a, c.a)},
                     {"b", sink.weight(layer.name + ".lowrank_b", c.packed_b, c.b)}};
  }
  j["salient"] = nullptr;
  if (layer.salient.rank() > 0) {
    j["salient"] = {{"quant", spec_json(layer.salient.quant)},
                    {"r", sink.weight(layer.name + ".salient_r", layer.salient.packed, layer.salient.r)}};
  }
  if (layer.bias.size() > 0) sink.vector(layer.name + ".bias", layer.bias);
  return j;
}

// The tokenizer beside the weights: its own file, or the tokenizer.* keys of a GGUF checkpoint in a GGUF file.
std::pair<std::string, std::string> tokenizer_file(const fs::path& source) {
  if (!is_gguf_file(source)) {
    SERQ_CHECK(fs::is_regular_file(source), "{}: the tokenizer to export does not exist", source.string());
    std::ifstream in(source, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string name = source.extension() == ".json" ? "tokenizer.json" : "tokenizer.model";
    return {name, bytes};
  }
  const GgufFile gguf = GgufFile::open(source);
  GgufWriter writer;
  for (const auto& [key, value] : gguf.metadata()) {
    if (key.rfind("tokenizer.", 0) == 0) writer.set(key, value);
  }
  return {"tokenizer.gguf", writer.bytes()};
}

}  // namespace

ExportSummary export_model(const Model& model, const ExportProvenance& provenance, double bits_per_weight,
                           const fs::path& dir) {
  SERQ_CHECK(!fs::exists(dir), "--export {}: already exists; choose a new directory (an export never overwrites)",
             dir.string());
  TensorSink sink;
  sink.matrix("embed", model.embed);
  sink.vector("final_norm", model.final_norm);
  json linears = json::array();
  for (std::size_t i = 0; i < model.layers.size(); ++i) {
    sink.vector(fmt::format("layers.{}.attn_norm", i), model.layers[i].attn_norm);
    sink.vector(fmt::format("layers.{}.ffn_norm", i), model.layers[i].ffn_norm);
  }
  const QuantLinear& head = model.lm_head;
  const bool head_is_embed = head.packed.empty() && head.weight == model.embed && head.input.empty() &&
                             !head.act_quant.enabled() && head.low_rank.rank() == 0 && head.salient.rank() == 0 &&
                             head.bias.size() == 0;
  for (const QuantLinear* layer : const_cast<Model&>(model).linears()) {
    if (layer == &head && head_is_embed) continue;
    linears.push_back(linear_json(sink, *layer));
  }
  const auto [tokenizer_name, tokenizer_bytes] = tokenizer_file(provenance.tokenizer);
  const std::optional<std::string> gguf_obstacle = gguf_export_obstacle(model);
  std::string gguf_bytes;
  if (!gguf_obstacle) {
    const std::optional<GgufFile> source =
        is_gguf_file(provenance.tokenizer) ? std::optional(GgufFile::open(provenance.tokenizer)) : std::nullopt;
    gguf_bytes = gguf_export_bytes(model, source ? &*source : nullptr);
  }

  std::int64_t linear_weights = 0;
  for (const QuantLinear* layer : const_cast<Model&>(model).linears()) {
    if (layer != &head) linear_weights += std::int64_t{layer->d_out()} * layer->d_in();
  }
  // The weights' size is known before the file is built: the header is all that the metadata below changes.
  ExportSummary summary;
  summary.bits_per_weight = bits_per_weight;
  json manifest = {
      {"format", "serq-export"},
      {"version", kExportVersion},
      {"tokenizer", tokenizer_name},
      {"provenance",
       {{"run_id", provenance.run_id},
        {"label", provenance.label},
        {"git_commit", provenance.git_commit},
        {"config", provenance.config_yaml},
        {"model_source", model.source}}},
      {"model", config_json(model.config)},
      {"lm_head_is_embed", head_is_embed},
      {"storage", {{"bits_per_weight", bits_per_weight}, {"linear_weights", linear_weights}}},
      {"gguf", gguf_obstacle ? json{{"file", nullptr}, {"why_not", *gguf_obstacle}}
                             : json{{"file", kExportGguf},
                                    {"note", "the weight-only part: main weights as Q4_0/Q4_1/Q8_0 or F32, "
                                             "embeddings and norms F32; activation and KV quantization are "
                                             "evaluation settings and not in it"}}},
      {"linears", linears}};
  // The weights file carries the SHA-256 of the manifest (all but its "files", which holds the weights' own):
  // an edited manifest is found as surely as an edited weight.
  SafetensorsWriter weights = sink.writer();
  weights.metadata("format", "serq-export");
  weights.metadata("serq_manifest_sha256", manifest_body_sha256(manifest));
  const std::string weight_bytes = weights.bytes();
  summary.model_bytes = static_cast<std::int64_t>(weight_bytes.size());
  summary.total_bytes = summary.model_bytes + static_cast<std::int64_t>(tokenizer_bytes.size());
  summary.file_bits_per_weight = 8.0 * static_cast<double>(summary.model_bytes) / static_cast<double>(linear_weights);
  manifest["files"] = {{kExportWeights, {{"bytes", weight_bytes.size()}, {"sha256", sha256_hex(weight_bytes)}}},
                       {tokenizer_name, {{"bytes", tokenizer_bytes.size()}, {"sha256", sha256_hex(tokenizer_bytes)}}}};
  if (!gguf_obstacle) {
    manifest["files"][kExportGguf] = {{"bytes", gguf_bytes.size()}, {"sha256", sha256_hex(gguf_bytes)}};
    summary.total_bytes += static_cast<std::int64_t>(gguf_bytes.size());
  }
  summary.gguf = gguf_obstacle ? "not written: " + *gguf_obstacle
                               : fmt::format("{} ({} bytes, weight-only)", kExportGguf, gguf_bytes.size());

  // Built beside `dir` under a temporary name, then renamed: the directory is whole or absent.
  const fs::path temporary = temporary_beside(dir);
  std::error_code error;
  fs::remove_all(temporary, error);
  fs::create_directories(temporary, error);
  SERQ_CHECK(!error, "--export {}: cannot create the directory ({}); choose another place", dir.string(),
             error.message());
  try {
    write_file_atomically(temporary / kExportWeights, weight_bytes);
    write_file_atomically(temporary / tokenizer_name, tokenizer_bytes);
    if (!gguf_obstacle) write_file_atomically(temporary / kExportGguf, gguf_bytes);
    write_file_atomically(temporary / kExportManifest, manifest.dump(1) + "\n");
    commit_temporary_directory(temporary, dir);
  } catch (...) {
    fs::remove_all(temporary, error);
    throw;
  }
  return summary;
}

}  // namespace serq
