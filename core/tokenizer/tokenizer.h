// The tokenizer interface every corpus, task and generator uses: text ↔ token ids, whichever format the tokenizer
// came in. Formats are listed by hand in tokenizer.cpp: sentencepiece .model, GGUF metadata (byte-level BPE),
// Hugging Face tokenizer.json (byte-level BPE).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer/tokenizer_model.h"

namespace serq {

class Tokenizer {
 public:
  // The format is chosen from the file: a GGUF file (by its magic), a .json file (tokenizer.json), else a
  // sentencepiece model. Throws serq::Error naming the file when it is missing or not of its format.
  static Tokenizer load(const std::filesystem::path& file);

  explicit Tokenizer(std::unique_ptr<TokenizerModel> model);

  // Token ids of the text, without BOS/EOS: the caller adds BOS where adds_bos() says so (the id is the model's).
  std::vector<int> encode(std::string_view text) const { return model_->encode(text); }
  std::string decode(const std::vector<int>& tokens) const { return model_->decode(tokens); }
  int vocab_size() const { return model_->vocab_size(); }
  // The text a streaming printer shows for `token` after `prev_token`. sentencepiece: llama2.c's run.c rendering
  // (the piece with '▁' as ' ', its leading space dropped right after BOS, <0xXX> as that raw byte); byte-level
  // BPE: the token's bytes.
  std::string piece_text(int prev_token, int token, int bos_id) const {
    return model_->piece_text(prev_token, token, bos_id);
  }
  // The tokenizer's own BOS setting: sentencepiece (LLaMA-1/2) adds BOS; SmolLM2's GGUF tokenizer does not.
  bool adds_bos() const { return model_->adds_bos(); }
  std::string describe() const { return model_->describe(); }

 private:
  std::unique_ptr<TokenizerModel> model_;
};

}  // namespace serq
