// A sentencepiece .model tokenizer (libsentencepiece): text ↔ token ids, and run.c-style rendering of one token.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace serq {

class Tokenizer {
 public:
  // Throws serq::Error naming the file when it is missing or is not a sentencepiece model.
  static Tokenizer load(const std::filesystem::path& model_file);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids of the text, without BOS/EOS: the caller adds those (their ids come from the model config).
  std::vector<int> encode(std::string_view text) const;
  std::string decode(const std::vector<int>& tokens) const;
  int vocab_size() const;

  // The text llama2.c's run.c prints for `token` after `prev_token`: the piece with '▁' shown as ' ', its leading
  // space dropped right after BOS, and a byte piece <0xXX> as that raw byte.
  std::string piece_text(int prev_token, int token, int bos_id) const;

 private:
  Tokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> processor, std::filesystem::path file);

  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  std::filesystem::path file_;  // for error messages
};

}  // namespace serq
