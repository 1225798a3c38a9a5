// The sbatch array script of a sweep; see sbatch.h.
#include "experiments/sbatch.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/common/durable_file.h"
#include "core/common/error.h"
#include "core/common/paths.h"

namespace serq {
namespace {

// Single-quoted for bash: 'it'\''s'.
std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Absolute, but with symlinks kept as written: SERQ_ASSETS spelled another way would change model.path in every
// resolved config, and with it every run id, so the tasks would not find the runs `--dry-run` lists.
std::filesystem::path full_path(const std::filesystem::path& path) {
  return std::filesystem::absolute(path).lexically_normal();
}

}  // namespace

std::string sbatch_script(const SbatchJob& job) {
  SERQ_CHECK(job.runs >= 1, "--emit-sbatch: the sweep has no runs");
  SERQ_CHECK(job.array_tasks >= 0, "--array-tasks {}: use a number of array tasks ≥ 1", job.array_tasks);
  const int tasks = job.array_tasks > 0 ? std::min<int>(job.array_tasks, static_cast<int>(job.runs))
                                        : static_cast<int>(job.runs);
  const std::filesystem::path logs = full_path(job.out) / job.experiment;
  std::string script = fmt::format(
      "#!/bin/bash\n"
      "# serq sweep '{}': {} runs in {} array tasks (task i runs points i, i + {}, ...).\n"
      "# Written by serq-run --emit-sbatch. Submit: sbatch {{this file}}; then merge: serq-merge {} --out merged\n"
      "#SBATCH --job-name=serq-{}\n"
      "#SBATCH --array=0-{}\n"
      "#SBATCH --output={}/slurm-%A_%a.log\n",
      job.experiment, job.runs, tasks, tasks, shell_quote(logs.string()), job.experiment, tasks - 1, logs.string());
  for (const std::string& option : job.sbatch_options) script += "#SBATCH " + option + "\n";
  script += "set -euo pipefail\n";
  script += fmt::format("export SERQ_ASSETS={}\n", shell_quote(full_path(assets_root()).string()));
  script += fmt::format("exec {} {} --out {} --resume", shell_quote(full_path(job.serq_run).string()),
                        shell_quote(full_path(job.config).string()), shell_quote(full_path(job.out).string()));
  for (const std::string& set : job.sets) script += " --set " + shell_quote(set);
  if (job.noise_floor > 0) script += fmt::format(" --noise-floor {}", job.noise_floor);
  if (!job.noise_kinds.empty()) script += " --noise-kinds " + shell_quote(job.noise_kinds);
  return script + "\n";
}

void write_sbatch_script(const std::filesystem::path& file, const SbatchJob& job) {
  const std::string script = sbatch_script(job);
  std::error_code error;
  std::filesystem::create_directories(full_path(job.out) / job.experiment, error);
  SERQ_CHECK(!error, "--out {}: cannot create the log directory ({}); choose another --out", job.out.string(),
             error.message());
  write_file_atomically(file, script);
  std::filesystem::permissions(file, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                         std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                         std::filesystem::perms::others_exec);
}

}  // namespace serq
