// Text helpers shared by the corpus and task loaders: a whole file as bytes, Python's split/strip/replace semantics.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace serq {

// The whole file as bytes; a file that cannot be read is a serq::Error naming it.
std::string read_text_file(const std::filesystem::path& file);

// Python's str.split(separator): every occurrence splits, so n separators give n + 1 parts (empty ones included).
std::vector<std::string_view> split(std::string_view text, std::string_view separator);

// The lines of a text, split at '\n' with a trailing '\r' removed; a final '\n' does not start another line.
std::vector<std::string_view> split_lines(std::string_view text);

// Python's str.strip(): removes the code points str.isspace() accepts (ASCII and Unicode spaces, in UTF-8).
std::string_view python_strip(std::string_view text);

// Python's str.replace: one left-to-right pass; a replacement is never searched again.
std::string replace_all(std::string_view text, std::string_view from, std::string_view to);

}  // namespace serq
