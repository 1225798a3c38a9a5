// One run's results as an HDF5 file (run.h5): identity, resolved config, metrics, counts and provenance.
//
// Layout (every string is variable-length UTF-8; every dataset is scalar):
//   /            attributes experiment, run_id, label
//   /config      dataset: the resolved config YAML (ResolvedConfig::to_yaml())
//   /metrics/*   float64 datasets, one per metric
//   /counts/*    int64 datasets, one per count
//   /info/*      string datasets (git commit, compiler, BLAS, backend, dataset, BOS policy, ...)
// Entry names are HDF5 link names: non-empty, no '/', not ".".
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

namespace serq {

struct RunRecord {
  std::string experiment, run_id, label;
  std::string config_yaml;
  std::map<std::string, double> metrics;
  std::map<std::string, std::int64_t> counts;
  std::map<std::string, std::string> info;
};

// Writes `record` to `file` + ".tmp-<pid>" and renames it into place, creating parent directories, so a killed
// run leaves no `file` behind and a reader never sees a half-written one. Replaces an existing `file`.
void write_run_record(const std::filesystem::path& file, const RunRecord& record);

// Reads a file written by write_run_record. Anything else (missing, not HDF5, missing or mistyped entries) is a
// serq::Error naming the file.
RunRecord read_run_record(const std::filesystem::path& file);

}  // namespace serq
