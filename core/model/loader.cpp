// Dispatch from a model path to the loader of its format.
#include "core/model/loader.h"

#include "core/common/error.h"
#include "core/formats/gguf.h"
#include "core/model/export.h"
#include "core/model/load_gguf.h"
#include "core/model/load_hf.h"
#include "core/model/load_llama2c.h"

namespace serq {
ModelConfig read_model_config(const std::filesystem::path& path) {
  if (is_serq_export(path)) return read_export_config(path);
  if (std::filesystem::is_directory(path)) return read_hf_config(path / "config.json");
  if (std::filesystem::is_regular_file(path) && (path.extension() == ".gguf" || is_gguf_file(path))) {
    return read_gguf_config(GgufFile::open(path));
  }
  return load_model(path).config;
}

ModelConfig check_model_files(const std::filesystem::path& path) {
  if (is_serq_export(path)) {
    check_export(path);
  } else if (std::filesystem::is_directory(path)) {
    check_hf_checkpoint(path);
  }
  return read_model_config(path);
}

Model load_model(const std::filesystem::path& path) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  SERQ_CHECK(std::filesystem::exists(status), "model.path: {} does not exist", path.string());
  if (is_serq_export(path)) return load_export(path);
  if (std::filesystem::is_directory(status)) return load_hf(path);
  if (std::filesystem::is_regular_file(status)) {
    if (path.extension() == ".gguf" || is_gguf_file(path)) return load_gguf(path);
    if (path.extension() == ".bin") return load_llama2c(path);
  }
  fail("model.path: {} is neither a Hugging Face model directory (config.json + model.safetensors), a GGUF file nor "
       "a llama2.c .bin checkpoint; point it at one of these", path.string());
}

}  // namespace serq
