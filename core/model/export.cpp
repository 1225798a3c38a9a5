// Writing and reading serq exports; see export.h.
#include "core/model/export.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>

#include "core/common/durable_file.h"
#include "core/common/error.h"
#include "core/common/sha256.h"
#include "core/formats/gguf.h"
#include "core/formats/gguf_writer.h"
#include "core/formats/safetensors.h"
#include "core/formats/safetensors_writer.h"
#include "core/model/export_gguf.h"

namespace serq {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr int kVersion = 1;
constexpr const char* kWeights = "model.safetensors";
constexpr const char* kGguf = "model.gguf";

// ---- formats and hyper-parameters as JSON ----

json spec_json(const QuantSpec& spec) {
  return {{"bits", spec.bits},
          {"symmetric", spec.symmetric},
          {"group_size", spec.group_size},
          {"format", spec.format == NumberFormat::mxfp4 ? "mxfp4" : "int"},
          {"f16_scales", spec.f16_scales}};
}

// A required member of a manifest object, of the JSON type `check` accepts.
template <class Check>
const json& member(const json& object, const char* key, Check check, const char* type) {
  SERQ_CHECK(object.is_object() && object.contains(key) && check(object.at(key)), "'{}' is missing or not {}", key,
             type);
  return object.at(key);
}
int int_of(const json& object, const char* key) {
  return member(object, key, [](const json& j) { return j.is_number_integer(); }, "an integer").get<int>();
}
bool bool_of(const json& object, const char* key) {
  return member(object, key, [](const json& j) { return j.is_boolean(); }, "true or false").get<bool>();
}
std::string string_of(const json& object, const char* key) {
  return member(object, key, [](const json& j) { return j.is_string(); }, "a string").get<std::string>();
}
double number_of(const json& object, const char* key) {
  return member(object, key, [](const json& j) { return j.is_number(); }, "a number").get<double>();
}

QuantSpec spec_from(const json& j) {
  QuantSpec spec;
  spec.bits = int_of(j, "bits");
  spec.symmetric = bool_of(j, "symmetric");
  spec.group_size = int_of(j, "group_size");
  const std::string format = string_of(j, "format");
  SERQ_CHECK(format == "int" || format == "mxfp4", "format '{}' is neither int nor mxfp4", format);
  spec.format = format == "mxfp4" ? NumberFormat::mxfp4 : NumberFormat::integer;
  spec.f16_scales = bool_of(j, "f16_scales");
  validate(spec, "a format");
  return spec;
}

json config_json(const ModelConfig& c) {
  return {{"family", family_desc(c.family).name},
          {"dim", c.dim},
          {"hidden_dim", c.hidden_dim},
          {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},
          {"n_kv_heads", c.n_kv_heads},
          {"vocab_size", c.vocab_size},
          {"max_seq_len", c.max_seq_len},
          {"rms_norm_eps", c.rms_norm_eps},
          {"rope_theta", c.rope_theta},
          {"tied_embeddings", c.tied_embeddings},
          {"rope_layout", c.rope_layout == RopeLayout::half ? "half" : "interleaved"},
          {"rope_scaling",
           {{"type", c.rope_scaling.type == RopeScaling::Type::llama3 ? "llama3" : "none"},
            {"factor", c.rope_scaling.factor},
            {"low_freq_factor", c.rope_scaling.low_freq_factor},
            {"high_freq_factor", c.rope_scaling.high_freq_factor},
            {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}}},
          {"checkpoint_linear_bytes", c.checkpoint_linear_bytes},
          {"bos_id", c.bos_id},
          {"eos_id", c.eos_id}};
}

ModelConfig config_from(const json& j) {
  ModelConfig c;
  const std::string family = string_of(j, "family");
  const FamilyDesc* found = nullptr;
  for (const FamilyDesc& f : model_families()) {
    if (family == f.name) found = &f;
  }
  SERQ_CHECK(found, "model family '{}' is not one serq knows", family);
  c.family = found->id;
  c.dim = int_of(j, "dim");
  c.hidden_dim = int_of(j, "hidden_dim");
  c.n_layers = int_of(j, "n_layers");
  c.n_heads = int_of(j, "n_heads");
  c.n_kv_heads = int_of(j, "n_kv_heads");
  c.vocab_size = int_of(j, "vocab_size");
  c.max_seq_len = int_of(j, "max_seq_len");
  c.rms_norm_eps = static_cast<float>(number_of(j, "rms_norm_eps"));
  c.rope_theta = static_cast<float>(number_of(j, "rope_theta"));
  c.tied_embeddings = bool_of(j, "tied_embeddings");
  const std::string layout = string_of(j, "rope_layout");
  SERQ_CHECK(layout == "half" || layout == "interleaved", "rope_layout '{}' is neither half nor interleaved", layout);
  c.rope_layout = layout == "half" ? RopeLayout::half : RopeLayout::interleaved;
  const json& scaling = member(j, "rope_scaling", [](const json& s) { return s.is_object(); }, "an object");
  const std::string type = string_of(scaling, "type");
  SERQ_CHECK(type == "none" || type == "llama3", "rope_scaling type '{}' is neither none nor llama3", type);
  c.rope_scaling.type = type == "llama3" ? RopeScaling::Type::llama3 : RopeScaling::Type::none;
  c.rope_scaling.factor = static_cast<float>(number_of(scaling, "factor"));
  c.rope_scaling.low_freq_factor = static_cast<float>(number_of(scaling, "low_freq_factor"));
  c.rope_scaling.high_freq_factor = static_cast<float>(number_of(scaling, "high_freq_factor"));
  c.rope_scaling.original_max_position_embeddings = int_of(scaling, "original_max_position_embeddings");
  c.checkpoint_linear_bytes = int_of(j, "checkpoint_linear_bytes");
  c.bos_id = int_of(j, "bos_id");
  c.eos_id = int_of(j, "eos_id");
  SERQ_CHECK(c.dim > 0 && c.hidden_dim > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
                 c.vocab_size > 0 && c.max_seq_len > 0 && c.dim % c.n_heads == 0 && c.n_heads % c.n_kv_heads == 0,
             "the model's sizes are not a LLaMA model's (dim {}, heads {}, kv heads {}, layers {})", c.dim, c.n_heads,
             c.n_kv_heads, c.n_layers);
  return c;
}

// ---- writing ----

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

// ---- reading ----

class TensorSource {
 public:
  explicit TensorSource(const fs::path& file) : file_(SafetensorsFile::open(file)) {}

