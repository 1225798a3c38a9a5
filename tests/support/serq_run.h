// serq-run from the tests: a run with its arguments, the config written beside it, the small stories260K run most
// CLI tests start from, and the check that an error is one line naming what it must.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/cli.h"

namespace serq::test {

// serq-run with the arguments (words split at spaces); `env` ("NAME=value ...") is set for serq-run alone; a
// `wrapper` (tests/support/sandbox.h) runs it.
inline CliOutput serq_run(const std::string& args, const std::filesystem::path& dir, const std::string& env = "",
                          const std::vector<std::string>& wrapper = {}) {
  return run_binary("serq-run", words(args), dir, words(env), wrapper);
}

inline std::filesystem::path write_config(const std::filesystem::path& dir, const std::string& yaml) {
  const auto path = dir / "config.yaml";
  std::ofstream(path) << yaml;
  return path;
}

// RTN W4A4 on stories260K, 4 windows of 512: about a second.
inline const char* kSmallRun = R"(experiment:
  name: smoke
model:
  path: ${SERQ_ASSETS}/models/stories260K-hf
quant:
  method: rtn
  w_bits: 4
  a_bits: 4
  group_size: 32
eval:
  dataset: tinystories-eval
  max_windows: 4
)";

// The error is one line on stderr, mentions every fragment, and the exit status is non-zero.
inline void check_one_line_error(const CliOutput& out, const std::vector<std::string>& fragments) {
  INFO("stderr: " << out.err);
  CHECK(out.status != 0);
  CHECK(std::count(out.err.begin(), out.err.end(), '\n') == 1);
  for (const auto& f : fragments) CHECK(out.err.find(f) != std::string::npos);
}

}  // namespace serq::test
