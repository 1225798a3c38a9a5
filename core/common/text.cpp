// Whole files and Python's string semantics for the loaders (core/common/text.h).
#include "core/common/text.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <iterator>

#include "core/common/error.h"

namespace serq {

std::string read_text_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  SERQ_CHECK(in, "{}: cannot open the file; check that it exists and is readable", file.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::size_t utf8_sequence(std::string_view text, std::size_t at, std::size_t* bad) {
  const auto byte = [&](std::size_t i) { return at + i < text.size() ? static_cast<unsigned char>(text[at + i]) : 0; };
  const unsigned char lead = byte(0);
  if (lead >= 0x01 && lead <= 0x7F) return 1;
  // The second byte's range depends on the lead (no overlong forms, no surrogates, nothing past U+10FFFF).
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) length = 2;
  else if (lead == 0xE0) length = 3, low = 0xA0;
  else if (lead == 0xED) length = 3, high = 0x9F;
  else if (lead >= 0xE1 && lead <= 0xEF) length = 3;
  else if (lead == 0xF0) length = 4, low = 0x90;
  else if (lead == 0xF4) length = 4, high = 0x8F;
  else if (lead >= 0xF1 && lead <= 0xF3) length = 4;
  std::size_t good = length ? 1 : 0;
  for (; good < length; ++good) {
    const unsigned char next = byte(good);
    if (at + good >= text.size() || next < (good == 1 ? low : 0x80) || next > (good == 1 ? high : 0xBF)) break;
  }
  if (length && good == length) return length;
  *bad = std::max<std::size_t>(good, 1);
  return 0;
}

std::string checked_utf8(std::string bytes, const std::filesystem::path& file, InvalidUtf8 policy,
                         std::string_view key, std::int64_t* replaced) {
  std::string out;
  std::size_t copied = 0, line = 1, line_start = 0;
  std::int64_t count = 0;
  for (std::size_t at = 0; at < bytes.size();) {
    std::size_t bad = 0;
    const std::size_t length = utf8_sequence(bytes, at, &bad);
    if (length) {
      if (bytes[at] == '\n') line += 1, line_start = at + 1;
      at += length;
      continue;
    }
    if (policy == InvalidUtf8::error) {
      const auto first = static_cast<unsigned char>(bytes[at]);
      const bool utf16_mark = bytes.starts_with("\xFF\xFE") || bytes.starts_with("\xFE\xFF");
      const std::string looks = utf16_mark ? " (the file starts with a UTF-16 byte-order mark: it is UTF-16 text)"
                                : first == 0 ? " (a NUL byte: a binary file, or UTF-16 text)"
                                             : "";
      fail("{}:{}:{}: byte 0x{:02X} is not UTF-8 text{}; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8), "
           "or set {}: replace to read each bad byte as U+FFFD", file.string(), line, at - line_start + 1, first, looks,
           key);
    }
    out.append(bytes, copied, at - copied);
    out += "\xEF\xBF\xBD";  // U+FFFD
    count += static_cast<std::int64_t>(bad);
    at += bad;
    copied = at;
  }
  if (replaced) *replaced = count;
  if (copied == 0) return bytes;
  out.append(bytes, copied, std::string::npos);
  return out;
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (line.ends_with('\r')) line.remove_suffix(1);
    lines.push_back(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

std::vector<std::string_view> split(std::string_view text, std::string_view separator) {
  std::vector<std::string_view> parts;
  for (std::size_t begin = 0;;) {
    const std::size_t end = text.find(separator, begin);
    if (end == std::string_view::npos) {
      parts.push_back(text.substr(begin));
      return parts;
    }
    parts.push_back(text.substr(begin, end - begin));
    begin = end + separator.size();
  }
}

std::string_view python_strip(std::string_view text) {
  static constexpr std::array<std::string_view, 29> kSpaces = {
      "\t", "\n", "\v", "\f", "\r", "\x1C", "\x1D", "\x1E", "\x1F", " ",
      "\u0085", "\u00A0", "\u1680", "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006",
      "\u2007", "\u2008", "\u2009", "\u200A", "\u2028", "\u2029", "\u202F", "\u205F", "\u3000"};
  for (bool stripped = true; stripped;) {
    stripped = false;
    for (const std::string_view space : kSpaces) {
      if (text.starts_with(space)) {
        text.remove_prefix(space.size());
        stripped = true;
      }
      if (text.ends_with(space)) {
        text.remove_suffix(space.size());
        stripped = true;
      }
    }
  }
  return text;
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  for (std::size_t at = 0;;) {
    const std::size_t found = text.find(from, at);
    out.append(text.substr(at, found - at));
    if (found == std::string_view::npos) return out;
    out.append(to);
    at = found + from.size();
  }
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace serq
