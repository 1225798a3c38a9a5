// One run's results as an HDF5 file (run.h5): identity, resolved config, metrics, counts and provenance.
//
// Layout (every string is variable-length UTF-8; every dataset is scalar), after the 512-byte seal of
// core/formats/hdf5_seal.h:
//   /            attributes experiment, run_id, label
//   /config      dataset: the resolved config YAML (ResolvedConfig::to_yaml())
//   /metrics/*   float64 datasets, one per metric
//   /counts/*    int64 datasets, one per count
//   /info/*      string datasets (git commit, compiler, BLAS, backend, dataset, BOS policy, ...)
//   /layers/*    optional: 1-D datasets, one element per quantized linear in model order: name (string),
//                weight_rel_error, output_rel_error, output_qsnr_db, bits_per_weight (float64), extra_parameters (int64)
//   /plan/*      optional: the resolved per-layer plan (quant.overrides, rank budgets), 1-D datasets with one element
//                per linear in model order: name, weight, activation, weight_quantizer (strings), rule, rank (int64)
//   /windows/*   optional: one element per evaluation window in order: tokens (int64, scored positions), nll_sum and
//                kld_sum (float64; kld_sum 0 without eval.kld), for paired comparisons over windows
//   /items/<task>/*  optional (eval.log_items): one element per zero-shot item in task order: index, gold, prediction,
//                prediction_norm, choices (int64); and per choice, the items' choices one after another: loglik
//                (float64), tokens and characters (int64)
// Entry names are HDF5 link names: non-empty, no '/', not ".".
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace serq {

// Per-layer quantization diagnostics of one linear (experiments/layer_diagnostics.h says how they are measured).
struct LayerDiagnostics {
  std::string name;                // e.g. "layers.0.self_attn.q_proj"
  double weight_rel_error = 0;     // ‖Ŵ − W‖_F / ‖W‖_F, Ŵ the main weight plus its correction, in the layer's basis
  double output_rel_error = 0;     // ‖Ŷ − Y‖_F / ‖Y‖_F of the layer's output on calibration inputs
  double output_qsnr_db = 0;       // −20·log10(output_rel_error)
  double bits_per_weight = 0;      // storage of the layer, corrections included
  std::int64_t extra_parameters = 0;
};

// How one linear was quantized, as the run's per-layer plan resolved it.
struct LayerPlan {
  std::string name;              // e.g. "layers.11.mlp.down_proj"
  std::string weight;            // QuantSpec::describe(): "int4-sym-g32", "fp" (kept in full precision)
  std::string activation;        // likewise
  std::string weight_quantizer;  // "rtn", "gptq", or "none"
  std::int64_t rule = -1;        // the quant.overrides rule that set it (0-based), or -1 for the global settings
  std::int64_t rank = 0;         // SERQ's r or the low-rank factors' k; 0 where the method has none
};

// One evaluation window's share of the perplexity and KLD sums.
struct WindowScore {
  std::int64_t tokens = 0;  // scored positions: the window's length − 1
  double nll_sum = 0.0;     // Σ −log q(next token), natural log
  double kld_sum = 0.0;     // Σ KL(P_fp ‖ Q) over the same positions; 0 without a full-precision reference
};

// One zero-shot item as scored, as lm-eval's --log_samples keeps it.
struct ItemScore {
  std::int64_t index = 0;  // in the task's items
  std::int64_t gold = 0;
  // Multiple choice: the argmax of loglik (first on ties). Last word: 0 when the continuation is the greedy one,
  // else −1. Correct when it equals gold.
  std::int64_t prediction = 0;
  std::int64_t prediction_norm = -1;  // the argmax of loglik / characters; −1 where the task has no acc_norm
  std::vector<double> loglik;         // per choice: Σ log p over the continuation's tokens
  std::vector<std::int64_t> tokens;      // per choice: the continuation's tokens
  std::vector<std::int64_t> characters;  // per choice: characters of the choice's text (acc_norm divides by them)
};

struct RunRecord {
  std::string experiment, run_id, label;
  std::string config_yaml;
  std::map<std::string, double> metrics;
  std::map<std::string, std::int64_t> counts;
  std::map<std::string, std::string> info;
  std::vector<LayerDiagnostics> layers;  // empty: no /layers group
  std::vector<LayerPlan> plan;           // empty: no /plan group
  std::vector<WindowScore> windows;      // empty: no /windows group
  std::map<std::string, std::vector<ItemScore>> items;  // by task; empty: no /items group
};

// Writes `record` to `file` + ".tmp-<host>-<pid>" and renames it into place, creating parent directories, so a killed
// run leaves no `file` behind and a reader never sees a half-written one. Replaces an existing `file`.
void write_run_record(const std::filesystem::path& file, const RunRecord& record);

// Writes layers, windows and items under `group` in the /layers, /windows and /items layouts above (serq-merge puts
// each run's under its run id).
class Hdf5Writer;
void write_layer_diagnostics(Hdf5Writer& writer, const std::string& group, const std::vector<LayerDiagnostics>& layers);
void write_window_scores(Hdf5Writer& writer, const std::string& group, const std::vector<WindowScore>& windows);
void write_item_scores(Hdf5Writer& writer, const std::string& group,
                       const std::map<std::string, std::vector<ItemScore>>& items);

// Reads a file written by write_run_record. Anything else (missing, not HDF5, missing or mistyped entries) is a
// serq::Error naming the file.
RunRecord read_run_record(const std::filesystem::path& file);

}  // namespace serq
