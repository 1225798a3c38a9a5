// serq-run: runs the experiment a YAML config describes (every point of its sweep), writes one HDF5 result per
// run under <out>/<experiment>/<run_id>/run.h5, and prints a results table (or JSON lines with --json).
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/backend/backend.h"
#include "core/common/build_info.h"
#include "core/common/durable_file.h"
#include "core/common/error.h"
#include "core/common/file_lock.h"
#include "core/common/interrupt.h"
#include "core/common/paths.h"
#include "core/common/progress.h"
#include "core/formats/result_file.h"
#include "core/config/config_schema.h"
#include "core/config/run_config.h"
#include "core/model/loader.h"
#include "core/model/memory.h"
#include "experiments/asset_cache.h"
#include "experiments/noise_floor.h"
#include "experiments/preflight.h"
#include "experiments/resume.h"
#include "experiments/run_memory.h"
#include "experiments/run_one.h"
#include "experiments/run_summary.h"
#include "experiments/sbatch.h"
#include "experiments/shard.h"
#include "methods/registry.h"

namespace {

constexpr const char* kUsage = R"(usage: serq-run CONFIG.yaml [--set KEY=VALUE]... [--out DIR] [--resume[=WHICH]]
                [--shard I/N] [--noise-floor N [--noise-kinds LIST]] [--export DIR] [--dry-run] [--json] [--quiet]
       serq-run CONFIG.yaml --emit-sbatch FILE [--out DIR] [--set KEY=VALUE]... [--array-tasks N] [--sbatch-option OPT]...

Runs every point of the experiment in CONFIG.yaml: load the model, quantize it with quant.method, evaluate
perplexity, and write results to DIR/<experiment>/<run_id>/run.h5 (DIR defaults to ./results). Every input of every
run (models, tokenizers, texts, sizes, memory) and DIR are checked before the first run starts. Each file is written
under a temporary name, flushed to the disk and renamed, so a killed run or a full disk leaves nothing half-written.
Each run is locked (run.lock beside its run.h5): a second serq-run on the same DIR does the other runs first, then
waits for the held ones. Calibration statistics are cached in DIR/calibration-cache/, so a sweep over ranks or
bit-widths calibrates once. With eval.kld, the full-precision model's final hidden states on each evaluation batch
are cached in DIR/kld-reference-cache/ (4.5 MiB a window of 2048 at hidden size 576, 32 MiB at 4096; delete it at
any time), so later processes on the same model, code, backend and BLAS threads (sharded or resumed sweeps, array
tasks) do not run the full-precision decoder again; the results are the same bit for bit.

options:
  --set KEY=VALUE      override one config key (repeatable), e.g. --set quant.w_bits=8 --set eval.max_windows=10
  --out DIR            root directory for result files (default: results)
  --resume             skip runs whose result file is already there and readable. After the code changed (run ids
                       hash the commit), it stops before any work when results of the same configs exist from
                       another commit, and says how many: then pass
  --resume=any-commit  to take those results as finished, or
  --resume=this-commit to compute them again at this commit
  --shard I/N          run only points I, I+N, I+2N, ... (0 ≤ I < N); inside a SLURM array task the shard comes from
                       SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT
  --noise-floor N      also run each configuration under perturbations that are not the method, N runs of each
                       kind (the configuration and N-1 seeded variants; 8 or more for a stated floor): another
                       calibration sample (calib.seed), another order among equal saliency scores (serq), RMSNorm
                       weights nudged by one ulp (eval.rounding_seed: evaluation noise), and the other
                       quant.scale_dtype; the end prints the mean, SD and range of perplexity and KLD of each kind
  --noise-kinds LIST   with --noise-floor, only these kinds (comma list of calibration, tie_order, rounding,
                       scale_dtype; default all that apply), e.g. one kind per session or cluster job
  --export DIR         also write the quantized model (after folding) to DIR, which must not exist: safetensors
                       with a JSON manifest (codes, scales, zero points, permutations, folded norms, R or the
                       low-rank factors, formats, the resolved config) and the tokenizer; a config with one run.
                       model.path: DIR (with quant.method: fp) evaluates it again without calibrating or quantizing
  --dry-run            print each run's id, label and memory estimate (of this shard), run nothing
  --json               print one JSON object per finished run on stdout (the table goes to stderr)
  --quiet              no progress lines
  --emit-sbatch FILE   write an sbatch array script for the sweep (one shard per task, with --resume); run nothing
  --array-tasks N      array tasks of --emit-sbatch (default: one per run)
  --sbatch-option OPT  an extra "#SBATCH OPT" line for --emit-sbatch (repeatable), e.g. --sbatch-option=--time=2:00:00
  --help               this text and the list of config keys

SIGINT or SIGTERM stops a sweep after saying which runs finished and which were skipped; finished runs stay intact,
and --resume completes the rest. Paths in the config may use ${SERQ_ASSETS} (default: ../shared beside the source
checkout) and other environment variables. Exit status: 0 on success, 1 when a run fails or the config is invalid,
2 on bad usage, 130/143 when interrupted by SIGINT/SIGTERM.
)";

