// --resume across code versions: a run id hashes the resolved config and the commit, so after the code changes no
// result has the new ids. The results of the same configs from other commits are found here by their config text,
// so serq-run can say how many there are and let the user reuse them (--resume=any-commit) or recompute them
// (--resume=this-commit) instead of silently redoing a sweep of hours.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/config/run_config.h"
#include "core/formats/result_file.h"

namespace serq {

// What --resume does with a run that has no result at this commit but one of the same config from another commit.
enum class ResumeMode {
  off,          // no --resume: every run is computed
  ask,          // --resume: stop before any work, saying how many such results exist and what to pass
  this_commit,  // --resume=this-commit: compute them again at this commit
  any_commit,   // --resume=any-commit: take them as finished
};

struct EarlierResult {
  std::filesystem::path file;
  RunRecord record;
  std::string commit() const;  // info/git_commit, or "unknown"
};

// The readable run records under `results` (<results>/<run_id>/run.h5) not written at `commit`, by config text
// (RunRecord::config_yaml); the newest first. Unreadable files are left out.
std::map<std::string, std::vector<EarlierResult>> results_of_other_commits(const std::filesystem::path& results,
                                                                          const std::string& commit);

using ResultsByConfig = std::map<std::string, std::vector<EarlierResult>>;

// The newest result of `config`'s config text in `others`, or nullptr.
const EarlierResult* other_commit_result(const ResultsByConfig& others, const ResolvedConfig& config);

// Plain --resume: a one-line serq::Error when runs without a result at `commit` under `results` have results of the
// same config in `others`: "<n> of the <m> runs to do ... (n at abc, ...); pass --resume=any-commit ... or
// --resume=this-commit ... (serq-merge <results> compares results across commits)".
void refuse_silent_redo(const std::vector<const ResolvedConfig*>& runs, const std::filesystem::path& results,
                        const std::string& commit, const ResultsByConfig& others);

}  // namespace serq
