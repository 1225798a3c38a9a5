// Where byte-level BPE tokenizers come from: a GGUF file's tokenizer.ggml.* metadata, or a Hugging Face
// tokenizer.json (model.type BPE). Both give the same ByteLevelBpe for the same vocabulary and merges.
#pragma once

#include <filesystem>

#include "core/formats/gguf.h"
#include "core/tokenizer/byte_level_bpe.h"

namespace serq {

// tokenizer.ggml.model must be gpt2. Tokens of type CONTROL (3) and USER_DEFINED (4) are matched literally in text;
// tokenizer.ggml.pre names the pre-tokenizer preset; add_bos_token (default false) and bos_token_id set BOS.
BpeDefinition bpe_from_gguf(const GgufFile& file);

// model.vocab and model.merges, added_tokens (matched literally), pre_tokenizer (Sequence of Split with
// behavior Isolated, ByteLevel, Digits), and BOS from a TemplateProcessing post-processor that starts with a special
// token. Anything else (a normalizer, another model type) is refused with a one-line serq::Error.
BpeDefinition bpe_from_tokenizer_json(const std::filesystem::path& file);

}  // namespace serq