struct Options {
  std::string config;
  std::vector<std::string> sets;
  std::string out = "results";
  std::string shard;        // "I/N", or empty
  std::string emit_sbatch;  // script path, or empty
  std::string export_dir;   // --export, or empty
  int array_tasks = 0;
  int noise_floor = 0;  // runs per kind, or 0
  std::string noise_kinds;  // --noise-kinds, or empty for every kind
  std::vector<std::string> sbatch_options;
  bool dry_run = false, json = false, quiet = false;
  serq::ResumeMode resume = serq::ResumeMode::off;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "serq-run: %s (see serq-run --help)\n", message.c_str());
  std::exit(2);
}

// The value of option `name` as a whole number ≥ `least`, or a usage error saying what to write.
int whole_number(const std::string& name, const std::string& text, int least, const char* wanted) {
  try {
    std::size_t used = 0;
    const int number = std::stoi(text, &used);
    if (used == text.size() && number >= least) return number;
  } catch (const std::exception&) {
  }
  usage_error(name + " " + text + ": use " + wanted);
}

Options parse_args(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> inline_value;  // --name=value
    if (const std::size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::printf("%s\nconfig keys:\n%s\nmethods (quant.method):\n%s", kUsage, serq::describe_config_keys().c_str(),
                  serq::describe_methods().c_str());
      std::exit(0);
    } else if (arg == "--set") {
      options.sets.push_back(value());
    } else if (arg == "--out") {
      options.out = value();
    } else if (arg == "--shard") {
      options.shard = value();
    } else if (arg == "--export") {
      options.export_dir = value();
      if (options.export_dir.empty()) usage_error("--export is empty; name a new directory");
    } else if (arg == "--emit-sbatch") {
      options.emit_sbatch = value();
    } else if (arg == "--array-tasks") {
      options.array_tasks = whole_number(arg, value(), 1, "a number of array tasks ≥ 1");
    } else if (arg == "--noise-floor") {
      options.noise_floor = whole_number(arg, value(), 2, "a number of runs per kind ≥ 2 (8 or more for a stated "
                                                          "floor)");
    } else if (arg == "--noise-kinds") {
      options.noise_kinds = value();
      if (options.noise_kinds.empty()) usage_error("--noise-kinds is empty; name kinds, e.g. --noise-kinds rounding");
    } else if (arg == "--sbatch-option") {
      options.sbatch_options.push_back(value());
    } else if (arg == "--resume") {
      const std::string which = inline_value.value_or("");
      if (!which.empty() && which != "this-commit" && which != "any-commit") {
        usage_error("--resume=" + which + ": use --resume, --resume=this-commit or --resume=any-commit");
      }
      options.resume = which.empty()           ? serq::ResumeMode::ask
                       : which == "any-commit" ? serq::ResumeMode::any_commit
                                               : serq::ResumeMode::this_commit;
    } else if (arg == "--dry-run" || arg == "--json" || arg == "--quiet") {
      if (inline_value) usage_error(arg + " takes no value");
      (arg == "--dry-run" ? options.dry_run : arg == "--json" ? options.json : options.quiet) = true;
    } else if (!arg.empty() && arg[0] == '-') {
      usage_error("unknown option " + arg);
    } else if (options.config.empty()) {
      options.config = arg;
    } else {
      usage_error("more than one config file given: " + options.config + " and " + arg);
    }
  }
  if (options.config.empty()) usage_error("no config file given");
  if (options.out.empty()) usage_error("--out is empty; name a directory, e.g. --out results");
  if (!options.export_dir.empty() && (options.dry_run || !options.shard.empty() || !options.emit_sbatch.empty() ||
                                      options.resume != serq::ResumeMode::off || options.noise_floor > 0)) {
    usage_error("--export writes the model of one run it computes; drop --dry-run, --shard, --emit-sbatch, --resume "
                "and --noise-floor");
  }
  if (!options.noise_kinds.empty() && options.noise_floor == 0) {
    usage_error("--noise-kinds chooses among --noise-floor's kinds; add --noise-floor N");
  }
  if (!options.emit_sbatch.empty() &&
      (options.dry_run || !options.shard.empty() || options.resume != serq::ResumeMode::off)) {
    usage_error("--emit-sbatch writes a script and runs nothing; drop --dry-run, --shard and --resume");
  }
  return options;
}

