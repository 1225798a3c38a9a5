// Tests of byte-level BPE: SmolLM2's GGUF vocabulary tokenizes the reference strings and all of WikiText-2 test to
// the ids of HF `tokenizers` (reference/smollm2-135m/), tokenizer.json gives the same, decoding is byte-exact, the
// pre-tokenizer presets split as their regexes say, and bad tokenizer files fail with one line.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/data/token_stream.h"
#include "core/tokenizer/byte_level_bpe.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "core/tokenizer/tokenizer.h"
#include "experiments/asset_cache.h"
#include "tests/assets.h"
#include "tests/gguf_writer.h"

using Catch::Matchers::Contains;
using serq::Tokenizer;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kSmolLM2 = "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf";
const fs::path kTokenizerJson = "reference/smollm2-135m/tokenizer.json";

const Tokenizer& smollm2_gguf() {
  static const Tokenizer tokenizer = Tokenizer::load(serq::test::asset(kSmolLM2));
  return tokenizer;
}

const Tokenizer& smollm2_json() {
  static const Tokenizer tokenizer = Tokenizer::load(serq::test::asset(kTokenizerJson));
  return tokenizer;
}

json reference(const std::string& file) {
  return json::parse(serq::test::read_bytes(serq::test::asset("reference/smollm2-135m/" + file)));
}

std::vector<std::string> pieces(const serq::PreTokenizer& pre, std::string_view text) {
  const auto views = pre.split(text);
  return {views.begin(), views.end()};
}

}  // namespace

TEST_CASE("bpe: SmolLM2's GGUF tokenizer gives the reference ids of every test string and decodes them back",
          "[bpe][smollm2]") {
  const json strings = reference("tokens_strings.json");
  REQUIRE(strings.size() == 10);
  for (const json& entry : strings) {
    const std::string text = entry.at("text").get<std::string>();
    INFO(text);
    const std::vector<int> ids = smollm2_gguf().encode(text);
    CHECK(ids == entry.at("ids").get<std::vector<int>>());
    CHECK(smollm2_gguf().decode(ids) == text);
  }
  CHECK_FALSE(smollm2_gguf().adds_bos());  // tokenizer.ggml.add_bos_token is false
  CHECK(smollm2_gguf().vocab_size() == 49152);
}

TEST_CASE("bpe: all 304,978 ids of WikiText-2 test (GPTQ join, no BOS) equal the reference", "[bpe][smollm2]") {
  const json expected = reference("tokens_wikitext2_test.json");
  const serq::TokenStream stream = serq::load_dataset("wikitext2", smollm2_gguf(), std::nullopt, serq::assets_root());
  CHECK(stream.tokens.size() == 304978);
  CHECK(stream.tokens == expected.at("ids").get<std::vector<int>>());
  CHECK(stream.bos_policy == "no BOS (the tokenizer adds none), then the test rows joined with \"\\n\\n\" (GPTQ style)");

  // Decoding round-trips the whole text.
  std::string joined;
  const json rows = json::parse(serq::test::read_bytes(serq::test::asset("data/text/wikitext2/wiki.test.hf_rows.json")));
  for (std::size_t r = 0; r < rows.size(); ++r) joined += (r ? "\n\n" : "") + rows[r].get<std::string>();
  CHECK(smollm2_gguf().decode(stream.tokens) == joined);
}

TEST_CASE("bpe: the HF tokenizer.json of the same vocabulary tokenizes exactly like the GGUF", "[bpe][smollm2]") {
  for (const json& entry : reference("tokens_strings.json")) {
    const std::string text = entry.at("text").get<std::string>();
    INFO(text);
    CHECK(smollm2_json().encode(text) == smollm2_gguf().encode(text));
    CHECK(smollm2_json().decode(smollm2_json().encode(text)) == text);
  }
  const auto from_json = serq::load_dataset("wikitext2", smollm2_json(), std::nullopt, serq::assets_root());
  CHECK(from_json.tokens == reference("tokens_wikitext2_test.json").at("ids").get<std::vector<int>>());
  CHECK_FALSE(smollm2_json().adds_bos());  // no TemplateProcessing post-processor

  // An HF model directory with tokenizer.json and no tokenizer.model uses the tokenizer.json.
  const fs::path dir = serq::test::scratch_dir("bpe-hf-dir");
  fs::create_symlink(serq::test::asset(kTokenizerJson), dir / "tokenizer.json");
  CHECK(serq::resolve_tokenizer(dir, "") == dir / "tokenizer.json");
  CHECK(serq::resolve_tokenizer(serq::test::asset(kSmolLM2), "") == serq::test::asset(kSmolLM2));
}

TEST_CASE("bpe: special tokens in the text map to their ids, and a lone part of one does not", "[bpe][smollm2]") {
  const Tokenizer& tok = smollm2_gguf();
  CHECK(tok.encode("<|endoftext|>") == std::vector<int>{0});
  CHECK(tok.encode("<|im_start|><|im_end|>") == std::vector<int>{1, 2});
  const std::vector<int> partial = tok.encode("<|im_start");
  CHECK(std::find(partial.begin(), partial.end(), 1) == partial.end());
  CHECK(tok.decode(partial) == "<|im_start");
  CHECK(tok.decode({1, 4093, 2}) == "<|im_start|>user<|im_end|>");
  CHECK(tok.piece_text(0, 4093, 1) == "user");
}

