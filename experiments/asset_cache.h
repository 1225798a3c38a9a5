// Loads each model, tokenizer and evaluation stream once per serq-run, hands out fresh model copies, and keeps
// calibration statistics and the KLD reference's hidden states in memory and, when given directories, on disk across
// serq-run processes.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>

#include "core/data/tasks.h"
#include "core/config/run_config.h"
#include "core/data/token_stream.h"
#include "core/eval/kld_reference.h"
#include "core/model/model.h"
#include "core/tokenizer/tokenizer.h"
#include "experiments/calibration_cache.h"
#include "experiments/reference_state_files.h"
#include "methods/method.h"

namespace serq {

// Calibration statistics and where this call got them.
struct CachedCalibration {
  const Calibration& calibration;
  std::string source;   // "computed", "memory", or "disk:<file>"
  double load_seconds;  // time this call took (computing included); calibration.seconds is the one-time cost
};

class AssetCache {
 public:
  // Calibration statistics are also cached in `calibration_cache_dir` (calibration_cache.h), and the KLD
  // reference's hidden states in `reference_cache_dir` (reference_state_files.h); empty = memory only.
  explicit AssetCache(std::filesystem::path calibration_cache_dir, std::filesystem::path reference_cache_dir = {});

  // A full-precision model ready to be quantized in place. The pristine copy is kept for the next run when
  // two copies fit in memory; otherwise the checkpoint is read again.
  Model fresh_model(const std::filesystem::path& path, double* load_seconds);
  // The KL divergence reference over the full-precision model at `path`, shared by the runs of this serq-run so that
  // the full-precision decoder runs once per evaluation window: the pristine copy when `path` is that of the last
  // fresh_model (nullptr when two copies of it did not fit), else the checkpoint at `path`, loaded once (a reloaded
  // export's own checkpoint). Its kept hidden states are bounded by a quarter of the memory available when it is
  // made; with a reference cache directory, they are read from and written to the files for `backend`.
  KldReference* kld_reference(const std::filesystem::path& path, const Backend& backend);
  const Tokenizer& tokenizer(const std::filesystem::path& file);
  // The dataset tokenized by the tokenizer; BOS (the model's bos_id) goes in where the tokenizer adds BOS; bytes that
  // are not UTF-8 are an error or U+FFFD (`invalid`).
  const TokenStream& dataset(const std::string& name_or_path, const std::filesystem::path& tokenizer_file, int bos_id,
                             InvalidUtf8 invalid = InvalidUtf8::error);
  // A zero-shot task's items (core/data/tasks.h), read once per serq-run for each policy and limit.
  const Task& task(const std::string& name, BadLinePolicy policy, int limit);
  // Calibration statistics by a key naming everything they depend on, so a sweep over ranks or bit-widths
  // calibrates once: from memory, else from the cache directory, else `compute` (and the result is written
  // there). A cache file that cannot be used is reported on stderr in one line and replaced; a cache that cannot
  // be written (a full disk: serq-run probed the directory before any work) is a serq::Error, no file left.
  CachedCalibration calibration(const CalibrationKey& key, const std::function<Calibration()>& compute);

 private:
  std::filesystem::path calibration_cache_dir_;
  std::filesystem::path model_path_;
  std::unique_ptr<Model> pristine_;
  std::filesystem::path reference_cache_dir_;
  std::unique_ptr<Model> reference_model_;  // a checkpoint other than the evaluated model's, for KLD
  std::filesystem::path reference_model_path_;
  std::filesystem::path kld_reference_path_;  // whose model kld_reference_ is over
  std::unique_ptr<ReferenceStateFiles> reference_states_;  // for the key of kld_reference_'s model and backend
  std::unique_ptr<KldReference> kld_reference_;            // over *pristine_; reset with it
  std::map<std::filesystem::path, Tokenizer> tokenizers_;
  std::map<std::tuple<std::string, std::filesystem::path, InvalidUtf8>, TokenStream> datasets_;
  std::map<std::tuple<std::string, BadLinePolicy, int>, Task> tasks_;
  std::map<std::string, Calibration> calibrations_;
};

// The text `key` (eval.dataset or calib.dataset) of `config` through assets.dataset, read as eval.invalid_utf8 says.
const TokenStream& config_dataset(AssetCache& assets, const ResolvedConfig& config, const std::string& key,
                                  const std::filesystem::path& tokenizer_file, int bos_id);

// model.tokenizer if set; else the GGUF file itself, or tokenizer.model (else tokenizer.json) in the model
// directory, or the single *.model file beside a .bin.
std::filesystem::path resolve_tokenizer(const std::filesystem::path& model_path, const std::string& configured);

}  // namespace serq
