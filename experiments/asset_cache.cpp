// Asset cache for serq-run: one load per model, tokenizer and dataset across the runs of an experiment.
#include "experiments/asset_cache.h"

#include <chrono>

#include "core/common/error.h"
#include "core/common/paths.h"
#include "core/model/loader.h"
#include "core/model/memory.h"

namespace serq {

Model AssetCache::fresh_model(const std::filesystem::path& path, double* load_seconds) {
  const auto start = std::chrono::steady_clock::now();
  Model model;
  if (pristine_ && model_path_ == path) {
    model = *pristine_;
  } else {
    pristine_.reset();
    model = load_model(path);
    if (2 * model_bytes(model.config) < available_memory_bytes()) {
      pristine_ = std::make_unique<Model>(model);
      model_path_ = path;
    }
  }
  *load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return model;
}

const Tokenizer& AssetCache::tokenizer(const std::filesystem::path& file) {
  auto it = tokenizers_.find(file);
  if (it == tokenizers_.end()) it = tokenizers_.emplace(file, Tokenizer::load(file)).first;
  return it->second;
}

const TokenStream& AssetCache::dataset(const std::string& name_or_path, const std::filesystem::path& tokenizer_file,
                                       int bos_id) {
  const auto key = std::make_pair(name_or_path, tokenizer_file);
  auto it = datasets_.find(key);
  if (it == datasets_.end()) {
    it = datasets_.emplace(key, load_dataset(name_or_path, tokenizer(tokenizer_file), bos_id, assets_root())).first;
  }
  return it->second;
}

std::filesystem::path resolve_tokenizer(const std::filesystem::path& model_path, const std::string& configured) {
  namespace fs = std::filesystem;
  if (!configured.empty()) {
    SERQ_CHECK(fs::exists(configured), "model.tokenizer: {} does not exist; fix the path", configured);
    return configured;
  }
  const fs::path dir = fs::is_directory(model_path) ? model_path : model_path.parent_path();
  if (fs::exists(dir / "tokenizer.model")) return dir / "tokenizer.model";
  fs::path found;
  int count = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".model") {
      found = entry.path();
      ++count;
    }
  }
  SERQ_CHECK(count == 1, "model.tokenizer: {} sentencepiece .model files beside {}; set model.tokenizer to the "
             "tokenizer of this model", count, model_path.string());
  return found;
}

}  // namespace serq
