// How finished runs are shown: one JSON object per run (--json) and the results table printed at the end.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/formats/result_file.h"
#include "core/config/run_config.h"

namespace serq {

struct FinishedRun {
  const ResolvedConfig* config;
  RunRecord record;
  std::filesystem::path result_file;
};

// method, w_bits, a_bits, group_size, a_group_size, dataset, ppl, tokens, seconds, bits_per_weight, run_id, ...,
// calibration_source, worst_layer / worst_layer_qsnr_db (the layer with the lowest output QSNR) when the run
// has per-layer diagnostics, kld {mean, median, p99, max, top1_agreement, dp_mean} with eval.kld, and
// tasks {<task>: {acc, acc_stderr, acc_norm, ...}} plus zero_shot_avg with eval.tasks. Full precision is reported as 16 bits ("not quantized") for fp, and wherever a config
// says 16.
nlohmann::json run_summary_json(const FinishedRun& run);

// A fixed-width table with Δppl against the fp run on the same model, data and windows, when there is one, and
// mean KLD, top-1 agreement and the zero-shot average when any run has them. The
// calibration seconds of a run that reused statistics (from memory or the disk cache) are marked "*", with a footnote.
std::string results_table(const std::vector<FinishedRun>& runs);

}  // namespace serq