  Matrix matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const {
    check_shape(name, {rows, cols});
    Matrix m(rows, cols);
    file_.read_f32(name, {m.data(), static_cast<std::size_t>(m.size())});
    return m;
  }
  Vector vector(const std::string& name, std::int64_t n) const {
    check_shape(name, {n});
    Vector v(n);
    file_.read_f32(name, {v.data(), static_cast<std::size_t>(v.size())});
    return v;
  }
  template <class T>
  std::vector<T> raw(const std::string& name, DType dtype) const {
    const std::span<const std::byte> bytes = file_.bytes(name, dtype);
    std::vector<T> values(bytes.size() / sizeof(T));
    std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
    return values;
  }
  bool has(const std::string& name) const { return file_.find(name) != nullptr; }

  PackedWeight weight(const std::string& prefix, const json& d, Matrix* floats_out) const {
    const std::string storage = string_of(d, "storage");
    const int rows = int_of(d, "rows"), cols = int_of(d, "cols");
    if (storage == "float") {
      *floats_out = matrix(prefix + ".values", rows, cols);
      return {};
    }
    PackedWeight::StoredParts parts;
    if (storage == "f32") {
      parts.f32 = matrix(prefix + ".values", rows, cols);
      return PackedWeight::from_stored(PackedWeight::Storage::f32, {}, rows, cols, std::move(parts));
    }
    if (storage == "bf16" || storage == "f16") {
      parts.sixteen = raw<std::uint16_t>(prefix + ".values", storage == "bf16" ? DType::BF16 : DType::F16);
      return PackedWeight::from_stored(storage == "bf16" ? PackedWeight::Storage::bf16 : PackedWeight::Storage::f16,
                                       {}, rows, cols, std::move(parts));
    }
    SERQ_CHECK(storage == "int" || storage == "mxfp4", "storage '{}' is not one serq writes", storage);
    const QuantSpec spec = spec_from(member(d, "spec", [](const json& j) { return j.is_object(); }, "an object"));
    parts.codes = raw<std::uint8_t>(prefix + ".codes", DType::U8);
    if (has(prefix + ".zeros")) parts.zeros = raw<std::uint8_t>(prefix + ".zeros", DType::U8);
    if (has(prefix + ".exponents")) parts.exponents = raw<std::uint8_t>(prefix + ".exponents", DType::U8);
    if (storage == "int" && spec.f16_scales) parts.half_scales = raw<std::uint16_t>(prefix + ".scales", DType::F16);
    if (storage == "int" && !spec.f16_scales) parts.float_scales = raw<float>(prefix + ".scales", DType::F32);
    if (bool_of(d, "divisor")) parts.divisor = vector(prefix + ".divisor", rows);
    try {
      return PackedWeight::from_stored(storage == "mxfp4" ? PackedWeight::Storage::mxfp4
                                                          : PackedWeight::Storage::int_codes,
                                       spec, rows, cols, std::move(parts));
    } catch (const Error& e) {
      fail("{}: {}", prefix, e.what());
    }
  }

