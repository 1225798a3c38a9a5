// The explicit list of tokenizer formats, and the choice among them from the file.
#include "core/tokenizer/tokenizer.h"

#include <array>

#include "core/common/error.h"
#include "core/formats/gguf.h"
#include "core/tokenizer/bpe_sources.h"
#include "core/tokenizer/byte_level_bpe.h"
#include "core/tokenizer/sentencepiece_tokenizer.h"

namespace serq {
namespace {

namespace fs = std::filesystem;

struct TokenizerFormat {
  const char* name;
  bool (*recognizes)(const fs::path&);
  std::unique_ptr<TokenizerModel> (*load)(const fs::path&);
};

// Tried in order; the last recognizes every file, so that a wrong file gets sentencepiece's own error.
const std::array<TokenizerFormat, 3> kFormats = {{
    {"gguf (byte-level BPE from tokenizer.ggml.*)", is_gguf_file,
     [](const fs::path& f) -> std::unique_ptr<TokenizerModel> {
       return std::make_unique<ByteLevelBpe>(bpe_from_gguf(GgufFile::open(f)));
     }},
    {"tokenizer.json (Hugging Face byte-level BPE)", [](const fs::path& f) { return f.extension() == ".json"; },
     [](const fs::path& f) -> std::unique_ptr<TokenizerModel> {
       return std::make_unique<ByteLevelBpe>(bpe_from_tokenizer_json(f));
     }},
    {"sentencepiece .model", [](const fs::path&) { return true; },
     [](const fs::path& f) -> std::unique_ptr<TokenizerModel> { return std::make_unique<SentencePieceTokenizer>(f); }},
}};

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<TokenizerModel> model) : model_(std::move(model)) {}

Tokenizer Tokenizer::load(const fs::path& file) {
  SERQ_CHECK(fs::is_regular_file(file), "{}: tokenizer file does not exist; point model.tokenizer at a sentencepiece "
             ".model, a tokenizer.json or a .gguf file", file.string());
  for (const TokenizerFormat& format : kFormats) {
    if (format.recognizes(file)) return Tokenizer(format.load(file));
  }
  fail("{}: not a tokenizer file serq reads", file.string());
}

}  // namespace serq
