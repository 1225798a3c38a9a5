// The weight-only part of a quantized model as a llama.cpp GGUF file, where the format can hold it exactly: main
// weights that are INT4 symmetric in groups of 32 become Q4_0, INT4 asymmetric in groups of 32 Q4_1 (where every
// block's minimum −zero·scale is an IEEE half), INT8 symmetric in groups of 32 Q8_0, and full-precision weights F32;
// embeddings and norms F32, biases F32, q/k rows in the layout llama.cpp expects for the family. Activation
// quantization and the KV cache are evaluation settings and are not part of it, so a W4A4 model exports as its W4
// weights. A layer with a correction (R, low-rank factors), an input transform that remains after folding, a row
// divisor from folding, or another format makes the model not exportable, and the reason says which.
#pragma once

#include <optional>
#include <string>

#include "core/formats/gguf.h"
#include "core/model/model.h"

namespace serq {

// Why `model` cannot be written as a GGUF, or nothing when it can.
std::optional<std::string> gguf_export_obstacle(const Model& model);

// The GGUF file's bytes: general.* and <arch>.* hyper-parameters, the tokenizer.* keys of `tokenizer_source` (a
// GGUF file; nullptr writes none), and the tensors. Requires gguf_export_obstacle(model) to be empty.
std::string gguf_export_bytes(const Model& model, const GgufFile* tokenizer_source);

}  // namespace serq