 private:
  void check_shape(const std::string& name, const std::vector<std::int64_t>& shape) const {
    const TensorInfo* info = file_.find(name);
    SERQ_CHECK(info, "no tensor '{}'", name);
    SERQ_CHECK(info->shape == shape, "tensor '{}' has shape [{}], expected [{}]", name, fmt::join(info->shape, ", "),
               fmt::join(shape, ", "));
  }
  SafetensorsFile file_;
};

void read_linear(const TensorSource& source, const json& j, QuantLinear& layer) {
  SERQ_CHECK(string_of(j, "name") == layer.name, "the linears are out of order: '{}' where '{}' belongs",
             string_of(j, "name"), layer.name);
  const int d_out = static_cast<int>(layer.weight.rows()), d_in = static_cast<int>(layer.weight.cols());
  layer.weight.resize(0, 0);
  layer.transform = string_of(j, "transform");
  layer.weight_quant = spec_from(member(j, "weight_quant", [](const json& v) { return v.is_object(); }, "an object"));
  layer.act_quant = spec_from(member(j, "act_quant", [](const json& v) { return v.is_object(); }, "an object"));
  layer.packed = source.weight(layer.name + ".weight", j.at("weight"), &layer.weight);
  SERQ_CHECK(layer.d_out() == d_out && layer.d_in() == d_in, "{}: its weight is {} × {}, the model's shape is {} × {}",
             layer.name, layer.d_out(), layer.d_in(), d_out, d_in);
  const json& input = member(j, "input", [](const json& v) { return v.is_object(); }, "an object");
  if (bool_of(input, "scale")) layer.input.scale = source.vector(layer.name + ".input_scale", d_in);
  if (bool_of(input, "order")) {
    layer.input.order = source.raw<int>(layer.name + ".input_order", DType::I32);
    std::vector<bool> seen(static_cast<std::size_t>(d_in), false);
    for (const int c : layer.input.order) {
      SERQ_CHECK(c >= 0 && c < d_in && !seen[static_cast<std::size_t>(c)], "{}: its input order is not a permutation "
                 "of 0..{}", layer.name, d_in - 1);
      seen[static_cast<std::size_t>(c)] = true;
    }
    SERQ_CHECK(static_cast<int>(layer.input.order.size()) == d_in, "{}: its input order has {} entries, not {}",
               layer.name, layer.input.order.size(), d_in);
  }
  if (const json& rotation = input.at("rotation"); !rotation.is_null()) {
    layer.input.rotation.hadamard_size = int_of(rotation, "hadamard_size");
    layer.input.rotation.description = string_of(rotation, "description");
    const int n = layer.input.rotation.hadamard_size;
    SERQ_CHECK(n >= 1 && (n & (n - 1)) == 0 && d_in % n == 0, "{}: a Hadamard size of {} does not fit d_in {}",
               layer.name, n, d_in);
    if (bool_of(rotation, "factor")) {
      layer.input.rotation.factor = source.matrix(layer.name + ".rotation_factor", d_in / n, d_in / n);
    }
  }
  if (const json& c = j.at("low_rank"); !c.is_null()) {
    LowRankCorrection& low = layer.low_rank;
    low.factor_quant = spec_from(member(c, "factor_quant", [](const json& v) { return v.is_object(); }, "an object"));
    low.intermediate_quant =
        spec_from(member(c, "intermediate_quant", [](const json& v) { return v.is_object(); }, "an object"));
    low.packed_a = source.weight(layer.name + ".lowrank_a", c.at("a"), &low.a);
    low.packed_b = source.weight(layer.name + ".lowrank_b", c.at("b"), &low.b);
    if (!low.packed_a.empty()) low.a = low.packed_a.dequantize();
    if (!low.packed_b.empty()) low.b = low.packed_b.dequantize();
    SERQ_CHECK(low.a.cols() == d_in && low.b.rows() == d_out && low.a.rows() == low.b.cols(), "{}: its factors are "
               "{} × {} and {} × {} for a {} × {} layer", layer.name, low.a.rows(), low.a.cols(), low.b.rows(),
               low.b.cols(), d_out, d_in);
  }
  if (const json& c = j.at("salient"); !c.is_null()) {
    layer.salient.quant = spec_from(member(c, "quant", [](const json& v) { return v.is_object(); }, "an object"));
    layer.salient.packed = source.weight(layer.name + ".salient_r", c.at("r"), &layer.salient.r);
    if (!layer.salient.packed.empty()) layer.salient.r = layer.salient.packed.dequantize();
    SERQ_CHECK(layer.salient.r.rows() == d_out && layer.salient.r.cols() <= d_in, "{}: R is {} × {} for a {} × {} "
               "layer", layer.name, layer.salient.r.rows(), layer.salient.r.cols(), d_out, d_in);
  }
  if (bool_of(j, "bias")) layer.bias = source.vector(layer.name + ".bias", d_out);
}

json read_manifest(const fs::path& dir) {
  const fs::path file = dir / kExportManifest;
  SERQ_CHECK(fs::is_regular_file(file), "model.path: {} is not a serq export (no {})", dir.string(), kExportManifest);
  std::ifstream in(file, std::ios::binary);
  json manifest;
  try {
    manifest = json::parse(in);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({}); the export is damaged, export the model again", file.string(), e.what());
  }
  try {
    SERQ_CHECK(string_of(manifest, "format") == "serq-export", "'format' is not serq-export");
    SERQ_CHECK(int_of(manifest, "version") == kVersion, "version {} is not {}, the version this build reads",
               int_of(manifest, "version"), kVersion);
  } catch (const Error& e) {
    fail("{}: {}; export the model again with this build", file.string(), e.what());
  }
  return manifest;
}

// Every file the manifest lists, with its size and SHA-256 as written.
void check_files(const fs::path& dir, const json& manifest) {
  const json& files = manifest.at("files");
  SERQ_CHECK(files.is_object() && files.contains(kWeights), "{}: 'files' does not list {}",
             (dir / kExportManifest).string(), kWeights);
  for (const auto& [name, entry] : files.items()) {
    const fs::path file = dir / name;
    SERQ_CHECK(name.find('/') == std::string::npos && fs::is_regular_file(file), "{}: missing from the export; "
               "export the model again", file.string());
    std::int64_t bytes = 0;
    std::string sha;
    try {
      bytes = static_cast<std::int64_t>(number_of(entry, "bytes"));
      sha = string_of(entry, "sha256");
    } catch (const Error& e) {
      fail("{}: the entry of {}: {}", (dir / kExportManifest).string(), name, e.what());
    }
    SERQ_CHECK(static_cast<std::int64_t>(fs::file_size(file)) == bytes, "{}: {} bytes, the manifest says {} "
               "(truncated or replaced); export the model again", file.string(), fs::file_size(file), bytes);
    SERQ_CHECK(sha256_of_file(file) == sha, "{}: its SHA-256 differs from the manifest's (changed since it was "
               "exported); export the model again", file.string());
  }
  json body = manifest;
  body.erase("files");
  const SafetensorsFile weights = SafetensorsFile::open(dir / kWeights);
  const auto recorded = weights.metadata().find("serq_manifest_sha256");
  SERQ_CHECK(recorded != weights.metadata().end() && recorded->second == sha256_hex(body.dump()), "{}: it differs "
             "from the manifest the export was written with (edited since?); export the model again",
             (dir / kExportManifest).string());
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
      {"version", kVersion},
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
                             : json{{"file", kGguf},
                                    {"note", "the weight-only part: main weights as Q4_0/Q4_1/Q8_0 or F32, "
                                             "embeddings and norms F32; activation and KV quantization are "
                                             "evaluation settings and not in it"}}},
      {"linears", linears}};
  // The weights file carries the SHA-256 of the manifest (all but its "files", which holds the weights' own):
  // an edited manifest is found as surely as an edited weight.
  SafetensorsWriter weights = sink.writer();
  weights.metadata("format", "serq-export");
  weights.metadata("serq_manifest_sha256", sha256_hex(manifest.dump()));
  const std::string weight_bytes = weights.bytes();
  summary.model_bytes = static_cast<std::int64_t>(weight_bytes.size());
  summary.total_bytes = summary.model_bytes + static_cast<std::int64_t>(tokenizer_bytes.size());
  summary.file_bits_per_weight = 8.0 * static_cast<double>(summary.model_bytes) / static_cast<double>(linear_weights);
  manifest["files"] = {{kWeights, {{"bytes", weight_bytes.size()}, {"sha256", sha256_hex(weight_bytes)}}},
                       {tokenizer_name, {{"bytes", tokenizer_bytes.size()}, {"sha256", sha256_hex(tokenizer_bytes)}}}};
  if (!gguf_obstacle) {
    manifest["files"][kGguf] = {{"bytes", gguf_bytes.size()}, {"sha256", sha256_hex(gguf_bytes)}};
    summary.total_bytes += static_cast<std::int64_t>(gguf_bytes.size());
  }
  summary.gguf = gguf_obstacle ? "not written: " + *gguf_obstacle
                               : fmt::format("{} ({} bytes, weight-only)", kGguf, gguf_bytes.size());

  // Built beside `dir` under a temporary name, then renamed: the directory is whole or absent.
  const fs::path temporary = temporary_beside(dir);
  std::error_code error;
  fs::remove_all(temporary, error);
  fs::create_directories(temporary, error);
  SERQ_CHECK(!error, "--export {}: cannot create the directory ({}); choose another place", dir.string(),
             error.message());
  try {
    write_file_atomically(temporary / kWeights, weight_bytes);
    write_file_atomically(temporary / tokenizer_name, tokenizer_bytes);
    if (!gguf_obstacle) write_file_atomically(temporary / kGguf, gguf_bytes);
    write_file_atomically(temporary / kExportManifest, manifest.dump(1) + "\n");
    commit_temporary_directory(temporary, dir);
  } catch (...) {
    fs::remove_all(temporary, error);
    throw;
  }
  return summary;
}

