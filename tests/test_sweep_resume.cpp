// Sweeps as a researcher runs them: killed in the middle (SIGKILL as a crash, SIGTERM as a scheduler's stop), then
// resumed with nothing lost or duplicated; shards that split a sweep without overlap; the sbatch script; and the
// one-line errors of a bad shard spec.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "core/formats/hdf5_file.h"
#include "core/formats/result_file.h"
#include "tests/assets.h"
#include "tests/support/cli.h"

using namespace serq;

namespace {

// Four rtn runs of a few seconds each on stories260K.
const char* kSweep = R"(experiment:
  name: resume
model:
  path: ${SERQ_ASSETS}/models/stories260K-hf
quant:
  method: rtn
  a_bits: 8
eval:
  seq_len: 128
  max_windows: 96
sweep:
  quant.w_bits: [4, 8]
  quant.group_size: [32, channel]
)";

std::filesystem::path write_config(const std::filesystem::path& dir) {
  const auto path = dir / "sweep.yaml";
  std::ofstream(path) << kSweep;
  return path;
}

pid_t start_serq_run(const std::vector<std::string>& args, const std::filesystem::path& dir) {
  return test::start_binary("serq-run", args, dir);
}

int run_serq_run(const std::vector<std::string>& args, const std::filesystem::path& dir) {
  return test::wait_exit_status(start_serq_run(args, dir));
}

// run.h5 files under `root`, by run id (the directory name).
std::map<std::string, std::filesystem::path> result_files(const std::filesystem::path& root) {
  std::map<std::string, std::filesystem::path> files;
  if (!std::filesystem::exists(root)) return files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.path().filename() == "run.h5") files[entry.path().parent_path().filename().string()] = entry.path();
  }
  return files;
}

// Waits until at least one run has finished, then sends `signal`; returns serq-run's exit status.
int interrupt_after_first_run(pid_t pid, const std::filesystem::path& results, int signal) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (result_files(results).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, signal);
  return test::wait_exit_status(pid);
}

std::vector<std::string> dry_run_ids(const std::filesystem::path& config, const std::filesystem::path& dir,
                                     const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {config.string(), "--dry-run"};
  args.insert(args.end(), extra.begin(), extra.end());
  REQUIRE(run_serq_run(args, dir) == 0);
  std::istringstream lines(test::read_bytes(dir / "stdout.txt"));
  std::vector<std::string> ids;
  for (std::string line; std::getline(lines, line);) ids.push_back(line.substr(0, line.find(' ')));
  return ids;
}

