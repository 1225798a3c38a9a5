// Hugging Face tokenizer.json (byte-level BPE, core/tokenizer/bpe_sources.h): loaded, then a text with spaces,
// digits, punctuation and non-ASCII letters encoded and decoded. Seeds: SmolLM2's tokenizer.json.
#include "core/common/error.h"
#include "core/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path file = serq::fuzz::input_file(data, size, "tokenizer.json");
  try {
    const serq::Tokenizer tokenizer = serq::Tokenizer::load(file);
    tokenizer.decode(tokenizer.encode("Hello world, it's 2026!\n\n  ünïcode 東京 <|endoftext|>"));
  } catch (const serq::Error&) {
  }
  return 0;
}
