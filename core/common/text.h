// Text helpers shared by the corpus and task loaders: a whole file as bytes, Python's split/strip/replace semantics.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace serq {

// The whole file as bytes; a file that cannot be read is a serq::Error naming it.
std::string read_text_file(const std::filesystem::path& file);

// What to do with bytes of a text file that are not UTF-8 (or are NUL): stop, or replace them.
enum class InvalidUtf8 { error, replace };

// The length of the well-formed UTF-8 sequence at text[at] (Unicode Table 3-7; NUL counts as ill-formed), or 0 when
// it is ill-formed, with `bad` set to the length of its maximal subpart (what one U+FFFD replaces, at least 1).
std::size_t utf8_sequence(std::string_view text, std::size_t at, std::size_t* bad);

// `bytes` of `file` checked to be UTF-8 text. With `error` the first bad byte is a serq::Error
// "<file>:<line>:<column>: ..." (column in bytes, 1-based) that says what the file looks like (UTF-16, binary) and
// names `key`, the setting that replaces instead; with `replace` each maximal bad subpart becomes U+FFFD and
// `*replaced` (when given) counts the bytes replaced.
std::string checked_utf8(std::string bytes, const std::filesystem::path& file, InvalidUtf8 policy,
                         std::string_view key, std::int64_t* replaced = nullptr);

// Python's str.split(separator): every occurrence splits, so n separators give n + 1 parts (empty ones included).
std::vector<std::string_view> split(std::string_view text, std::string_view separator);

// The lines of a text, split at '\n' with a trailing '\r' removed; a final '\n' does not start another line.
std::vector<std::string_view> split_lines(std::string_view text);

// Python's str.strip(): removes the code points str.isspace() accepts (ASCII and Unicode spaces, in UTF-8).
std::string_view python_strip(std::string_view text);

// Python's str.replace: one left-to-right pass; a replacement is never searched again.
std::string replace_all(std::string_view text, std::string_view from, std::string_view to);

// The Levenshtein distance between a and b in bytes (insertions, deletions and substitutions of one byte each), for
// "did you mean" hints.
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace serq