// Kills a sweep with `signal` after its first finished run, resumes it, and checks that every point ends with
// exactly one readable record, that the records finished before the kill were kept as they were, and that the
// merged table has every point once. `sets` shrink the sweep's runs to seconds.
void check_kill_and_resume(const std::string& name, const std::filesystem::path& config,
                           const std::vector<std::string>& sets, std::size_t points, int signal) {
  const auto dir = test::scratch_dir(name);
  const auto results = dir / "results";
  const std::vector<std::string> ids = dry_run_ids(config, dir, sets);
  REQUIRE(ids.size() == points);

  std::vector<std::string> args = {config.string(), "--quiet", "--out", results.string()};
  args.insert(args.end(), sets.begin(), sets.end());
  const pid_t pid = start_serq_run(args, dir);
  const int status = interrupt_after_first_run(pid, results, signal);
  const auto before = result_files(results);
  INFO("stderr of the killed sweep: " << test::read_bytes(dir / "stderr.txt"));
  REQUIRE(!before.empty());
  REQUIRE(before.size() < ids.size());  // killed in the middle: if this fails, the sweep ran too fast to test
  CHECK(status == 128 + signal);
  std::map<std::string, std::string> kept;
  for (const auto& [id, file] : before) kept[id] = test::read_bytes(file);
  if (signal == SIGTERM) {
    const std::string err = test::read_bytes(dir / "stderr.txt");
    CHECK(err.find("interrupted by SIGTERM") != std::string::npos);
    CHECK(err.find(std::to_string(before.size()) + " finished runs are intact") != std::string::npos);
    CHECK(err.find("--resume") != std::string::npos);
  }

  args.push_back("--resume");
  REQUIRE(run_serq_run(args, dir) == 0);
  const std::string err = test::read_bytes(dir / "stderr.txt");
  const auto after = result_files(results);
  std::set<std::string> found;
  for (const auto& [id, file] : after) {
    found.insert(id);
    CHECK(read_run_record(file).run_id == id);
  }
  CHECK(found == std::set<std::string>(ids.begin(), ids.end()));
  for (const auto& [id, bytes] : kept) {
    CHECK(test::read_bytes(after.at(id)) == bytes);  // not run again, not rewritten
    CHECK(err.find(id) != std::string::npos);        // named as skipped
  }
  std::size_t skipped = 0;
  for (std::size_t at = err.find("finished earlier, skipped"); at != std::string::npos;
       at = err.find("finished earlier, skipped", at + 1)) {
    ++skipped;
  }
  CHECK(skipped == before.size());
  for (const auto& entry : std::filesystem::recursive_directory_iterator(results)) {
    CHECK(entry.path().filename().string().find(".tmp-") == std::string::npos);
  }

  // The merged table has every point exactly once.
  const std::vector<std::string> merge = {results.string(), "--out", (dir / "merged").string()};
  REQUIRE(test::run_binary("serq-merge", merge, dir).status == 0);
  CHECK(test::read_bytes(dir / "merged.csv").rfind("run_id,", 0) == 0);
  const std::vector<std::string> rows = Hdf5Reader(dir / "merged.h5", "not a merged table", "").strings("runs/run_id");
  const std::multiset<std::string> merged(rows.begin(), rows.end());
  CHECK(merged == std::multiset<std::string>(ids.begin(), ids.end()));
}

}  // namespace

TEST_CASE("the rank-ablation sweep killed (SIGKILL) in the middle resumes with nothing lost or duplicated", "[sweep]") {
  // configs/ablation_rank_stories.yaml as shipped (20 points: rank × format × weight quantizer), on fewer windows.
  const std::vector<std::string> small = {"--set", "eval.max_windows=4", "--set", "eval.seq_len=128",
                                          "--set", "calib.samples=8", "--set", "calib.seq_len=128",
                                          "--set", "eval.layer_error_samples=1"};
  check_kill_and_resume("sweep_sigkill", std::string(SERQ_SOURCE_DIR) + "/configs/ablation_rank_stories.yaml", small, 20,
                        SIGKILL);
}

TEST_CASE("a sweep stopped by SIGTERM says what it skipped and resumes", "[sweep]") {
  const auto dir = test::scratch_dir("sweep_sigterm_config");
  check_kill_and_resume("sweep_sigterm", write_config(dir), {}, 4, SIGTERM);
}

TEST_CASE("shards split a sweep into disjoint parts that cover it", "[sweep]") {
  const auto dir = test::scratch_dir("sweep_shards");
  const auto config = write_config(dir);
  const std::vector<std::string> all = dry_run_ids(config, dir);
  std::multiset<std::string> union_of_shards;
  for (int i = 0; i < 3; ++i) {
    for (const std::string& id : dry_run_ids(config, dir, {"--shard", std::to_string(i) + "/3"})) {
      union_of_shards.insert(id);
    }
  }
  CHECK(union_of_shards == std::multiset<std::string>(all.begin(), all.end()));
  // Inside a SLURM array task, the shard comes from the environment.
  setenv("SLURM_ARRAY_TASK_ID", "1", 1);
  setenv("SLURM_ARRAY_TASK_COUNT", "2", 1);
  const std::vector<std::string> task = dry_run_ids(config, dir);
  unsetenv("SLURM_ARRAY_TASK_ID");
  unsetenv("SLURM_ARRAY_TASK_COUNT");
  CHECK(task == std::vector<std::string>{all[1], all[3]});
}

