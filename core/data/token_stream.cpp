// Loaders that turn the evaluation and calibration corpora into token streams, with their BOS policy recorded.
#include "core/data/token_stream.h"

#include <nlohmann/json.hpp>

#include <array>
#include <fstream>
#include <iterator>

#include "core/common/error.h"

namespace serq {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kStorySeparator = "<|endoftext|>";
constexpr std::size_t kWholeStories = 2316;
constexpr std::size_t kCalibrationStories = 1158;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  SERQ_CHECK(in, "{}: cannot open the file; check that it exists and is readable", path.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Python's str.strip(): removes the code points str.isspace() accepts, written here in UTF-8.
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

// One BOS, then the whole text encoded at once.
TokenStream bos_then_text(const Tokenizer& tokenizer, const std::string& text, int bos_id, const fs::path& source) {
  SERQ_CHECK(!text.empty(), "{}: the text is empty; evaluate on a file that has text in it", source.string());
  TokenStream stream;
  stream.tokens.push_back(bos_id);
  const std::vector<int> ids = tokenizer.encode(text);
  stream.tokens.insert(stream.tokens.end(), ids.begin(), ids.end());
  return stream;
}

}  // namespace

TokenStream tinystories_half(const Tokenizer& tokenizer, const fs::path& path, int bos_id, TinyStoriesHalf half) {
  const std::string text = read_file(path);
  const std::vector<std::string_view> stories = split(text, kStorySeparator);
  SERQ_CHECK(stories.size() > kWholeStories, "{}: {} stories separated by {}, but the protocol needs {} whole stories "
             "and a cut-off one; use the first 2 MiB of TinyStories-train (V1)", path.string(),
             stories.size(), kStorySeparator, kWholeStories);
  const bool calibration = half == TinyStoriesHalf::calibration;
  const std::size_t first = calibration ? 0 : kCalibrationStories;
  const std::size_t last = calibration ? kCalibrationStories : kWholeStories;

  TokenStream stream;
  stream.name = calibration ? "tinystories-calib" : "tinystories-eval";
  stream.bos_policy = "BOS before each story";
  for (std::size_t s = first; s < last; ++s) {
    stream.tokens.push_back(bos_id);
    const std::vector<int> ids = tokenizer.encode(python_strip(stories[s]));
    stream.tokens.insert(stream.tokens.end(), ids.begin(), ids.end());
  }
  return stream;
}

TokenStream wikitext2(const Tokenizer& tokenizer, const fs::path& hf_rows_json, int bos_id) {
  nlohmann::json rows;
  try {
    rows = nlohmann::json::parse(read_file(hf_rows_json));
  } catch (const nlohmann::json::parse_error& e) {
    fail("{}: not valid JSON ({}); re-fetch the file", hf_rows_json.string(), e.what());
  }
  SERQ_CHECK(rows.is_array(), "{}: expected a JSON list of the test split's text rows; re-fetch the file",
             hf_rows_json.string());
  std::string joined;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    SERQ_CHECK(rows[r].is_string(), "{}: row {} is not a string; expected a JSON list of text rows",
               hf_rows_json.string(), r);
    if (r > 0) joined += "\n\n";
    joined += rows[r].get_ref<const std::string&>();
  }
  TokenStream stream = bos_then_text(tokenizer, joined, bos_id, hf_rows_json);
  stream.name = "wikitext2";
  stream.bos_policy = "one BOS, then the test rows joined with \"\\n\\n\" (GPTQ style)";
  return stream;
}

TokenStream plain_text(const Tokenizer& tokenizer, const fs::path& path, int bos_id) {
  TokenStream stream = bos_then_text(tokenizer, read_file(path), bos_id, path);
  stream.name = path.string();
  stream.bos_policy = "one BOS before the whole file";
  return stream;
}

fs::path dataset_file(std::string_view name_or_path, const fs::path& assets_root) {
  const fs::path tinystories = assets_root / "data/text/tinystories/TinyStories-train.head2MiB.txt";
  const fs::path path = name_or_path == "tinystories-eval" || name_or_path == "tinystories-calib" ? tinystories
                        : name_or_path == "wikitext2" ? assets_root / "data/text/wikitext2/wiki.test.hf_rows.json"
                        : name_or_path == "ptb"       ? assets_root / "data/text/ptb/ptb.test.txt"
                                                      : fs::path(name_or_path);
  SERQ_CHECK(fs::is_regular_file(path), "eval.dataset: {} does not exist; use one of tinystories-eval, "
             "tinystories-calib, wikitext2, ptb or a text file path", path.string());
  return path;
}

TokenStream load_dataset(std::string_view name_or_path, const Tokenizer& tokenizer, int bos_id,
                         const fs::path& assets_root) {
  const fs::path path = dataset_file(name_or_path, assets_root);
  if (name_or_path == "tinystories-eval") return tinystories_half(tokenizer, path, bos_id, TinyStoriesHalf::evaluation);
  if (name_or_path == "tinystories-calib")
    return tinystories_half(tokenizer, path, bos_id, TinyStoriesHalf::calibration);
  if (name_or_path == "wikitext2") return wikitext2(tokenizer, path, bos_id);
  TokenStream stream = plain_text(tokenizer, path, bos_id);
  if (name_or_path == "ptb") stream.name = "ptb";
  return stream;
}

}  // namespace serq
