// `serq-run --emit-sbatch`: an sbatch array script that runs a sweep on a SLURM cluster, one shard per array task.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace serq {

struct SbatchJob {
  std::string experiment;
  std::size_t runs = 0;                   // points of the sweep
  int array_tasks = 0;                    // 0: one task per run
  std::filesystem::path serq_run;         // this executable
  std::filesystem::path config;           // the config file
  std::filesystem::path out;              // --out
  std::vector<std::string> sets;          // --set KEY=VALUE, passed on as they are
  int noise_floor = 0;                    // --noise-floor N, passed on where N > 0
  std::string noise_kinds;                // --noise-kinds LIST, passed on where not empty
  std::vector<std::string> sbatch_options;  // extra "#SBATCH" lines, e.g. "--partition=gpu", "--time=02:00:00"
};

// The script's text. Every path is made absolute; the job exports SERQ_ASSETS as this process resolves it and
// runs serq-run with --resume, so a requeued or repeated task skips what is done. Each task picks its shard from
// SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT. Logs go to <out>/<experiment>/slurm-<job>_<task>.log.
std::string sbatch_script(const SbatchJob& job);

// Writes the script to `file` (mode 0755) and creates the log directory, which sbatch does not.
void write_sbatch_script(const std::filesystem::path& file, const SbatchJob& job);

}  // namespace serq
