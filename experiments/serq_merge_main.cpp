// serq-merge: combines the run.h5 files of result directories (a sweep, its shards, several experiments) into one
// table, PREFIX.csv and PREFIX.h5, for the table and plot tools (tools/serq_table.py, tools/serq_plot.py).
#include <cstdio>
#include <string>
#include <vector>

#include "core/common/error.h"
#include "experiments/merge.h"

namespace {

constexpr const char* kUsage = R"(usage: serq-merge DIR [DIR...] [--out PREFIX]

Reads every run.h5 below the directories (e.g. results/ablation_rank, or the --out of several shards) and writes
PREFIX.csv and PREFIX.h5 (PREFIX defaults to merged): one row per run with run_id, experiment, label, every resolved
config key (config.*), metrics (metric.*), counts (count.*) and provenance (info.*); the .h5 also holds each run's
per-layer diagnostics (/layers/<run_id>/), per-window sums (/windows/<run_id>/) and, with eval.log_items, per-item
zero-shot scores (/items/<run_id>/<task>/). A file that cannot be read is reported and skipped; the same run found
twice (shards, copies) is kept once.

Exit status: 0 when at least one run was merged, 1 on an error (no runs, conflicting copies), 2 on bad usage.
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "serq-merge: %s (see serq-merge --help)\n", message.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::filesystem::path> roots;
  std::string prefix = "merged";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("%s", kUsage);
      return 0;
    } else if (arg == "--out") {
      if (i + 1 >= argc) usage_error("--out needs a value");
      prefix = argv[++i];
    } else if (!arg.empty() && arg[0] == '-') {
      usage_error("unknown option " + arg);
    } else {
      roots.emplace_back(arg);
    }
  }
  if (roots.empty()) usage_error("no results directory given");
  const serq::MergedTable table = serq::merge_results(roots);
  for (const std::string& skipped : table.skipped) std::fprintf(stderr, "serq-merge: skipped %s\n", skipped.c_str());
  SERQ_CHECK(!table.runs.empty(), "no readable run.h5 below {}{}; check the directories", roots.front().string(),
             roots.size() > 1 ? " and the others" : "");
  write_merged_csv(prefix + ".csv", table);
  write_merged_hdf5(prefix + ".h5", table);
  std::printf("merged %zu runs (%zu columns) into %s.csv and %s.h5", table.runs.size(), table.columns.size(),
              prefix.c_str(), prefix.c_str());
  if (table.duplicates > 0) std::printf("; %zu duplicate copies kept once", table.duplicates);
  if (!table.skipped.empty()) std::printf("; %zu unreadable files skipped", table.skipped.size());
  std::printf("\n");
  return 0;
} catch (const serq::Error& e) {
  std::fprintf(stderr, "serq-merge: error: %s\n", e.what());
  return 1;
}
