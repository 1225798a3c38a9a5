// Text corpora as one token stream each: the TinyStories halves, WikiText-2 (GPTQ "\n\n" join), PTB (GPTQ " "
// join), plain text files.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer/tokenizer.h"

namespace serq {

struct TokenStream {
  std::vector<int> tokens;
  std::string name;        // dataset name, or the file path for a plain text file
  std::string bos_policy;  // human text recorded in result files, e.g. "BOS before each story"
};

// The in-domain protocol for stories260K (shared/README.md): split on <|endoftext|>, strip each story, keep the first
// 2316 (the file ends in a cut-off one); calibration = stories 0–1157, evaluation = stories 1158–2315.
enum class TinyStoriesHalf { calibration, evaluation };

// Concatenation over the half's stories of [BOS] + encode(story).
TokenStream tinystories_half(const Tokenizer& tokenizer, const std::filesystem::path& path, int bos_id,
                             TinyStoriesHalf half);

// A JSON list of the rows of the HF wikitext-2-raw-v1 test split, joined with "\n\n": one BOS + encode(joined).
TokenStream wikitext2(const Tokenizer& tokenizer, const std::filesystem::path& hf_rows_json, int bos_id);

// The Penn Treebank test file (one sentence a line) as HF's ptb_text_only rows (each line stripped), joined with " "
// as GPTQ does: one BOS + encode(joined).
TokenStream ptb(const Tokenizer& tokenizer, const std::filesystem::path& path, int bos_id);

// One BOS + encode(the whole file).
TokenStream plain_text(const Tokenizer& tokenizer, const std::filesystem::path& path, int bos_id);

// The file behind a dataset name (or the path itself); throws serq::Error naming eval.dataset if it is missing.
std::filesystem::path dataset_file(std::string_view name_or_path, const std::filesystem::path& assets_root);

// tinystories-eval, tinystories-calib, wikitext2, ptb (files under assets_root), or else a path to a plain text file.
TokenStream load_dataset(std::string_view name_or_path, const Tokenizer& tokenizer, int bos_id,
                         const std::filesystem::path& assets_root);

}  // namespace serq
