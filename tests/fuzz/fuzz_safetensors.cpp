// safetensors: the header (core/formats/safetensors.h) and every tensor read as float32 and as stored 16-bit bits.
// Seeds: the stories260K checkpoints (F32 and BF16).
#include <vector>

#include "core/common/error.h"
#include "core/formats/safetensors.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path file = serq::fuzz::input_file(data, size, "model.safetensors");
  try {
    const serq::SafetensorsFile safetensors = serq::SafetensorsFile::open(file);
    for (const serq::TensorInfo& info : safetensors.tensors()) {
      try {
        std::vector<float> values(static_cast<std::size_t>(info.numel()));
        safetensors.read_f32(info.name, values);
        if (info.dtype == serq::DType::F16 || info.dtype == serq::DType::BF16) safetensors.map_16bit(info.name);
      } catch (const serq::Error&) {
      }
    }
  } catch (const serq::Error&) {
  }
  return 0;
}
