// Loaders that turn the evaluation and calibration corpora into token streams, with their BOS policy recorded.
#include "core/data/token_stream.h"

#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/common/text.h"

namespace serq {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kStorySeparator = "<|endoftext|>";
constexpr std::size_t kWholeStories = 2316;
constexpr std::size_t kCalibrationStories = 1158;

// "one BOS, then <what>" or "no BOS (the tokenizer adds none), then <what>".
std::string bos_then(const OptionalBos& bos, const std::string& what) {
  return (bos ? "one BOS, then " : "no BOS (the tokenizer adds none), then ") + what;
}

constexpr std::string_view kInvalidUtf8Key = "eval.invalid_utf8";

// The file's text, checked to be UTF-8; the bytes replaced are counted into `stream`.
std::string read_dataset_text(const fs::path& path, InvalidUtf8 invalid, TokenStream& stream) {
  return checked_utf8(read_text_file(path), path, invalid, kInvalidUtf8Key, &stream.invalid_utf8_bytes);
}

// [BOS], then the whole text encoded at once.
TokenStream bos_then_text(const Tokenizer& tokenizer, const std::string& text, OptionalBos bos, const fs::path& source) {
  SERQ_CHECK(!text.empty(), "{}: the text is empty; evaluate on a file that has text in it", source.string());
  TokenStream stream;
  if (bos) stream.tokens.push_back(*bos);
  const std::vector<int> ids = tokenizer.encode(text);
  stream.tokens.insert(stream.tokens.end(), ids.begin(), ids.end());
  return stream;
}

}  // namespace

TokenStream tinystories_half(const Tokenizer& tokenizer, const fs::path& path, OptionalBos bos,
                             TinyStoriesHalf half, InvalidUtf8 invalid) {
  TokenStream stream;
  const std::string text = read_dataset_text(path, invalid, stream);
  const std::vector<std::string_view> stories = split(text, kStorySeparator);
  SERQ_CHECK(stories.size() > kWholeStories, "{}: {} stories separated by {}, but the protocol needs {} whole stories "
             "and a cut-off one; use the first 2 MiB of TinyStories-train (V1)", path.string(),
             stories.size(), kStorySeparator, kWholeStories);
  const bool calibration = half == TinyStoriesHalf::calibration;
  const std::size_t first = calibration ? 0 : kCalibrationStories;
  const std::size_t last = calibration ? kCalibrationStories : kWholeStories;

  stream.name = calibration ? "tinystories-calib" : "tinystories-eval";
  stream.bos_policy = bos ? "BOS before each story" : "no BOS (the tokenizer adds none)";
  for (std::size_t s = first; s < last; ++s) {
    if (bos) stream.tokens.push_back(*bos);
    const std::vector<int> ids = tokenizer.encode(python_strip(stories[s]));
    stream.tokens.insert(stream.tokens.end(), ids.begin(), ids.end());
  }
  return stream;
}

TokenStream wikitext2(const Tokenizer& tokenizer, const fs::path& hf_rows_json, OptionalBos bos,
                      InvalidUtf8 invalid) {
  nlohmann::json rows;
  TokenStream checked;
  try {
    rows = nlohmann::json::parse(read_dataset_text(hf_rows_json, invalid, checked));
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
  TokenStream stream = bos_then_text(tokenizer, joined, bos, hf_rows_json);
  stream.invalid_utf8_bytes = checked.invalid_utf8_bytes;
  stream.name = "wikitext2";
  stream.bos_policy = bos_then(bos, "the test rows joined with \"\\n\\n\" (GPTQ style)");
  stream.partial_window = PartialWindow::drop;
  return stream;
}

TokenStream ptb(const Tokenizer& tokenizer, const fs::path& path, OptionalBos bos, InvalidUtf8 invalid) {
  TokenStream checked;
  const std::string text = read_dataset_text(path, invalid, checked);
  const std::vector<std::string_view> lines = split_lines(text);
  std::string joined;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) joined += ' ';
    joined += python_strip(lines[i]);
  }
  TokenStream stream = bos_then_text(tokenizer, joined, bos, path);
  stream.invalid_utf8_bytes = checked.invalid_utf8_bytes;
  stream.name = "ptb";
  stream.bos_policy = bos_then(bos, "the test sentences stripped and joined with \" \" (GPTQ style)");
  stream.partial_window = PartialWindow::drop;
  return stream;
}