void check_export(const fs::path& dir) { check_files(dir, read_manifest(dir)); }

bool is_serq_export(const fs::path& path) {
  std::error_code error;
  return fs::is_directory(path, error) && fs::is_regular_file(path / kExportManifest, error);
}

Model load_export(const fs::path& dir) {
  const json manifest = read_manifest(dir);
  const fs::path manifest_file = dir / kExportManifest;
  check_files(dir, manifest);
  try {
    const ModelConfig config = config_from(member(manifest, "model", [](const json& j) { return j.is_object(); },
                                                  "an object"));
    Model model = make_empty_model(config, true);
    const TensorSource source(dir / kWeights);
    model.embed = source.matrix("embed", config.vocab_size, config.dim);
    model.final_norm = source.vector("final_norm", config.dim);
    for (std::size_t i = 0; i < model.layers.size(); ++i) {
      model.layers[i].attn_norm = source.vector(fmt::format("layers.{}.attn_norm", i), config.dim);
      model.layers[i].ffn_norm = source.vector(fmt::format("layers.{}.ffn_norm", i), config.dim);
    }
    const json& linears = member(manifest, "linears", [](const json& j) { return j.is_array(); }, "a list");
    const bool head_is_embed = bool_of(manifest, "lm_head_is_embed");
    std::vector<QuantLinear*> layers = model.linears();
    if (head_is_embed) layers.pop_back();
    SERQ_CHECK(linears.size() == layers.size(), "{} linears listed, the model has {}", linears.size(), layers.size());
    for (std::size_t i = 0; i < layers.size(); ++i) read_linear(source, linears[i], *layers[i]);
    if (head_is_embed) model.lm_head.weight = model.embed;
    const json& provenance = manifest.at("provenance");
    model.source = fmt::format("serq-export {} (run {}, {})", dir.string(), string_of(provenance, "run_id"),
                               string_of(provenance, "label"));
    return model;
  } catch (const Error& e) {
    fail("{}: {}; export the model again", manifest_file.string(), e.what());
  } catch (const json::exception& e) {
    fail("{}: {}; export the model again", manifest_file.string(), e.what());
  }
}

