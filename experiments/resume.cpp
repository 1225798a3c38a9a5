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

std::string other_commits_message(const std::vector<const EarlierResult*>& found, std::size_t runs_to_do,
                                  const std::filesystem::path& results) {
  std::map<std::string, int> by_commit;
  for (const EarlierResult* result : found) ++by_commit[result->commit()];
  std::string commits;
  for (const auto& [commit, count] : by_commit) commits += fmt::format("{}{} at {}", commits.empty() ? "" : ", ", count, commit);
  return fmt::format("--resume: {} of the {} runs to do have results of the same config from another commit in {}/ "
                     "({}); pass --resume=any-commit to reuse them, or --resume=this-commit to compute them again "
                     "(serq-merge {} compares results across commits)", found.size(), runs_to_do, results.string(),
                     commits, results.string());
}

}  // namespace serq
