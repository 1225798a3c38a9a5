// Asset cache for serq-run: one load per model, tokenizer and dataset across the runs of an experiment, and
// calibration statistics and KLD reference states from memory, then disk, then computed.
#include "experiments/asset_cache.h"

#include <chrono>
#include <cstdio>
#include <optional>

#include "core/common/error.h"
#include "core/common/paths.h"
#include "core/formats/gguf.h"
#include "core/model/export.h"
#include "core/model/loader.h"
#include "core/model/memory.h"

namespace serq {

AssetCache::AssetCache(std::filesystem::path calibration_cache_dir, std::filesystem::path reference_cache_dir)
    : calibration_cache_dir_(std::move(calibration_cache_dir)), reference_cache_dir_(std::move(reference_cache_dir)) {}

Model AssetCache::fresh_model(const std::filesystem::path& path, double* load_seconds) {
  const auto start = std::chrono::steady_clock::now();
  Model model;
  if (pristine_ && model_path_ == path) {
    model = *pristine_;
  } else {
    kld_reference_.reset();
    reference_states_.reset();
    pristine_.reset();
    model = load_model(path);
    if (2 * loaded_model_bytes(model.config) < available_memory_bytes()) {  // a copy shares 16-bit mapped values
      pristine_ = std::make_unique<Model>(model);
      model_path_ = path;
    }
  }
  *load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return model;
}

KldReference* AssetCache::kld_reference(const std::filesystem::path& path, const Backend& backend) {
  const Model* full_precision = nullptr;
  if (pristine_ && model_path_ == path) {
    full_precision = pristine_.get();
  } else if (path != model_path_) {
    if (!reference_model_ || reference_model_path_ != path) {
      kld_reference_.reset();  // it may be over the model replaced here
      reference_model_ = std::make_unique<Model>(load_model(path));
      reference_model_path_ = path;
    }
    full_precision = reference_model_.get();
  }
  if (!full_precision) return nullptr;
  if (kld_reference_ && kld_reference_path_ != path) kld_reference_.reset();
  if (!reference_cache_dir_.empty()) {
    std::string key = reference_state_key(path, backend);
    if (!reference_states_ || reference_states_->key() != key) {
      kld_reference_.reset();
      reference_states_ = std::make_unique<ReferenceStateFiles>(reference_cache_dir_, std::move(key));
    }
  }
  if (!kld_reference_) {
    kld_reference_ =
        std::make_unique<KldReference>(*full_precision, available_memory_bytes() / 4, reference_states_.get());
    kld_reference_path_ = path;
  }
  return kld_reference_.get();
}

const Task& AssetCache::task(const std::string& name, BadLinePolicy policy, int limit) {
  const auto key = std::make_tuple(name, policy, limit);
  auto it = tasks_.find(key);
  if (it == tasks_.end()) it = tasks_.emplace(key, load_task(name, assets_root(), policy, limit)).first;
  return it->second;
}

const Tokenizer& AssetCache::tokenizer(const std::filesystem::path& file) {
  auto it = tokenizers_.find(file);
  if (it == tokenizers_.end()) it = tokenizers_.emplace(file, Tokenizer::load(file)).first;
  return it->second;
}

const TokenStream& AssetCache::dataset(const std::string& name_or_path, const std::filesystem::path& tokenizer_file,
                                       int bos_id, InvalidUtf8 invalid) {
  const auto key = std::make_tuple(name_or_path, tokenizer_file, invalid);
  auto it = datasets_.find(key);
  if (it == datasets_.end()) {
    const Tokenizer& tok = tokenizer(tokenizer_file);
    const OptionalBos bos = tok.adds_bos() ? OptionalBos(bos_id) : std::nullopt;
    it = datasets_.emplace(key, load_dataset(name_or_path, tok, bos, assets_root(), invalid)).first;
  }
  return it->second;
}

const TokenStream& config_dataset(AssetCache& assets, const ResolvedConfig& config, const std::string& key,
                                  const std::filesystem::path& tokenizer_file, int bos_id) {
  const InvalidUtf8 invalid =
      config.get_string("eval.invalid_utf8") == "replace" ? InvalidUtf8::replace : InvalidUtf8::error;
  return assets.dataset(config.get_string(key), tokenizer_file, bos_id, invalid);
}

CachedCalibration AssetCache::calibration(const CalibrationKey& key, const std::function<Calibration()>& compute) {
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const std::string text = key.text();
  if (const auto found = calibrations_.find(text); found != calibrations_.end()) {
    return {found->second, "memory", seconds()};
  }
  const std::filesystem::path file =
      calibration_cache_dir_.empty() ? std::filesystem::path() : calibration_cache_file(calibration_cache_dir_, key);
  std::optional<Calibration> calibration;
  std::string source = "computed";
  std::error_code error;
  if (!file.empty() && std::filesystem::exists(file, error)) {
    try {
      calibration = read_calibration_cache(file, key);
      source = "disk:" + file.string();
    } catch (const Error& e) {
      std::fprintf(stderr, "serq-run: calibration cache %s; recomputing\n", e.what());
    }
  }
  if (!calibration) {
    calibration = compute();
    if (!file.empty()) write_calibration_cache(file, key, *calibration);  // whole or absent; a failure stops the run
  }
  const Calibration& stored = calibrations_.emplace(text, std::move(*calibration)).first->second;
  return {stored, source, seconds()};
}

std::filesystem::path resolve_tokenizer(const std::filesystem::path& model_path, const std::string& configured) {
  namespace fs = std::filesystem;
  if (!configured.empty()) {
    SERQ_CHECK(fs::exists(configured), "model.tokenizer: {} does not exist; fix the path", configured);
    return configured;
  }
  if (fs::is_regular_file(model_path) && is_gguf_file(model_path)) return model_path;  // its tokenizer.ggml.* keys
  if (is_serq_export(model_path)) return export_tokenizer(model_path);
  const fs::path dir = fs::is_directory(model_path) ? model_path : model_path.parent_path();
  if (fs::exists(dir / "tokenizer.model")) return dir / "tokenizer.model";
  if (fs::is_directory(model_path) && fs::exists(dir / "tokenizer.json")) return dir / "tokenizer.json";
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
