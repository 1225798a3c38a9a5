// PCRE2-backed regex splitting and the named pre-tokenizer presets of byte-level BPE tokenizers.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/tokenizer/pre_tokenizer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pcre2.h>

#include <array>

#include "core/common/error.h"

namespace serq {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// llama.cpp's LLAMA_VOCAB_PRE_TYPE_LLAMA3 and _QWEN2 patterns (the tokenizer.json Split regexes of those models).
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kEachDigit = R"(\p{N})";

struct Preset {
  const char* name;
  std::vector<const char*> patterns;
};

const std::array<Preset, 6>& presets() {
  static const std::array<Preset, 6> kPresets = {{
      {"default", {kGpt2Pattern}},
      {"gpt2", {kGpt2Pattern}},
      {"smollm", {kEachDigit, kGpt2Pattern}},
      {"llama3", {kLlama3Pattern}},
      {"llama-bpe", {kLlama3Pattern}},
      {"qwen2", {kQwen2Pattern}},
  }};
  return kPresets;
}

std::string pcre2_message(int code) {
  std::array<PCRE2_UCHAR, 256> buffer{};
  pcre2_get_error_message(code, buffer.data(), buffer.size());
  return reinterpret_cast<const char*>(buffer.data());
}

}  // namespace

struct UnicodeRegex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

UnicodeRegex::UnicodeRegex(const std::string& pattern, const std::string& where)
    : code_(std::make_unique<Code>()), pattern_(pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                              &error, &offset, nullptr);
  SERQ_CHECK(code_->code, "{}: the pre-tokenizer regex '{}' does not compile at offset {} ({})", where, pattern,
             offset, pcre2_message(error));
  pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter where JIT is unavailable
}

UnicodeRegex::UnicodeRegex(UnicodeRegex&&) noexcept = default;
UnicodeRegex& UnicodeRegex::operator=(UnicodeRegex&&) noexcept = default;
UnicodeRegex::~UnicodeRegex() = default;

void UnicodeRegex::split(std::string_view text, std::vector<std::string_view>& out) const {
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t gap_start = 0, at = 0;
  std::uint32_t options = 0;  // PCRE2_NO_UTF_CHECK after the first call: the whole text was checked once
  while (at <= text.size()) {
    const int rc = pcre2_match(code_->code, subject, text.size(), at, options, match, nullptr);
    options = PCRE2_NO_UTF_CHECK;
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      const std::size_t bad_byte = pcre2_get_ovector_pointer(match)[0];  // where a UTF-8 error was found
      pcre2_match_data_free(match);
      fail("tokenizer: the text is not valid UTF-8 ({}, at byte {}); byte-level BPE reads UTF-8 text",
           pcre2_message(rc), bad_byte);
    }
    const PCRE2_SIZE* span = pcre2_get_ovector_pointer(match);
    const std::size_t begin = span[0], end = span[1];
    if (begin > gap_start) out.push_back(text.substr(gap_start, begin - gap_start));
    if (end > begin) {
      out.push_back(text.substr(begin, end - begin));
      at = end;
    } else {  // an empty match: step over one UTF-8 character
      at = begin + 1;
      while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
      if (begin >= text.size()) break;
      continue;
    }
    gap_start = end;
  }
  pcre2_match_data_free(match);
  if (gap_start < text.size()) out.push_back(text.substr(gap_start));
}

PreTokenizer PreTokenizer::preset(const std::string& name, const std::string& where) {
  for (const Preset& p : presets()) {
    if (name != p.name) continue;
    PreTokenizer pre;
    for (const char* pattern : p.patterns) pre.add_regex(pattern, where);
    return pre;
  }
  fail("{}: pre-tokenizer '{}' is not supported; serq knows {} (add its regex to core/tokenizer/pre_tokenizer.cpp)",
       where, name, fmt::join(preset_names(), ", "));
}

std::vector<std::string> PreTokenizer::preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : presets()) names.emplace_back(p.name);
  return names;
}

void PreTokenizer::add_regex(const std::string& pattern, const std::string& where) {
  steps_.emplace_back(pattern, where);
}

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> pieces{text};
  if (text.empty()) return {};
  for (const UnicodeRegex& step : steps_) {
    std::vector<std::string_view> next;
    for (std::string_view piece : pieces) step.split(piece, next);
    pieces = std::move(next);
  }
  return pieces;
}

std::string PreTokenizer::describe() const {
  std::vector<std::string> parts;
  for (const UnicodeRegex& step : steps_) parts.push_back(fmt::format("regex[{}]", step.pattern()));
  return parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, " → "));
}

}  // namespace serq
