// Finding results of the same configs from other commits (resume.h).
#include "experiments/resume.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>

#include "core/common/error.h"

namespace serq {

std::string EarlierResult::commit() const {
  const auto it = record.info.find("git_commit");
  return it == record.info.end() ? "unknown" : it->second;
}

std::map<std::string, std::vector<EarlierResult>> results_of_other_commits(const std::filesystem::path& results,
                                                                          const std::string& commit) {
  std::map<std::string, std::vector<EarlierResult>> found;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(results, error)) {
    const std::filesystem::path file = entry.path() / "run.h5";
    if (!std::filesystem::is_regular_file(file, error)) continue;
    try {
      EarlierResult result{file, read_run_record(file)};
      if (result.commit() != commit) found[result.record.config_yaml].push_back(std::move(result));
    } catch (const Error&) {
      // a damaged file is no result to reuse; --resume reports it where its own run meets it
    }
  }
  for (auto& [config, list] : found) {
    auto finished_at = [](const EarlierResult& result) {
      const auto it = result.record.info.find("finished_at");
      return it == result.record.info.end() ? std::string() : it->second;
    };
    std::ranges::sort(list, std::greater<>(), finished_at);
  }
  return found;
}

const EarlierResult* other_commit_result(const ResultsByConfig& others, const ResolvedConfig& config) {
  const auto it = others.find(config.to_yaml());
  return it == others.end() ? nullptr : &it->second.front();
}

void refuse_silent_redo(const std::vector<const ResolvedConfig*>& runs, const std::filesystem::path& results,
                        const std::string& commit, const ResultsByConfig& others) {
  std::map<std::string, int> by_commit;
  std::size_t to_do = 0, found = 0;
  for (const ResolvedConfig* config : runs) {
    if (std::filesystem::exists(results / config->run_id(commit) / "run.h5")) continue;
    ++to_do;
    if (const EarlierResult* earlier = other_commit_result(others, *config)) {
      ++by_commit[earlier->commit()];
      ++found;
    }
  }
  if (found == 0) return;
  std::string commits;
  for (const auto& [other, count] : by_commit) {
    commits += fmt::format("{}{} at {}", commits.empty() ? "" : ", ", count, other);
  }
  fail("--resume: {} of the {} runs to do have results of the same config from another commit in {}/ ({}); pass "
       "--resume=any-commit to reuse them, or --resume=this-commit to compute them again (serq-merge {} compares "
       "results across commits)", found, to_do, results.string(), commits, results.string());
}

}  // namespace serq
