// The bad-line policy and the JSONL reader (nlohmann_json, one object per line).
#include "core/data/jsonl.h"

#include <fmt/format.h>

#include <cstdio>
#include <utility>

#include "core/common/error.h"
#include "core/common/text.h"

namespace serq {

BadLines::BadLines(std::filesystem::path file, BadLinePolicy policy) : file_(std::move(file)), policy_(policy) {}

void BadLines::add(int line, std::string_view why) {
  if (policy_ == BadLinePolicy::error) {
    fail("{}:{}: {}; fix the line or set eval.bad_lines: skip", file_.string(), line, why);
  }
  if (skipped_++ == 0) {
    first_line_ = line;
    first_why_ = why;
  }
}

bool BadLines::check(int line, const std::function<void()>& handle) {
  try {
    handle();
    return true;
  } catch (const BadLine& bad) {
    add(line, bad.what());
    return false;
  }
}

int BadLines::finish() {
  if (skipped_ > 0 && !finished_) {
    fmt::print(stderr, "{}: skipped {} malformed line{} (first at line {}: {})\n", file_.string(), skipped_,
               skipped_ == 1 ? "" : "s", first_line_, first_why_);
  }
  finished_ = true;
  return skipped_;
}

JsonlStats read_jsonl(const std::filesystem::path& file, BadLinePolicy policy,
                      const std::function<void(int line, const nlohmann::json& object)>& handle) {
  const std::string text = read_text_file(file);
  BadLines bad_lines(file, policy);
  const std::vector<std::string_view> lines = split_lines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t") == std::string_view::npos) continue;
    const int line = static_cast<int>(i) + 1;
    bad_lines.check(line, [&] {
      nlohmann::json object;
      try {
        object = nlohmann::json::parse(lines[i]);
      } catch (const nlohmann::json::parse_error& e) {
        throw BadLine(fmt::format("not valid JSON (syntax error at byte {})", e.byte));
      }
      if (!object.is_object()) throw BadLine(fmt::format("a JSON {}, not an object", object.type_name()));
      handle(line, object);
    });
  }
  return {.lines = static_cast<int>(lines.size()), .skipped = bad_lines.finish()};
}

}  // namespace serq
