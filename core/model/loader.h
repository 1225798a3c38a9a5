// One entry point for every checkpoint format serq reads, chosen from what the path is.
#pragma once

#include <filesystem>

#include "core/model/model.h"

namespace serq {

// A directory with a serq_manifest.json is a serq export (core/model/export.h); another directory is a Hugging Face
// checkpoint (load_hf); a file ending in .gguf or starting with the GGUF magic is a
// llama.cpp checkpoint (load_gguf); a regular file ending in .bin is a llama2.c checkpoint (load_llama2c). Anything
// else, or a missing path, is a serq::Error naming model.path.
Model load_model(const std::filesystem::path& path);

// The model's hyper-parameters without its weights: config.json of a Hugging Face directory (alone, so a config can
// be sized without its weights), the metadata of a GGUF file (its tensor infos checked as loading would), or the
// header of a llama2.c .bin (the whole file is read: llama2.c checkpoints are small).
ModelConfig read_model_config(const std::filesystem::path& path);

// read_model_config with every file header checked as loading would, still without reading a weight: for a Hugging
// Face directory also each safetensors header (truncation, overlapping tensors) and each tensor's shape; for a serq
// export every file's size and SHA-256 (core/model/export.h).
ModelConfig check_model_files(const std::filesystem::path& path);

}  // namespace serq