ModelConfig read_export_config(const fs::path& dir) {
  const json manifest = read_manifest(dir);
  try {
    return config_from(member(manifest, "model", [](const json& j) { return j.is_object(); }, "an object"));
  } catch (const Error& e) {
    fail("{}: {}; export the model again", (dir / kExportManifest).string(), e.what());
  }
}

fs::path export_tokenizer(const fs::path& dir) {
  const json manifest = read_manifest(dir);
  try {
    const std::string name = string_of(manifest, "tokenizer");
    SERQ_CHECK(name.find('/') == std::string::npos, "'tokenizer' names a path, not a file of the export");
    return dir / name;
  } catch (const Error& e) {
    fail("{}: {}; export the model again", (dir / kExportManifest).string(), e.what());
  }
}

std::string export_label(const fs::path& dir) {
  const json manifest = read_manifest(dir);
  try {
    return string_of(manifest.at("provenance"), "label");
  } catch (const std::exception& e) {
    fail("{}: {}; export the model again", (dir / kExportManifest).string(), e.what());
  }
}

double export_bits_per_weight(const fs::path& dir) {
  const json manifest = read_manifest(dir);
  try {
    return number_of(manifest.at("storage"), "bits_per_weight");
  } catch (const std::exception& e) {
    fail("{}: {}; export the model again", (dir / kExportManifest).string(), e.what());
  }
}

}  // namespace serq
