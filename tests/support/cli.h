// serq's binaries (serq-run, serq-merge) run from the tests: arguments as words, extra environment entries, and
// stdout and stderr to files in the test's scratch folder.
#pragma once

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tests/assets.h"

extern char** environ;

namespace serq::test {

// The words of `text`, split at spaces (the tests' arguments and paths have none inside).
inline std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

// Starts build/<binary> with `args`, this process's environment with `env` ("NAME=value") in front, and stdout and
// stderr to dir/stdout.txt and dir/stderr.txt; returns the child's pid. A `wrapper` command (found on PATH) runs
// first and is given the binary and its arguments, e.g. {"unshare", "-rm", ...} (tests/support/sandbox.h).
inline pid_t start_binary(const std::string& binary, const std::vector<std::string>& args,
                          const std::filesystem::path& dir, const std::vector<std::string>& env = {},
                          const std::vector<std::string>& wrapper = {}) {
  std::vector<std::string> argv_text = wrapper;
  argv_text.push_back(std::string(SERQ_BINARY_DIR) + "/" + binary);
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv, envp;
  for (std::string& arg : argv_text) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_text = env;  // getenv takes the first of equal names: the extra entries win
  for (char** entry = environ; *entry; ++entry) env_text.emplace_back(*entry);
  for (std::string& entry : env_text) envp.push_back(entry.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 1, (dir / "stdout.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&files, 2, (dir / "stderr.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int status = posix_spawnp(&pid, argv[0], &files, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&files);
  REQUIRE(status == 0);
  return pid;
}

// The child's exit status, or 128 + the signal that ended it.
inline int wait_exit_status(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct CliOutput {
  int status;
  std::string out, err;
};

// Runs the binary to its end (start_binary) and reads what it printed.
inline CliOutput run_binary(const std::string& binary, const std::vector<std::string>& args,
                            const std::filesystem::path& dir, const std::vector<std::string>& env = {},
                            const std::vector<std::string>& wrapper = {}) {
  const int status = wait_exit_status(start_binary(binary, args, dir, env, wrapper));
  return {status, read_bytes(dir / "stdout.txt"), read_bytes(dir / "stderr.txt")};
}

}  // namespace serq::test
