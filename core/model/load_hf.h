// Loads a Hugging Face LLaMA-family directory: config.json plus model.safetensors, or
// model.safetensors.index.json and its shards. F16/BF16 weights are converted to float32.
#pragma once

#include <filesystem>

#include "core/model/model.h"

namespace serq {

// Throws serq::Error naming the file and tensor at fault: a missing file or tensor, a shape that disagrees
// with config.json, a non-finite weight, or a model too large for the available memory (checked before
// allocating).
Model load_hf(const std::filesystem::path& dir);

// The checks of load_hf that need no weight: config.json, every safetensors header (truncation, overlapping tensors),
// and each tensor the model needs there with its shape. Cheap: the files are mapped, not read.
void check_hf_checkpoint(const std::filesystem::path& dir);

}  // namespace serq
