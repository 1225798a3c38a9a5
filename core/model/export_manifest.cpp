// The export manifest's JSON: formats, hyper-parameters, typed members and file checks; see export_manifest.h.
#include "core/model/export_manifest.h"

#include <fstream>

#include "core/common/error.h"
#include "core/common/sha256.h"
#include "core/formats/safetensors.h"
#include "core/model/architecture.h"
#include "core/model/export.h"

namespace serq {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// A required member of a manifest object, of the JSON type `check` accepts.
template <class Check>
const json& member(const json& object, const char* key, Check check, const char* type) {
  SERQ_CHECK(object.is_object() && object.contains(key) && check(object.at(key)), "'{}' is missing or not {}", key,
             type);
  return object.at(key);
}

}  // namespace

json spec_json(const QuantSpec& spec) {
  return {{"bits", spec.bits},
          {"symmetric", spec.symmetric},
          {"group_size", spec.group_size},
          {"format", spec.format == NumberFormat::mxfp4 ? "mxfp4" : "int"},
          {"f16_scales", spec.f16_scales}};
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
  const json& scaling = object_of(j, "rope_scaling");
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

const json& object_of(const json& object, const char* key) {
  return member(object, key, [](const json& j) { return j.is_object(); }, "an object");
}
const json& list_of(const json& object, const char* key) {
  return member(object, key, [](const json& j) { return j.is_array(); }, "a list");
}

std::string manifest_body_sha256(const json& manifest) {
  json body = manifest;
  body.erase("files");
  return sha256_hex(body.dump());
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
    SERQ_CHECK(int_of(manifest, "version") == kExportVersion, "version {} is not {}, the version this build reads",
               int_of(manifest, "version"), kExportVersion);
  } catch (const Error& e) {
    fail("{}: {}; export the model again with this build", file.string(), e.what());
  }
  return manifest;
}

// Every file the manifest lists, with its size and SHA-256 as written.
void check_files(const fs::path& dir, const json& manifest) {
  const json& files = manifest.at("files");
  SERQ_CHECK(files.is_object() && files.contains(kExportWeights), "{}: 'files' does not list {}",
             (dir / kExportManifest).string(), kExportWeights);
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
  const SafetensorsFile weights = SafetensorsFile::open(dir / kExportWeights);
  const auto recorded = weights.metadata().find("serq_manifest_sha256");
  SERQ_CHECK(recorded != weights.metadata().end() && recorded->second == manifest_body_sha256(manifest), "{}: it differs "
             "from the manifest the export was written with (edited since?); export the model again",
             (dir / kExportManifest).string());
}

}  // namespace serq
