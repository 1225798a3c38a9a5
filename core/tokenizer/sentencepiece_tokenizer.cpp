// Tokenizer over libsentencepiece; every failing sentencepiece status becomes a serq::Error naming the model file.
#include "core/tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <string_view>

#include "core/common/error.h"

namespace serq {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 '▁', sentencepiece's word-boundary mark

std::string replace_space_markers(std::string_view piece) {
  std::string text;
  for (std::size_t at = 0; at < piece.size();) {
    if (piece.substr(at).starts_with(kSpaceMarker)) {
      text += ' ';
      at += kSpaceMarker.size();
    } else {
      text += piece[at++];
    }
  }
  return text;
}

// The byte a byte-fallback piece "<0xXX>" stands for.
char byte_of_piece(const std::string& piece, const std::filesystem::path& file) {
  SERQ_CHECK(piece.size() == 6 && piece.starts_with("<0x") && piece.ends_with(">"),
             "{}: byte piece '{}' is not of the form <0xXX>; the tokenizer model is malformed, re-fetch it",
             file.string(), piece);
  return static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16));
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::filesystem::path& model_file)
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()), file_(model_file) {
  const auto status = processor_->Load(model_file.string());
  SERQ_CHECK(status.ok(), "{}: not a sentencepiece model ({}); use the tokenizer.model that came with the checkpoint",
             model_file.string(), status.ToString());
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::string SentencePieceTokenizer::describe() const {
  return fmt::format("sentencepiece ({} pieces, BOS added) {}", vocab_size(), file_.string());
}

std::vector<int> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = processor_->Encode(text, &ids);
  SERQ_CHECK(status.ok(), "{}: sentencepiece could not encode {} bytes of text ({})", file_.string(), text.size(),
             status.ToString());
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int>& tokens) const {
  std::string text;
  const auto status = processor_->Decode(tokens, &text);
  SERQ_CHECK(status.ok(), "{}: sentencepiece could not decode {} tokens ({}); are the ids from this tokenizer?",
             file_.string(), tokens.size(), status.ToString());
  return text;
}

int SentencePieceTokenizer::vocab_size() const { return processor_->GetPieceSize(); }

std::string SentencePieceTokenizer::piece_text(int prev_token, int token, int bos_id) const {
  SERQ_CHECK(token >= 0 && token < vocab_size(), "{}: token id {} is outside the vocabulary 0..{}; the tokenizer "
             "does not match the model", file_.string(), token, vocab_size() - 1);
  const std::string& piece = processor_->IdToPiece(token);
  if (processor_->IsByte(token)) return std::string(1, byte_of_piece(piece, file_));
  std::string text = replace_space_markers(piece);
  if (prev_token == bos_id && text.starts_with(' ')) text.erase(0, 1);
  return text;
}

}  // namespace serq
