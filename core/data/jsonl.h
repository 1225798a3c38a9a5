// Line-oriented data files (JSONL, and the task files read line by line): the eval.bad_lines policy for malformed
// lines, and a JSONL reader that hands each parsed line to a handler which may reject it.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace serq {

enum class BadLinePolicy { error, skip };

// What is wrong with one line (a missing or mistyped field, a gold out of range), thrown by a line handler without
// the file or line: the reader that called the handler adds "<file>:<line>: " and applies the BadLinePolicy.
class BadLine : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The malformed lines of one file. Under error the first one is a serq::Error
// "<file>:<line>: <why>; fix the line or set eval.bad_lines: skip". Under skip they are counted, and finish() prints
// one summary line to stderr: "<file>: skipped N malformed lines (first at line L: <why>)".
class BadLines {
 public:
  BadLines(std::filesystem::path file, BadLinePolicy policy);

  void add(int line, std::string_view why);
  // Runs handle(); a BadLine it throws is add()ed as this line's. Returns whether the line was good.
  bool check(int line, const std::function<void()>& handle);
  // Prints the summary (once, and only if lines were skipped) and returns how many were.
  int finish();

 private:
  std::filesystem::path file_;
  BadLinePolicy policy_;
  int skipped_ = 0;
  int first_line_ = 0;
  std::string first_why_;
  bool finished_ = false;
};

struct JsonlStats {
  int lines = 0;    // lines in the file, empty ones included
  int skipped = 0;  // malformed lines left out under BadLinePolicy::skip
};

// Calls handle(line_number, object) for every non-empty line of a JSONL file, in order (1-based line numbers). A
// line that is not JSON or not a JSON object, or whose handler throws BadLine, goes to the policy; the skip summary
// is printed before returning. A file that cannot be read is a serq::Error.
JsonlStats read_jsonl(const std::filesystem::path& file, BadLinePolicy policy,
                      const std::function<void(int line, const nlohmann::json& object)>& handle);

}  // namespace serq