TEST_CASE("bpe: GPT-2's byte table, worked by hand", "[bpe]") {
  const auto& table = serq::gpt2_byte_to_code_point();
  CHECK(table['A'] == U'A');
  CHECK(table['~'] == U'~');
  CHECK(table[0xA1] == U'\u00A1');      // ¡ is printable: itself
  CHECK(table[0x00] == U'\u0100');      // the 68 others follow U+0100 in byte order: 0x00–0x20 …
  CHECK(table[' '] == U'\u0120');       // Ġ
  CHECK(table['\n'] == U'\u010A');      // Ċ
  CHECK(table[0x7F] == U'\u0121');      // … 0x7F–0xA0 …
  CHECK(table[0xA0] == U'\u0142');
  CHECK(table[0xAD] == U'\u0143');      // … and the soft hyphen last
}

TEST_CASE("bpe: pre-tokenizer presets split as llama.cpp's regexes do", "[bpe]") {
  const auto gpt2 = serq::PreTokenizer::preset("gpt2", "test");
  CHECK(pieces(gpt2, "Hello world's 12345  end  ") ==
        std::vector<std::string>{"Hello", " world", "'s", " 12345", " ", " end", "  "});
  CHECK(pieces(gpt2, "I'M") == std::vector<std::string>{"I", "'", "M"});  // contractions are lowercase only
  const auto smollm = serq::PreTokenizer::preset("smollm", "test");
  CHECK(pieces(smollm, "in 1998,") == std::vector<std::string>{"in", " ", "1", "9", "9", "8", ","});
  CHECK(pieces(smollm, "½³٣") == std::vector<std::string>{"½", "³", "٣"});  // \p{N}: every Unicode number
  const auto llama3 = serq::PreTokenizer::preset("llama3", "test");
  CHECK(pieces(llama3, "I'M  world1234567\n\n x") ==
        std::vector<std::string>{"I", "'M", " ", " world", "123", "456", "7", "\n\n", " x"});
  const auto qwen2 = serq::PreTokenizer::preset("qwen2", "test");
  CHECK(pieces(qwen2, "x2024") == std::vector<std::string>{"x", "2", "0", "2", "4"});
  CHECK(pieces(gpt2, "") .empty());
}

TEST_CASE("bpe: bad tokenizer input fails with one line naming the file and the fault", "[bpe]") {
  CHECK_THROWS_WITH(serq::PreTokenizer::preset("falcon", "model.gguf: tokenizer.ggml.pre"),
                    Contains("model.gguf: tokenizer.ggml.pre") && Contains("'falcon' is not supported") &&
                        Contains("smollm") && Contains("qwen2"));
  CHECK_THROWS_WITH(smollm2_gguf().encode("ok \xC3("), Contains("not valid UTF-8"));
  CHECK_THROWS_WITH(smollm2_gguf().decode({49152}), Contains("outside the vocabulary"));

  const fs::path dir = serq::test::scratch_dir("bpe-bad");
  json tokenizer = json::parse(serq::test::read_bytes(serq::test::asset(kTokenizerJson)));
  auto write = [&](const std::string& name, const json& content) {
    serq::test::write_bytes(dir / name, content.dump());
    return dir / name;
  };
  json normalized = tokenizer;
  normalized["normalizer"] = {{"type", "NFC"}};
  const fs::path nfc = write("nfc.json", normalized);
  CHECK_THROWS_WITH(Tokenizer::load(nfc), Contains(nfc.string()) && Contains("normalizer"));
  json wordpiece = tokenizer;
  wordpiece["model"]["type"] = "WordPiece";
  const fs::path wp = write("wordpiece.json", wordpiece);
  CHECK_THROWS_WITH(Tokenizer::load(wp), Contains(wp.string()) && Contains("model.type is 'WordPiece'"));
  json bad_merge = tokenizer;
  bad_merge["model"]["merges"][5] = json::array({"Ġt", "no-such-token"});
  const fs::path merge = write("merge.json", bad_merge);
  CHECK_THROWS_WITH(Tokenizer::load(merge), Contains(merge.string()) && Contains("merge 5"));
  serq::test::write_bytes(dir / "broken.json", "{\"model\": ");
  CHECK_THROWS_WITH(Tokenizer::load(dir / "broken.json"), Contains("broken.json") && Contains("not valid JSON"));

  serq::test::GgufWriter spm;
  spm.add_string("tokenizer.ggml.model", "llama");
  serq::test::write_bytes(dir / "spm.gguf", spm.bytes());
  CHECK_THROWS_WITH(Tokenizer::load(dir / "spm.gguf"), Contains("spm.gguf") && Contains("'llama'") &&
                                                           Contains("tokenizer.model"));
}
