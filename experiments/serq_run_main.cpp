// serq-run: runs the experiment a YAML config describes (every point of its sweep), writes one HDF5 result per
// run under <out>/<experiment>/<run_id>/run.h5, and prints a results table (or JSON lines with --json).
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/common/build_info.h"
#include "core/common/error.h"
#include "core/common/paths.h"
#include "core/data/token_stream.h"
#include "core/common/progress.h"
#include "core/io/config_schema.h"
#include "core/io/result_file.h"
#include "core/io/run_config.h"
#include "experiments/asset_cache.h"
#include "experiments/run_one.h"
#include "experiments/run_summary.h"
#include "methods/registry.h"

namespace {

constexpr const char* kUsage = R"(usage: serq-run CONFIG.yaml [--set KEY=VALUE]... [--out DIR] [--dry-run] [--json] [--quiet]

Runs every point of the experiment in CONFIG.yaml: load the model, quantize it with quant.method, evaluate
perplexity, and write results to DIR/<experiment>/<run_id>/run.h5 (DIR defaults to ./results).

options:
  --set KEY=VALUE  override one config key (repeatable), e.g. --set quant.w_bits=8 --set eval.max_windows=10
  --out DIR        root directory for result files (default: results)
  --dry-run        print each run's id and label, run nothing
  --json           print one JSON object per finished run on stdout (the table goes to stderr)
  --quiet          no progress lines
  --help           this text and the list of config keys

Paths in the config may use ${SERQ_ASSETS} (default: ../shared beside the source checkout) and other
environment variables. Exit status: 0 on success, 1 when a run fails or the config is invalid, 2 on bad usage.
)";

struct Options {
  std::string config;
  std::vector<std::string> sets;
  std::string out = "results";
  bool dry_run = false, json = false, quiet = false;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "serq-run: %s (see serq-run --help)\n", message.c_str());
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::printf("%s\nconfig keys:\n%s\nmethods (quant.method):\n%s", kUsage, serq::describe_config_keys().c_str(),
                  serq::describe_methods().c_str());
      std::exit(0);
    } else if (arg == "--set") {
      options.sets.push_back(value());
    } else if (arg.rfind("--set=", 0) == 0) {
      options.sets.push_back(arg.substr(6));
    } else if (arg == "--out") {
      options.out = value();
    } else if (arg == "--dry-run") {
      options.dry_run = true;
    } else if (arg == "--json") {
      options.json = true;
    } else if (arg == "--quiet") {
      options.quiet = true;
    } else if (!arg.empty() && arg[0] == '-') {
      usage_error("unknown option " + arg);
    } else if (options.config.empty()) {
      options.config = arg;
    } else {
      usage_error("more than one config file given: " + options.config + " and " + arg);
    }
  }
  if (options.config.empty()) usage_error("no config file given");
  return options;
}

int run(const Options& options) {
  using namespace serq;
  Progress::set_enabled(!options.quiet);
  const ExperimentPlan plan = load_experiment(options.config, options.sets, method_catalog());
  const std::string commit = build_info().git_commit;
  if (options.dry_run) {
    for (const ResolvedConfig& config : plan.runs) std::printf("%s  %s\n", config.run_id(commit).c_str(), config.label().c_str());
    return 0;
  }
  // Inputs found only at run time are checked for every run first, so a sweep never fails half way on a typo.
  for (const ResolvedConfig& config : plan.runs) {
    dataset_file(config.get_string("eval.dataset"), assets_root());
    dataset_file(config.get_string("calib.dataset"), assets_root());
    resolve_tokenizer(config.get_string("model.path"), config.get_string("model.tokenizer"));
  }
  std::FILE* table_stream = options.json ? stderr : stdout;
  AssetCache assets;
  std::vector<FinishedRun> finished;
  for (std::size_t i = 0; i < plan.runs.size(); ++i) {
    const ResolvedConfig& config = plan.runs[i];
    std::fprintf(stderr, "[%zu/%zu] %s\n", i + 1, plan.runs.size(), config.label().c_str());
    FinishedRun run{&config, execute_run(config, plan.experiment, assets), {}};
    run.result_file = std::filesystem::path(options.out) / plan.experiment / run.record.run_id / "run.h5";
    write_run_record(run.result_file, run.record);
    if (options.json) std::printf("%s\n", run_summary_json(run).dump().c_str());
    std::fflush(stdout);
    finished.push_back(std::move(run));
  }
  std::fprintf(table_stream, "\n%s", results_table(finished).c_str());
  std::fprintf(table_stream, "results: %s/%s/\n", options.out.c_str(), plan.experiment.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse_args(argc, argv);
  try {
    return run(options);
  } catch (const serq::Error& e) {
    std::fprintf(stderr, "serq-run: error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serq-run: internal error: %s\n", e.what());
  }
  return 1;
}
