// Byte-level BPE (GPT-2 style), as Hugging Face `tokenizers` and llama.cpp run it: special tokens are matched in the
// text first; the rest is cut by the pre-tokenizer; each piece's bytes become GPT-2's printable code points
// (bytes_to_unicode) and are merged pairwise by rank; decoding maps the code points back to bytes. A byte that has
// no token of its own (SmolLM2 lacks a few control bytes such as 0x04) is dropped, as Hugging Face tokenizers does.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tokenizer/pre_tokenizer.h"
#include "core/tokenizer/tokenizer_model.h"

namespace serq {

// GPT-2's bytes_to_unicode table: printable Latin-1 bytes map to themselves, the other 68 to U+0100 onwards.
const std::array<char32_t, 256>& gpt2_byte_to_code_point();

// What a byte-level BPE tokenizer is made of, whichever file it came from (GGUF metadata, tokenizer.json).
struct BpeDefinition {
  std::vector<std::string> tokens;                          // by id: byte-level form; specials as literal text
  std::vector<std::pair<std::string, std::string>> merges;  // by rank, best first
  std::vector<int> special_ids;  // tokens matched literally in the text before pre-tokenization (added/control)
  PreTokenizer pre_tokenizer;
  std::string pre_tokenizer_name;  // e.g. "smollm", or "tokenizer.json" for a pipeline read from the file
  bool ignore_merges = false;  // a piece that is itself a token is taken whole (LLaMA-3), before any merge
  bool add_bos = false;
  int bos_id = -1;  // -1: none
  std::string source;  // e.g. "gguf /path/model.gguf"
};

class ByteLevelBpe final : public TokenizerModel {
 public:
  // Checks the definition: every merge's parts and result are tokens, every byte has a token, every non-special
  // token maps back to bytes. Throws serq::Error naming `definition.source` otherwise.
  explicit ByteLevelBpe(BpeDefinition definition);

  std::vector<int> encode(std::string_view text) const override;
  std::string decode(const std::vector<int>& tokens) const override;
  int vocab_size() const override { return static_cast<int>(definition_.tokens.size()); }
  std::string piece_text(int prev_token, int token, int bos_id) const override;
  bool adds_bos() const override { return definition_.add_bos; }
  std::string describe() const override;

 private:
  struct Merge {
    int rank;
    int result;
  };
  void encode_piece(std::string_view piece, std::vector<int>& out) const;
  const std::string& token_bytes(int token) const;

  BpeDefinition definition_;
  std::vector<std::string> bytes_;         // by id: the bytes the token decodes to
  std::array<int, 256> byte_token_{};      // the token of each single byte; -1 where the vocabulary has none
  std::unordered_map<std::uint64_t, Merge> merges_;  // (left id << 32 | right id) → rank and merged id
  std::unordered_map<std::string, int> whole_pieces_;  // bytes → id, for ignore_merges
  std::vector<std::pair<std::string, int>> specials_;  // literal text → id, longest first
  std::array<bool, 256> special_first_byte_{};
  // Pieces repeat (words), so their merges are cached; encode may be called from several threads.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int>> cache_;
};

}  // namespace serq
