// sentencepiece .model files (core/tokenizer/sentencepiece_tokenizer.h): loaded, then a text encoded, decoded and
// each piece rendered. Seeds: the stories260K tok512.model and LLaMA-2's tokenizer.model.
#include "core/common/error.h"
#include "core/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path file = serq::fuzz::input_file(data, size, "tokenizer.model");
  try {
    const serq::Tokenizer tokenizer = serq::Tokenizer::load(file);
    const std::vector<int> ids = tokenizer.encode("Once upon a time, 42 ünïcode cats\n");
    tokenizer.decode(ids);
    int previous = ids.empty() ? 0 : ids.front();
    for (const int id : ids) tokenizer.piece_text(previous, id, 1), previous = id;
  } catch (const serq::Error&) {
  }
  return 0;
}