// The finished record at `file` when --resume may skip its run, else nothing (a damaged file is reported and
// its run done again).
std::optional<serq::RunRecord> finished_earlier(const std::filesystem::path& file, const std::string& run_id) {
  if (!std::filesystem::exists(file)) return std::nullopt;
  try {
    serq::RunRecord record = serq::read_run_record(file);
    if (record.run_id == run_id) return record;
    std::fprintf(stderr, "serq-run: %s holds run %s, not %s; running it again\n", file.c_str(),
                 record.run_id.c_str(), run_id.c_str());
  } catch (const serq::Error& e) {
    std::fprintf(stderr, "serq-run: %s; running it again\n", e.what());
  }
  return std::nullopt;
}

// Removes what a run killed while writing its result left behind (run.h5.tmp-<host>-<pid>), before the run starts
// again. Only under the run's lock: another process's temporary file is its own until it lets go.
void remove_stale_temporaries(const std::filesystem::path& file) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(file.parent_path(), error)) {
    if (serq::is_temporary_of(entry.path().filename().string(), file.filename().string())) {
      std::filesystem::remove(entry.path(), error);
    }
  }
}

// The lock file of the run whose result is `file`: one process computes a run at a time.
std::filesystem::path lock_file(const std::filesystem::path& file) { return file.parent_path() / "run.lock"; }

