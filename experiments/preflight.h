// Everything the runs of a sweep need, checked before the first of them starts, so a bad third point fails in the
// first seconds and not after hours: dataset files and their text, tokenizers and their fit to each model, the
// headers and shapes of every distinct model.path (cheap reads, no weights), sizes against the text (windows,
// calibration tokens), ranks against the layers' input widths, the memory estimate against what is available, and
// the formats, kernels and backend of each run. Each problem is one serq::Error line naming the file or key.
#pragma once

#include <vector>

#include "core/config/run_config.h"
#include "core/model/config.h"
#include "core/tokenizer/tokenizer.h"
#include "experiments/asset_cache.h"

namespace serq {

// The fewest calibration tokens (calib.samples × calib.seq_len) a method that calibrates may use: fewer give
// statistics of a sentence or two, and a quantized model far off its full-precision one without a word.
constexpr std::int64_t kMinCalibrationTokens = 256;

// How many embedding rows past the tokenizer's ids a checkpoint may carry (padding to a multiple of 64 or 128, as
// Qwen2's 271 rows); more, or fewer rows than ids, means the tokenizer belongs to another model.
constexpr int kMaxEmbeddingPadding = 1024;

// Refuses a tokenizer whose ids do not fit the model's embedding rows, naming both sizes, both files and
// model.tokenizer.
void check_tokenizer_fits(const Tokenizer& tokenizer, const std::filesystem::path& tokenizer_file,
                          const ModelConfig& model, const std::filesystem::path& model_path);

// Checks every run (see above); reads (and keeps in `assets`) each tokenizer, dataset and task the runs use.
// Prints a one-line notice where runtime.threads exceeds this machine's cores (each run uses the cores).
void check_runs_before_work(const std::vector<const ResolvedConfig*>& runs, AssetCache& assets);

// runtime.threads as a run uses it: 0 (all cores) or the configured count, capped at this machine's cores.
int threads_to_use(const ResolvedConfig& config);

}  // namespace serq