TokenStream plain_text(const Tokenizer& tokenizer, const fs::path& path, OptionalBos bos, InvalidUtf8 invalid) {
  TokenStream checked;
  TokenStream stream = bos_then_text(tokenizer, read_dataset_text(path, invalid, checked), bos, path);
  stream.invalid_utf8_bytes = checked.invalid_utf8_bytes;
  stream.name = path.string();
  stream.bos_policy = bos ? "one BOS before the whole file" : "no BOS (the tokenizer adds none) before the file";
  return stream;
}

fs::path dataset_file(std::string_view name_or_path, const fs::path& assets_root, std::string_view key) {
  const fs::path tinystories = assets_root / "data/text/tinystories/TinyStories-train.head2MiB.txt";
  const fs::path path = name_or_path == "tinystories-eval" || name_or_path == "tinystories-calib" ? tinystories
                        : name_or_path == "wikitext2" ? assets_root / "data/text/wikitext2/wiki.test.hf_rows.json"
                        : name_or_path == "wikitext2-valid" ? assets_root / "data/text/wikitext2/wiki.valid.tokens"
                        : name_or_path == "wikitext2-train" ? assets_root / "data/text/wikitext2/wiki.train.tokens"
                        : name_or_path == "ptb"       ? assets_root / "data/text/ptb/ptb.test.txt"
                                                      : fs::path(name_or_path);
  SERQ_CHECK(name_or_path != "wikitext2-train" || fs::is_regular_file(path), "{}: wikitext2-train (the "
             "papers' calibration split) needs {}: wiki.train.tokens from the WikiText-2 archive (Merity et al., "
             "wikitext-2-v1.zip), which serq's assets do not include; put it there, or use wikitext2-valid",
             key, path.string());
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  SERQ_CHECK(fs::exists(status) || (name_or_path != "wikitext2" && name_or_path != "wikitext2-valid"),
             "{}: {} does not exist; tools/fetch_assets.sh fetches WikiText-2 (and the zero-shot tasks) into serq's "
             "asset cache, or set SERQ_ASSETS to a copy of serq's assets", key, path.string());
  SERQ_CHECK(fs::exists(status), "{}: {} does not exist; use one of tinystories-eval, tinystories-calib, "
             "wikitext2, wikitext2-valid, wikitext2-train, ptb or a text file path", key, path.string());
  const char* kind = fs::is_directory(status)           ? "a directory"
                     : fs::is_character_file(status)     ? "a character device"
                     : fs::is_block_file(status)         ? "a block device"
                     : fs::is_fifo(status)               ? "a named pipe"
                     : fs::is_socket(status)             ? "a socket"
                     : !fs::is_regular_file(status)      ? "not a regular file"
                                                         : nullptr;
  SERQ_CHECK(!kind, "{}: {} is {}, not a text file; give the path of a text file or a dataset name", key,
             path.string(), kind);
  return path;
}

TokenStream load_dataset(std::string_view name_or_path, const Tokenizer& tokenizer, OptionalBos bos,
                         const fs::path& assets_root, InvalidUtf8 invalid) {
  const fs::path path = dataset_file(name_or_path, assets_root);
  if (name_or_path == "tinystories-eval") {
    return tinystories_half(tokenizer, path, bos, TinyStoriesHalf::evaluation, invalid);
  }
  if (name_or_path == "tinystories-calib") {
    return tinystories_half(tokenizer, path, bos, TinyStoriesHalf::calibration, invalid);
  }
  if (name_or_path == "wikitext2") return wikitext2(tokenizer, path, bos, invalid);
  if (name_or_path == "ptb") return ptb(tokenizer, path, bos, invalid);
  TokenStream stream = plain_text(tokenizer, path, bos, invalid);
  if (name_or_path == "wikitext2-valid" || name_or_path == "wikitext2-train") stream.name = std::string(name_or_path);
  return stream;
}

}  // namespace serq
