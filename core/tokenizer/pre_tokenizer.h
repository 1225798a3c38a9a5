// Pre-tokenization for byte-level BPE: text is cut into pieces by a sequence of Unicode regexes (PCRE2 with UTF and
// Unicode properties), each applied to every piece the previous one made. A regex step keeps both its matches and
// the text between them as pieces (Hugging Face's Split with behavior Isolated).
//
// Named presets follow llama.cpp's tokenizer.ggml.pre names: gpt2 (and default), smollm (each digit alone, then
// GPT-2), llama3/llama-bpe, qwen2.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace serq {

// One compiled regex (PCRE2, UTF + UCP, JIT where available). Shareable between threads.
class UnicodeRegex {
 public:
  // Throws serq::Error naming `where` when the pattern does not compile.
  UnicodeRegex(const std::string& pattern, const std::string& where);
  UnicodeRegex(UnicodeRegex&&) noexcept;
  UnicodeRegex& operator=(UnicodeRegex&&) noexcept;
  ~UnicodeRegex();

  // Appends to `out` the pieces of `text`: each match, and each stretch between matches, in order; nothing empty.
  // Throws serq::Error when the text is not valid UTF-8.
  void split(std::string_view text, std::vector<std::string_view>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  std::unique_ptr<Code> code_;
  std::string pattern_;
};

// The GPT-2 pattern of Hugging Face's ByteLevel pre-tokenizer.
extern const char* const kGpt2Pattern;

class PreTokenizer {
 public:
  // A preset by its tokenizer.ggml.pre name; throws serq::Error naming `where` and the known names otherwise.
  static PreTokenizer preset(const std::string& name, const std::string& where);
  static std::vector<std::string> preset_names();

  void add_regex(const std::string& pattern, const std::string& where);
  // The pieces of `text`, views into it.
  std::vector<std::string_view> split(std::string_view text) const;
  // e.g. "regex[\p{N}] → regex['s|'t|...]", for result files.
  std::string describe() const;

 private:
  std::vector<UnicodeRegex> steps_;
};

}  // namespace serq
