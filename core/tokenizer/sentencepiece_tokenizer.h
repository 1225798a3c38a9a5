// A sentencepiece .model tokenizer (libsentencepiece), as LLaMA-1/2 and llama2.c models use; BOS is added.
#pragma once

#include <filesystem>
#include <memory>

#include "core/tokenizer/tokenizer_model.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace serq {

class SentencePieceTokenizer final : public TokenizerModel {
 public:
  // Throws serq::Error naming the file when it is not a sentencepiece model.
  explicit SentencePieceTokenizer(const std::filesystem::path& model_file);
  ~SentencePieceTokenizer() override;

  std::vector<int> encode(std::string_view text) const override;
  std::string decode(const std::vector<int>& tokens) const override;
  int vocab_size() const override;
  // run.c's rendering: '▁' shown as ' ', the leading space dropped right after BOS, a byte piece <0xXX> as the byte.
  std::string piece_text(int prev_token, int token, int bos_id) const override;
  bool adds_bos() const override { return true; }
  std::string describe() const override;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  std::filesystem::path file_;  // for error messages
};

}  // namespace serq
