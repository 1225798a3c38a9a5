// The checks of every sweep point before any work (preflight.h).
#include "experiments/preflight.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <thread>

#include "core/backend/backend.h"
#include "core/backend/cpu/cpu_isa.h"
#include "core/common/error.h"
#include "core/common/paths.h"
#include "core/data/windows.h"
#include "core/model/architecture.h"
#include "core/model/export.h"
#include "core/model/loader.h"
#include "core/model/memory.h"
#include "experiments/run_memory.h"
#include "experiments/run_one.h"
#include "methods/rank_budget.h"
#include "methods/registry.h"
#include "methods/weight_quantizer.h"

namespace serq {
namespace {

int machine_cores() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

// The smallest input width among the linears a method corrects: each decoder layer's, and the head's when quantized.
int smallest_input_width(const ModelConfig& model) {
  int smallest = model.dim;
  for (const LinearDesc& l : layer_linears()) smallest = std::min(smallest, width(model, l.d_in));
  return smallest;
}

// The calibration sizes against the text: one window at least, no more tokens than the text holds (random windows
// would repeat it), and kMinCalibrationTokens at least.
void check_calibration_sizes(const ResolvedConfig& config, const TokenStream& text, bool calibrates) {
  const std::int64_t tokens = static_cast<std::int64_t>(text.tokens.size());
  const std::int64_t seq_len = config.get_int("calib.seq_len");
  const std::string& dataset = config.get_string("calib.dataset");
  SERQ_CHECK(seq_len <= tokens, "calib.seq_len: {} tokens is longer than calib.dataset {} ({} tokens); use a "
             "calib.seq_len ≤ {} or a longer text", seq_len, dataset, tokens, tokens);
  const std::int64_t diagnostics = config.get_int("eval.layer_error_samples") * seq_len;
  SERQ_CHECK(diagnostics <= tokens, "eval.layer_error_samples: {} windows of calib.seq_len {} need {} tokens but "
             "calib.dataset {} has {}; use eval.layer_error_samples ≤ {}", config.get_int("eval.layer_error_samples"),
             seq_len, diagnostics, dataset, tokens, tokens / seq_len);
  if (!calibrates) return;
  const std::int64_t wanted = config.get_int("calib.samples") * seq_len;
  SERQ_CHECK(wanted <= tokens, "calib.samples: {} samples of calib.seq_len {} are {} tokens, more than calib.dataset "
             "{} holds ({}); use calib.samples ≤ {} or a longer text", config.get_int("calib.samples"), seq_len,
             wanted, dataset, tokens, tokens / seq_len);
  SERQ_CHECK(wanted >= kMinCalibrationTokens, "calib.samples: {} samples of calib.seq_len {} are {} tokens, fewer "
             "than the {} a calibration needs; raise calib.samples or calib.seq_len", config.get_int("calib.samples"),
             seq_len, wanted, kMinCalibrationTokens);
}

// "3.2 GiB" or "12.5 MiB".
std::string human_bytes(std::int64_t bytes) {
  const double mib = static_cast<double>(bytes) / (1 << 20);
  return mib >= 1024 ? fmt::format("{:.1f} GiB", mib / 1024) : fmt::format("{:.1f} MiB", mib);
}

// The run's peak memory (experiments/run_memory.h) against what is available; the diagnostics reference is left
// out, since the run skips it (with a note) where it does not fit.
void check_memory(const ResolvedConfig& config, const ModelConfig& model) {
  const std::int64_t available = available_memory_bytes();
  std::vector<MemoryItem> items = estimate_run_memory(config, model, available);
  std::erase_if(items, &MemoryItem::skipped_if_short);
  std::int64_t need = 0;
  for (const MemoryItem& item : items) need += item.bytes;
  const MemoryItem& largest = *std::ranges::max_element(items, {}, &MemoryItem::bytes);
  SERQ_CHECK(need <= available, "run {}: needs ≈ {} of memory (the largest part: {}, {}) but {} is available; lower "
             "calib.samples, eval.batch_size or eval.max_windows, or run where more memory is free (serq-run "
             "--dry-run lists each part)", config.label(), human_bytes(need), largest.what, human_bytes(largest.bytes),
             human_bytes(available));
}

}  // namespace

void check_tokenizer_fits(const Tokenizer& tokenizer, const std::filesystem::path& tokenizer_file,
                          const ModelConfig& model, const std::filesystem::path& model_path) {
  const int ids = tokenizer.vocab_size(), rows = model.vocab_size;
  SERQ_CHECK(ids <= rows && rows - ids <= kMaxEmbeddingPadding, "model.tokenizer: {} has {} tokens but the model {} "
             "has {} embedding rows; the tokenizer belongs to another model: set model.tokenizer to this model's "
             "tokenizer", tokenizer_file.string(), ids, model_path.string(), rows);
}

int threads_to_use(const ResolvedConfig& config) {
  const std::int64_t threads = config.get_int("runtime.threads");
  return static_cast<int>(std::min<std::int64_t>(threads, machine_cores()));
}

namespace {

// quant.rank_allocation's budget against what the layers' rank grids can take, and quant.rank on the grid when the
// budget is uniform rank's.
void check_rank_budget(const ResolvedConfig& config, const ModelConfig& model, const Method& method,
                       const QuantParams& params) {
  const double budget = config.get_float("quant.rank_budget");
  if (budget == 0.0) {
    SERQ_CHECK(config.get_int("quant.rank") % kRankStep == 0, "quant.rank: {} is not a multiple of {}, the rank grid "
               "of quant.rank_allocation; use a multiple of {}, or give quant.rank_budget in bits per weight",
               config.get_int("quant.rank"), kRankStep, kRankStep);
    return;
  }
  const double largest = largest_rank_budget(model, method, params);
  SERQ_CHECK(budget <= largest, "quant.rank_budget: {} extra bits per weight exceed the {:.4f} that the largest ranks "
             "of the grid (max(4·quant.rank, 64), at most each layer's width) take on every layer; give at most {:.4f}",
             budget, largest, largest);
}

// eval.kld_reference, when set: a full-precision checkpoint (not an export) over the same vocabulary as the model.
void check_kld_reference(const ResolvedConfig& config, const ModelConfig& model,
                         std::map<std::string, ModelConfig>& models) {
  const std::string& path = config.get_string("eval.kld_reference");
  if (path.empty()) return;
  std::error_code error;
  SERQ_CHECK(std::filesystem::exists(path, error), "eval.kld_reference: {} does not exist; give the full-precision "
             "checkpoint the model was made from", path);
  SERQ_CHECK(!is_serq_export(path), "eval.kld_reference: {} is a serq export, already quantized; give the "
             "full-precision checkpoint the model was made from", path);
  if (!models.contains(path)) models.emplace(path, check_model_files(path));
  SERQ_CHECK(models.at(path).vocab_size == model.vocab_size, "eval.kld_reference: {} has a vocabulary of {} tokens, "
             "model.path {} one of {}; KL divergence needs the same vocabulary: give the checkpoint the model was made "
             "from", path, models.at(path).vocab_size, config.get_string("model.path"), model.vocab_size);
}

}  // namespace

void check_runs_before_work(const std::vector<const ResolvedConfig*>& runs, AssetCache& assets) {
  avx512_allowed();  // an unknown SERQ_CPU_ISA is an error now, not at the first kernel
  std::map<std::string, ModelConfig> models;  // by model.path: each header read once
  bool threads_noted = false;
  bool rules_read = false, rules_set = false;  // quant.overrides, by a run that quantizes
  for (const ResolvedConfig* run : runs) {
    const ResolvedConfig& config = *run;
    dataset_file(config.get_string("eval.dataset"), assets_root());
    dataset_file(config.get_string("calib.dataset"), assets_root(), "calib.dataset");
    const std::unique_ptr<Method> method = make_method(config.get_string("quant.method"));
    const QuantParams params = quant_params(config, *method);  // formats and kernels that fit
    resolve_backend(config.get_string("runtime.device"), config.get_bool("runtime.strict"), "runtime.device");

    check_export_run(config);
    const std::string& model_path = config.get_string("model.path");
    if (!models.contains(model_path)) models.emplace(model_path, check_model_files(model_path));
    const ModelConfig& model = models.at(model_path);
    if (config.get_bool("eval.kld")) check_kld_reference(config, model, models);
    const std::filesystem::path tokenizer_file = resolve_tokenizer(model_path, config.get_string("model.tokenizer"));
    check_tokenizer_fits(assets.tokenizer(tokenizer_file), tokenizer_file, model, model_path);

    const std::int64_t eval_seq = config.get_int("eval.seq_len"), calib_seq = config.get_int("calib.seq_len");
    SERQ_CHECK(eval_seq <= model.max_seq_len, "eval.seq_len: {} exceeds the model's max_position_embeddings {}; use "
               "eval.seq_len ≤ {}", eval_seq, model.max_seq_len, model.max_seq_len);
    const TokenStream& eval_text = config_dataset(assets, config, "eval.dataset", tokenizer_file, model.bos_id);
    SERQ_CHECK(!eval_windows(eval_text, static_cast<int>(eval_seq), 1).empty(), "eval.dataset: {} has {} tokens, "
               "less than one window of eval.seq_len {}{}; use a shorter eval.seq_len or a longer text",
               config.get_string("eval.dataset"), eval_text.tokens.size(), eval_seq,
               eval_text.partial_window == PartialWindow::drop ? " (its protocol scores full windows only)" : "");

    const bool calibrates = method->needs_activation_stats() || uses_gptq(*method, params);
    if (calibrates || (method->quantizes() && config.get_int("eval.layer_error_samples") > 0)) {
      SERQ_CHECK(calib_seq <= model.max_seq_len, "calib.seq_len: {} exceeds the model's max_position_embeddings {}; "
                 "use calib.seq_len ≤ {}", calib_seq, model.max_seq_len, model.max_seq_len);
      check_calibration_sizes(config, config_dataset(assets, config, "calib.dataset", tokenizer_file, model.bos_id),
                              calibrates);
    }
    if (config.applies("quant.rank") && method->quantizes()) {
      const int smallest = smallest_input_width(model);
      SERQ_CHECK(config.get_int("quant.rank") <= smallest, "quant.rank: {} exceeds {} of {}, the smallest input "
                 "width among the layers {} corrects; use quant.rank ≤ {}", config.get_int("quant.rank"), smallest,
                 model_path, config.get_string("quant.method"), smallest);
    }
    kv_cache_settings(config, model.head_dim(), model_path);
    if (config.applies("quant.rank_allocation") && config.get_string("quant.rank_allocation") != "uniform") {
      check_rank_budget(config, model, *method, params);
    }
    rules_set = rules_set || !params.overrides.empty();
    rules_read = rules_read || (method->quantizes() && !params.overrides.empty());
    if (method->quantizes()) {
      std::vector<std::string> names = linear_names(model);
      if (!params.quantize_lm_head) names.pop_back();
      check_overrides_match(params.overrides, names, model_path);
    }
    load_tasks(config, assets);
    check_memory(config, model);
    if (!threads_noted && config.get_int("runtime.threads") > machine_cores()) {
      std::fprintf(stderr, "serq-run: runtime.threads: %lld is more than this machine's %d cores; using %d (recorded "
                   "as blas_threads)\n", static_cast<long long>(config.get_int("runtime.threads")), machine_cores(),
                   machine_cores());
      threads_noted = true;
    }
  }
  SERQ_CHECK(!rules_set || rules_read, "quant.overrides: no run of this experiment quantizes (quant.method fp keeps "
             "every layer in full precision); remove the rules, or run a method that quantizes");
}

}  // namespace serq
