// Loads each model, tokenizer and evaluation stream once per serq-run, and hands out fresh model copies.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "core/data/token_stream.h"
#include "core/model/model.h"
#include "core/tokenizer/tokenizer.h"
#include "methods/method.h"

namespace serq {

class AssetCache {
 public:
  // A full-precision model ready to be quantized in place. The pristine copy is kept for the next run when
  // two copies fit in memory; otherwise the checkpoint is read again.
  Model fresh_model(const std::filesystem::path& path, double* load_seconds);
  const Tokenizer& tokenizer(const std::filesystem::path& file);
  const TokenStream& dataset(const std::string& name_or_path, const std::filesystem::path& tokenizer_file, int bos_id);
  // Calibration statistics by a key naming everything they depend on (model, data, samples, seq_len, seed, what
  // was observed), so a sweep over ranks or bit-widths calibrates once; `compute` runs on a miss.
  template <class Compute>
  const Calibration& calibration(const std::string& key, Compute&& compute) {
    auto found = calibrations_.find(key);
    if (found == calibrations_.end()) found = calibrations_.emplace(key, compute()).first;
    return found->second;
  }

 private:
  std::filesystem::path model_path_;
  std::unique_ptr<Model> pristine_;
  std::map<std::filesystem::path, Tokenizer> tokenizers_;
  std::map<std::pair<std::string, std::filesystem::path>, TokenStream> datasets_;
  std::map<std::string, Calibration> calibrations_;
};

// model.tokenizer if set; else tokenizer.model in the model directory, or the single *.model file beside a .bin.
std::filesystem::path resolve_tokenizer(const std::filesystem::path& model_path, const std::string& configured);

}  // namespace serq
