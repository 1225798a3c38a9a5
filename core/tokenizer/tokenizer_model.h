// The interface every tokenizer implementation provides (sentencepiece, byte-level BPE); serq::Tokenizer holds one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace serq {

class TokenizerModel {
 public:
  virtual ~TokenizerModel() = default;

  // Token ids of the text, without BOS/EOS (the caller adds BOS where adds_bos() says so).
  virtual std::vector<int> encode(std::string_view text) const = 0;
  // The text of the ids; byte-exact where the format allows (byte-level BPE round-trips any UTF-8 text).
  virtual std::string decode(const std::vector<int>& tokens) const = 0;
  virtual int vocab_size() const = 0;
  // The text of one token after `prev_token`, as a streaming printer shows it (see Tokenizer::piece_text).
  virtual std::string piece_text(int prev_token, int token, int bos_id) const = 0;
  // Whether the tokenizer's own settings put BOS before a text (sentencepiece LLaMA: yes; SmolLM2: no).
  virtual bool adds_bos() const = 0;
  // One line for result files: the kind, its settings and the file, e.g. "byte-level BPE (gguf, pre smollm, ...)".
  virtual std::string describe() const = 0;
};

}  // namespace serq
