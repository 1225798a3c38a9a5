// Text corpora as one token stream each: the TinyStories halves, WikiText-2 (GPTQ "\n\n" join), PTB (GPTQ " "
// join), plain text files.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/common/text.h"  // InvalidUtf8
#include "core/tokenizer/tokenizer.h"

namespace serq {

// What evaluation does with a last window shorter than seq_len: GPTQ's protocol scores only full windows
// (numel // seq_len); the stories260K protocol of shared/README.md scores the short one too.
enum class PartialWindow { score, drop };

struct TokenStream {
  std::vector<int> tokens;
  std::string name;        // dataset name, or the file path for a plain text file
  std::string bos_policy;  // human text recorded in result files, e.g. "BOS before each story"
  PartialWindow partial_window = PartialWindow::score;
  std::int64_t invalid_utf8_bytes = 0;  // bytes read as U+FFFD (eval.invalid_utf8: replace)
};

// The BOS argument of every loader: the id to put before each document or text, or nullopt for none (a tokenizer
// whose settings add no BOS, such as SmolLM2's).
using OptionalBos = std::optional<int>;

// The in-domain protocol for stories260K (shared/README.md): split on <|endoftext|>, strip each story, keep the first
// 2316 (the file ends in a cut-off one); calibration = stories 0–1157, evaluation = stories 1158–2315.
enum class TinyStoriesHalf { calibration, evaluation };

// Concatenation over the half's stories of [BOS] + encode(story).
// Every loader checks that its text is UTF-8 (core/common/text.h checked_utf8): bad bytes are an error naming
// file:line:column, or U+FFFD with InvalidUtf8::replace (the key eval.invalid_utf8).
TokenStream tinystories_half(const Tokenizer& tokenizer, const std::filesystem::path& path, OptionalBos bos,
                             TinyStoriesHalf half, InvalidUtf8 invalid = InvalidUtf8::error);

// A JSON list of the rows of the HF wikitext-2-raw-v1 test split, joined with "\n\n": [BOS] + encode(joined).
// Full windows only (GPTQ).
TokenStream wikitext2(const Tokenizer& tokenizer, const std::filesystem::path& hf_rows_json, OptionalBos bos,
                      InvalidUtf8 invalid = InvalidUtf8::error);

// The Penn Treebank test file (one sentence a line) as HF's ptb_text_only rows (each line stripped), joined with " "
// as GPTQ does: [BOS] + encode(joined). Full windows only (GPTQ).
TokenStream ptb(const Tokenizer& tokenizer, const std::filesystem::path& path, OptionalBos bos,
                InvalidUtf8 invalid = InvalidUtf8::error);

// [BOS] + encode(the whole file); a short last window is scored.
TokenStream plain_text(const Tokenizer& tokenizer, const std::filesystem::path& path, OptionalBos bos,
                       InvalidUtf8 invalid = InvalidUtf8::error);

// The file behind a dataset name (or the path itself); throws serq::Error naming `key` if it is missing or is not a
// regular file (a directory, a device: said so).
std::filesystem::path dataset_file(std::string_view name_or_path, const std::filesystem::path& assets_root,
                                   std::string_view key = "eval.dataset");

// tinystories-eval, tinystories-calib, wikitext2, wikitext2-valid and wikitext2-train (wiki.valid.tokens or
// wiki.train.tokens as one text, calibration sets apart from the test set), ptb (files under assets_root), or else
// a path to a plain text file.
TokenStream load_dataset(std::string_view name_or_path, const Tokenizer& tokenizer, OptionalBos bos,
                         const std::filesystem::path& assets_root, InvalidUtf8 invalid = InvalidUtf8::error);

}  // namespace serq