TEST_CASE("a shard spec out of range or malformed is a one-line error", "[sweep][errors]") {
  const auto dir = test::scratch_dir("sweep_bad_shard");
  const auto config = write_config(dir);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"4/4", "--shard 4/4: shard 4 is out of range; use 0..3 (I/N with 0 ≤ I < N)"},
      {"-1/4", "--shard -1/4: shard -1 is out of range; use 0..3 (I/N with 0 ≤ I < N)"},
      {"1/0", "--shard 1/0: N = 0 shards; use N ≥ 1"},
      {"two", "--shard two: expected I/N with integers, e.g. --shard 0/4 (shard 0 of 4)"}};
  for (const auto& [spec, message] : cases) {
    CHECK(run_serq_run({config.string(), "--dry-run", "--shard", spec}, dir) == 1);
    CHECK(test::read_bytes(dir / "stderr.txt") == "serq-run: error: " + message + "\n");
  }
  setenv("SLURM_ARRAY_TASK_ID", "5", 1);
  setenv("SLURM_ARRAY_TASK_COUNT", "2", 1);
  CHECK(run_serq_run({config.string(), "--dry-run"}, dir) == 1);
  unsetenv("SLURM_ARRAY_TASK_ID");
  unsetenv("SLURM_ARRAY_TASK_COUNT");
  CHECK(test::read_bytes(dir / "stderr.txt") ==
        "serq-run: error: SLURM array task 5 (min 0) is outside the 2 tasks of the array; submit with a contiguous "
        "--array=0-(N-1), or pass --shard I/N\n");
}

TEST_CASE("serq-run --emit-sbatch writes an array script that resumes each shard", "[sweep]") {
  const auto dir = test::scratch_dir("sweep_sbatch");
  const auto config = write_config(dir);
  const auto script = dir / "job.sh";
  REQUIRE(run_serq_run({config.string(), "--emit-sbatch", script.string(), "--out", (dir / "results").string(),
                        "--array-tasks", "3", "--sbatch-option=--time=1:00:00", "--set", "eval.max_windows=2"},
                       dir) == 0);
  const std::string text = test::read_bytes(script);
  CHECK(text.rfind("#!/bin/bash\n", 0) == 0);
  CHECK(text.find("#SBATCH --array=0-2\n") != std::string::npos);
  CHECK(text.find("#SBATCH --job-name=serq-resume\n") != std::string::npos);
  CHECK(text.find("#SBATCH --time=1:00:00\n") != std::string::npos);
  CHECK(text.find("#SBATCH --output=" + (dir / "results" / "resume").string() + "/slurm-%A_%a.log\n") !=
        std::string::npos);
  CHECK(text.find("--resume --set 'eval.max_windows=2'\n") != std::string::npos);
  CHECK(text.find("export SERQ_ASSETS='") != std::string::npos);
  CHECK(std::filesystem::is_directory(dir / "results" / "resume"));  // sbatch needs the log directory to exist
  CHECK((std::filesystem::status(script).permissions() & std::filesystem::perms::owner_exec) !=
        std::filesystem::perms::none);

  // A noise floor of one kind passes both options on to every task.
  const auto noise_script = dir / "noise.sh";
  REQUIRE(run_serq_run({config.string(), "--emit-sbatch", noise_script.string(), "--out", (dir / "results").string(),
                        "--noise-floor", "3", "--noise-kinds", "rounding"}, dir) == 0);
  CHECK(test::read_bytes(noise_script).find("--resume --noise-floor 3 --noise-kinds 'rounding'\n") != std::string::npos);
}

namespace {

// The JSON lines (one per run it computed) a serq-run printed.
std::size_t computed_runs(const std::string& stdout_text) {
  return static_cast<std::size_t>(std::count(stdout_text.begin(), stdout_text.end(), '\n'));
}

}  // namespace