int run(const Options& options) {
  using namespace serq;
  const auto started = std::filesystem::file_time_type::clock::now();  // results newer than this are another's
  install_interrupt_handlers();
  Progress::set_enabled(!options.quiet);
  const std::optional<NoisePlan> noise =
      options.noise_floor > 0
          ? std::optional(noise_floor_plan(options.config, options.sets, method_catalog(), options.noise_floor,
                                           options.noise_kinds.empty() ? std::vector<NoiseKind>{}
                                                                       : parse_noise_kinds(options.noise_kinds)))
          : std::nullopt;
  const ExperimentPlan plan = noise ? noise->plan : load_experiment(options.config, options.sets, method_catalog());
  const std::string commit = build_info().git_commit;
  if (!options.emit_sbatch.empty()) {
    const SbatchJob job{plan.experiment, plan.runs.size(), options.array_tasks, std::filesystem::read_symlink("/proc/self/exe"),
                        options.config, options.out, options.sets, options.noise_floor, options.noise_kinds,
                        options.sbatch_options};
    write_sbatch_script(options.emit_sbatch, job);
    std::printf("wrote %s: %zu runs of '%s' in %d array tasks\nsubmit: sbatch %s\nthen:   serq-merge %s/%s --out "
                "merged\n", options.emit_sbatch.c_str(), plan.runs.size(), plan.experiment.c_str(),
                options.array_tasks > 0 ? std::min<int>(options.array_tasks, static_cast<int>(plan.runs.size()))
                                        : static_cast<int>(plan.runs.size()),
                options.emit_sbatch.c_str(), options.out.c_str(), plan.experiment.c_str());
    return 0;
  }
  const std::optional<Shard> slurm = options.shard.empty() ? shard_from_slurm_environment() : std::nullopt;
  const Shard shard = options.shard.empty() ? slurm.value_or(Shard{}) : parse_shard(options.shard);
  std::vector<const ResolvedConfig*> runs;
  for (std::size_t i = 0; i < plan.runs.size(); ++i) {
    if (shard.contains(i)) runs.push_back(&plan.runs[i]);
  }
  if (shard.count > 1) {
    std::fprintf(stderr, "%s%s: %zu of the sweep's %zu runs\n", shard.describe().c_str(),
                 slurm ? " (from the SLURM array task)" : "", runs.size(), plan.runs.size());
  }
  if (options.dry_run) {  // id, label and the run's memory estimate (experiments/run_memory.h)
    std::map<std::string, ModelConfig> models;
    const std::int64_t available = available_memory_bytes();
    for (const ResolvedConfig* config : runs) {
      const std::string& path = config->get_string("model.path");
      if (!models.contains(path)) models.emplace(path, read_model_config(path));
      std::printf("%s  %s  memory %s\n", config->run_id(commit).c_str(), config->label().c_str(),
                  describe_memory(estimate_run_memory(*config, models.at(path), available)).c_str());
    }
    std::fprintf(stderr, "memory available to this process: %.1f GiB\n", static_cast<double>(available) / (1LL << 30));
    return 0;
  }
  if (!options.export_dir.empty()) {
    SERQ_CHECK(runs.size() == 1, "--export {}: the config has {} runs; an export holds one model (fix the sweep with "
               "--set, or drop --export)", options.export_dir, runs.size());
    SERQ_CHECK(!std::filesystem::exists(options.export_dir), "--export {}: already exists; choose a new directory "
               "(an export never overwrites)", options.export_dir);
    const std::filesystem::path parent = std::filesystem::absolute(options.export_dir).parent_path();
    probe_writable_directory(parent, "--export", "choose another place for the export");
  }
  // The output first (an unwritable --out fails now, not after the work), then every input of every run.
  probe_writable_directory(options.out, "--out", "choose another --out");
  probe_writable_directory(std::filesystem::path(options.out) / plan.experiment, "--out", "choose another --out");
  probe_writable_directory(std::filesystem::path(options.out) / "calibration-cache", "calibration cache",
                           "choose another --out");
  AssetCache assets(std::filesystem::path(options.out) / "calibration-cache",
                    std::filesystem::path(options.out) / "kld-reference-cache");
  check_runs_before_work(runs, assets);
  const std::filesystem::path results = std::filesystem::path(options.out) / plan.experiment;
  const ResultsByConfig other_commits =
      options.resume == ResumeMode::off ? ResultsByConfig{} : results_of_other_commits(results, commit);
  if (options.resume == ResumeMode::ask) refuse_silent_redo(runs, results, commit, other_commits);
  std::FILE* table_stream = options.json ? stderr : stdout;
  std::map<std::size_t, FinishedRun> finished;  // by position in this shard's runs
  auto table = [&] {
    std::vector<FinishedRun> rows;
    for (const auto& [position, run] : finished) rows.push_back(run);
    return results_table(rows);
  };
  std::size_t executed = 0;
  const auto sweep_start = std::chrono::steady_clock::now();
  // Runs run `i` under its lock. A result another serq-run on this --out wrote since this one started is taken as
  // finished (with --resume, any readable result of this run id is).
  auto run_locked = [&](std::size_t i) {
    const ResolvedConfig& config = *runs[i];
    const std::string run_id = config.run_id(commit);
    const std::filesystem::path file = results / run_id / "run.h5";
    {
      std::error_code error;
      const bool fresh = std::filesystem::last_write_time(file, error) >= started && !error;
      if (options.resume != ResumeMode::off || fresh) {
        if (auto record = finished_earlier(file, run_id)) {
          std::fprintf(stderr, "[%zu/%zu] %s: %s, skipped (%s)\n", i + 1, runs.size(), config.label().c_str(),
                       fresh ? "finished by another serq-run" : "finished earlier", file.c_str());
          finished.emplace(i, FinishedRun{&config, std::move(*record), file});
          return;
        }
      }
    }
    if (options.resume == ResumeMode::any_commit) {
      if (const EarlierResult* earlier = other_commit_result(other_commits, config)) {
        std::fprintf(stderr, "[%zu/%zu] %s: finished at commit %s, reused (%s)\n", i + 1, runs.size(),
                     config.label().c_str(), earlier->commit().c_str(), earlier->file.c_str());
        finished.emplace(i, FinishedRun{&config, earlier->record, earlier->file});
        return;
      }
    }
    std::string eta;
    if (executed > 0) {
      const double per_run =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - sweep_start).count() / executed;
      const auto left = static_cast<double>(runs.size() - finished.size());
      eta = fmt::format(" (sweep ETA {})", format_seconds(per_run * left));
    }
    std::fprintf(stderr, "[%zu/%zu] %s%s\n", i + 1, runs.size(), config.label().c_str(), eta.c_str());
    remove_stale_temporaries(file);
    FinishedRun run{&config, execute_run(config, plan.experiment, assets, options.export_dir), file};
    write_run_record(run.result_file, run.record);
    ++executed;
    if (options.json) std::printf("%s\n", run_summary_json(run).dump().c_str());
    std::fflush(stdout);
    finished.emplace(i, std::move(run));
  };
  std::size_t current = 0;
  try {
    std::vector<std::size_t> held;  // runs another serq-run on this --out held when their turn came
    for (current = 0; current < runs.size(); ++current) {
      check_interrupt();
      const std::filesystem::path file = results / runs[current]->run_id(commit) / "run.h5";
      if (std::optional<FileLock> lock = FileLock::try_acquire(lock_file(file))) {
        run_locked(current);
      } else {
        std::fprintf(stderr, "[%zu/%zu] %s: another serq-run is computing it (%s is locked); doing the other runs "
                     "first\n", current + 1, runs.size(), runs[current]->label().c_str(),
                     lock_file(file).c_str());
        held.push_back(current);
      }
    }
    for (const std::size_t i : held) {
      current = i;
      const std::filesystem::path file = results / runs[i]->run_id(commit) / "run.h5";
      std::fprintf(stderr, "[%zu/%zu] %s: waiting for the other serq-run to finish it\n", i + 1, runs.size(),
                   runs[i]->label().c_str());
      const FileLock lock = FileLock::acquire(lock_file(file));
      run_locked(i);
    }
  } catch (const Interrupted& interrupted) {
    std::string skipped;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      if (!finished.contains(i)) skipped += " " + runs[i]->run_id(commit);
    }
    if (!finished.empty()) std::fprintf(table_stream, "\n%s", table().c_str());
    std::fprintf(stderr, "serq-run: %s during run %zu/%zu; %zu finished runs are intact in %s/; skipped %zu:%s; "
                 "run again with --resume to finish them\n", interrupted.what(), current + 1, runs.size(),
                 finished.size(), results.c_str(), runs.size() - finished.size(), skipped.c_str());
    return 128 + interrupted.signal();
  }
  std::fprintf(table_stream, "\n%s", table().c_str());
  if (noise) {
    std::map<std::string, const RunRecord*> records;
    for (const auto& [position, run] : finished) records[run.record.run_id] = &run.record;
    std::fprintf(table_stream, "\n%s", noise_floor_table(*noise, records, commit).c_str());
  }
  std::fprintf(table_stream, "results: %s/\n", results.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse_args(argc, argv);
  try {
    return run(options);
  } catch (const serq::Error& e) {
    std::fprintf(stderr, "serq-run: error: %s\n", e.what());
  } catch (const serq::Interrupted& interrupted) {
    std::fprintf(stderr, "serq-run: %s before any run started\n", interrupted.what());
    return 128 + interrupted.signal();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serq-run: internal error: %s\n", e.what());
  }
  return 1;
}
