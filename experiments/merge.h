// serq-merge's core: collects the run.h5 files of one or more result directories into one table (one row per run:
// identity, every resolved config key, metrics, counts, provenance) and writes it as CSV and HDF5, with each run's
// per-layer diagnostics. The format is documented in README.md ("Merging results").
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/formats/result_file.h"

namespace serq {

// One column of the merged table: numbers (metric.*, count.*) or text (everything else); `present[i]` is false
// where run i has no value.
struct MergedColumn {
  std::string name;
  bool numeric = false;
  std::vector<double> numbers;
  std::vector<std::string> texts;
  std::vector<bool> present;
};

struct MergedTable {
  std::vector<RunRecord> runs;         // sorted by (experiment, label, run_id)
  std::vector<MergedColumn> columns;   // run_id, experiment, label, config.*, metric.*, count.*, info.*
  std::vector<std::string> skipped;    // "<file>: <reason>" for each file that could not be read
  std::size_t duplicates = 0;          // identical copies of a run found more than once, kept once
};

// Reads every run.h5 below `roots` (a root may also be a run.h5 itself). An unreadable file is recorded in
// `skipped`, not fatal. Two different records with one run id are a serq::Error naming both files.
MergedTable merge_results(const std::vector<std::filesystem::path>& roots);

// RFC 4180 CSV: a header row, then a row per run; missing values are empty cells.
void write_merged_csv(const std::filesystem::path& file, const MergedTable& table);

// /runs/<column> (float64 with NaN for missing, or UTF-8 strings with "" for missing), the /runs attribute
// "columns" (names joined by "\n"), and per run where it has them (core/formats/result_file.h's layouts):
// /layers/<run_id>/* (per-layer diagnostics), /windows/<run_id>/* (per-window sums) and /items/<run_id>/<task>/*
// (per-item scores). Atomic write.
void write_merged_hdf5(const std::filesystem::path& file, const MergedTable& table);

}  // namespace serq
