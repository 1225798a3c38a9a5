// The manifest of a serq export (core/model/export.h) as JSON: formats and hyper-parameters both ways, typed access
// to its members with one-line errors, and the checks of the files it lists. Shared by the writer and the loader.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "core/model/config.h"
#include "core/quant/int_quant.h"

namespace serq {

inline constexpr int kExportVersion = 1;
inline constexpr const char* kExportWeights = "model.safetensors";
inline constexpr const char* kExportGguf = "model.gguf";

nlohmann::json spec_json(const QuantSpec& spec);
QuantSpec spec_from(const nlohmann::json& j);
nlohmann::json config_json(const ModelConfig& config);
ModelConfig config_from(const nlohmann::json& j);

// A required member of a manifest object; a missing one, or one of another type, is a serq::Error naming it.
int int_of(const nlohmann::json& object, const char* key);
bool bool_of(const nlohmann::json& object, const char* key);
std::string string_of(const nlohmann::json& object, const char* key);
double number_of(const nlohmann::json& object, const char* key);
const nlohmann::json& object_of(const nlohmann::json& object, const char* key);
const nlohmann::json& list_of(const nlohmann::json& object, const char* key);

// The SHA-256 of the manifest less its "files" (which holds the weights' own): the weights file carries it.
std::string manifest_body_sha256(const nlohmann::json& manifest);

// The manifest of the export in `dir`, of this format and version; then every file it lists against its size and
// SHA-256, and the weights' record of the manifest. Each problem is one serq::Error line naming the file.
nlohmann::json read_manifest(const std::filesystem::path& dir);
void check_files(const std::filesystem::path& dir, const nlohmann::json& manifest);

}  // namespace serq
