// GGUF: the header, metadata and tensor infos (core/formats/gguf.h), every tensor dequantized, the llama config and
// the byte-level BPE tokenizer read from the metadata. Seeds: SmolLM2-135M's GGUF.
#include <vector>

#include "core/common/error.h"
#include "core/formats/gguf.h"
#include "core/model/load_gguf.h"
#include "core/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path file = serq::fuzz::input_file(data, size, "model.gguf");
  try {
    const serq::GgufFile gguf = serq::GgufFile::open(file);
    for (const serq::GgufTensorInfo& info : gguf.tensors()) {
      std::vector<float> values(static_cast<std::size_t>(info.numel()));
      try {
        gguf.read_f32(info.name, values);
      } catch (const serq::Error&) {
      }
    }
    try {
      serq::read_gguf_config(gguf);
    } catch (const serq::Error&) {
    }
    serq::Tokenizer::load(file).encode("Hello world, it's 2026!\n  ünïcode");
  } catch (const serq::Error&) {
  }
  return 0;
}