TEST_CASE("two serq-runs on one --out compute each run once and both report every run", "[sweep][lock]") {
  const auto dir = test::scratch_dir("sweep_two_processes");
  const auto config = write_config(dir);
  const auto results = dir / "results";
  const std::vector<std::filesystem::path> logs = {dir / "first", dir / "second"};
  std::vector<pid_t> pids;
  for (const auto& log : logs) {
    std::filesystem::create_directories(log);
    pids.push_back(test::start_binary("serq-run", {config.string(), "--quiet", "--json", "--out", results.string()},
                                      log));
  }
  std::size_t computed = 0;
  std::string errors;
  for (std::size_t p = 0; p < pids.size(); ++p) {
    CHECK(test::wait_exit_status(pids[p]) == 0);
    computed += computed_runs(test::read_bytes(logs[p] / "stdout.txt"));
    errors += test::read_bytes(logs[p] / "stderr.txt");
  }
  INFO("stderr of both: " << errors);
  CHECK(computed == 4);  // each run once, by one of the two
  CHECK(result_files(results).size() == 4);
  CHECK(errors.find("another serq-run") != std::string::npos);  // the second said what it did not compute
  CHECK(errors.find("remove what is there") == std::string::npos);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(results)) {
    CHECK(entry.path().filename().string().find(".tmp-") == std::string::npos);
  }
}

TEST_CASE("serq-run --resume after the code changed stops and says how many results exist: any-commit reuses them and "
          "this-commit recomputes them", "[sweep][resume]") {
  const auto dir = test::scratch_dir("sweep_resume_commits");
  const auto config = write_config(dir);
  const auto results = dir / "results";
  const std::vector<std::string> args = {config.string(), "--quiet", "--json", "--out", results.string(),
                                         "--set", "eval.max_windows=4"};
  REQUIRE(run_serq_run(args, dir) == 0);
  // The same four results as another commit wrote them: another commit in the record, another run id.
  for (const auto& [id, file] : result_files(results / "resume")) {
    RunRecord record = read_run_record(file);
    record.info["git_commit"] = "0123456789abcdef0123456789abcdef01234567";
    record.run_id = "other-" + id;
    write_run_record(results / "resume" / record.run_id / "run.h5", record);
    std::filesystem::remove_all(file.parent_path());
  }

  auto resume = [&](const std::string& flag) {
    std::vector<std::string> with = args;
    with.push_back(flag);
    return run_serq_run(with, dir);
  };
  CHECK(resume("--resume") == 1);
  const std::string refusal = test::read_bytes(dir / "stderr.txt");
  CHECK(std::count(refusal.begin(), refusal.end(), '\n') == 1);
  CHECK(refusal.find("4 of the 4 runs to do have results of the same config from another commit") !=
        std::string::npos);
  CHECK(refusal.find("4 at 0123456789abcdef") != std::string::npos);
  CHECK(refusal.find("--resume=any-commit") != std::string::npos);
  CHECK(refusal.find("--resume=this-commit") != std::string::npos);
  CHECK(result_files(results / "resume").size() == 4);  // nothing run, nothing written

  CHECK(resume("--resume=any-commit") == 0);
  CHECK(computed_runs(test::read_bytes(dir / "stdout.txt")) == 0);
  const std::string reused = test::read_bytes(dir / "stderr.txt");
  std::size_t count = 0;
  for (std::size_t at = reused.find("finished at commit 0123456789abcdef"); at != std::string::npos;
       at = reused.find("finished at commit 0123456789abcdef", at + 1)) {
    ++count;
  }
  CHECK(count == 4);

  CHECK(resume("--resume=this-commit") == 0);
  CHECK(computed_runs(test::read_bytes(dir / "stdout.txt")) == 4);
  CHECK(result_files(results / "resume").size() == 8);
}
