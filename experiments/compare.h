// serq-compare's core: two runs over the same windows (and zero-shot items) compared pair by pair, with intervals
// that say whether a difference stands above the sampling of windows and items.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/eval/paired_stats.h"
#include "core/formats/result_file.h"

namespace serq {

struct CompareSettings {
  int resamples = 10000;  // bootstrap resamples over windows
  std::uint64_t seed = 0;
  double level = 0.95;  // of the intervals
};

struct PerplexityComparison {
  std::int64_t windows = 0, tokens = 0;
  double ppl_a = 0, ppl_b = 0;
  double ratio = 0;  // ppl_b / ppl_a
  Interval ratio_interval;
  // Mean KL(P_fp ‖ Q) per token of each run and B − A, where both runs measured it (eval.kld).
  std::optional<double> kld_a, kld_b, kld_delta;
  std::optional<Interval> kld_delta_interval;
};

struct TaskComparison {
  std::string task;
  std::string metric;         // "acc_norm" where the task has it (the headline number), else "acc"
  std::int64_t items = 0;     // items scored in both runs
  double accuracy_a = 0, accuracy_b = 0;
  std::int64_t only_a = 0, only_b = 0;  // items right under one run only
  double p_value = 1;                   // McNemar's exact test
};

struct Comparison {
  PerplexityComparison perplexity;
  std::vector<TaskComparison> tasks;  // tasks with per-item scores in both runs, by name
  std::vector<std::string> notes;     // what could not be compared, and why
};

// Compares B against A. Both need per-window sums (run.h5 /windows) over the same windows: the same eval.dataset,
// eval.seq_len and window lengths, else a serq::Error naming what differs. Tasks are compared on the items both runs
// logged (eval.log_items).
Comparison compare_runs(const RunRecord& a, const RunRecord& b, const CompareSettings& settings);

// A run named on the command line: a run.h5 file, a run directory, or a run id (or a unique prefix of one, at least
// 6 characters) found under `results`. Throws serq::Error naming what was tried.
std::filesystem::path find_run_file(const std::string& name, const std::filesystem::path& results);

// The comparison as a short report: both runs, the perplexity ratio and ΔKLD with their intervals, a table of tasks.
std::string format_comparison(const RunRecord& a, const RunRecord& b, const Comparison& comparison,
                              const CompareSettings& settings);

}  // namespace serq
