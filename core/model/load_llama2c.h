// Loads a llama2.c legacy (version 0) checkpoint: a header of 7 int32, then float32 weights.
#pragma once

#include <filesystem>

#include "core/model/model.h"

namespace serq {

// Header: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: untied classifier), seq_len.
// Throws serq::Error naming the file: a bad header, a size other than the header implies, a non-finite
// weight, or a model too large for the available memory (checked before allocating).
Model load_llama2c(const std::filesystem::path& file);

}  // namespace serq
