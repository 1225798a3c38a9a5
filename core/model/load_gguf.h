// Loads a llama.cpp GGUF checkpoint of a LLaMA-architecture model (general.architecture llama or qwen2, the
// families of core/model/architecture.h): the model config from its metadata, every tensor dequantized to float32.
#pragma once

#include <filesystem>

#include "core/formats/gguf.h"
#include "core/model/model.h"

namespace serq {

// The model config from a GGUF file's <arch>.* and tokenizer.ggml.* metadata. llama.cpp's converter permutes LLaMA's
// q/k rows so that RoPE rotates interleaved pairs (as llama2.c), so rope_layout is interleaved there; Qwen2's rows
// are not permuted and rotate halves. Throws serq::Error naming the file and key: an unknown architecture, a missing
// or mistyped key, RoPE scaling or partial rotary.
ModelConfig read_gguf_config(const GgufFile& file);

// Throws serq::Error naming the file and tensor at fault: a missing tensor, a shape that disagrees with the
// metadata, a tensor serq would not use, a non-finite value, or a model too large for the available memory
// (checked before allocating). A missing output.weight means the head is the token embedding.
Model load_gguf(const std::filesystem::path& path);

}  // namespace serq
