// Tokenizer tests on stories260K's tok512.model: known ids, round trips, run.c rendering, bad files.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/common/error.h"
#include "core/model/config.h"
#include "core/tokenizer/tokenizer.h"
#include "tests/assets.h"

namespace serq {
namespace {

const Tokenizer& tok512() {
  static const Tokenizer tokenizer = Tokenizer::load(test::asset("models/stories260K/tok512.model"));
  return tokenizer;
}

std::string read_file(const std::filesystem::path& path) {
  REQUIRE(std::filesystem::exists(path));
  return test::read_bytes(path);
}

// The vocabulary strings of a llama2.c tokenizer.bin: i32 max_token_length, then per token f32 score, i32 length,
// bytes. Its exporter already shows '▁' as ' '.
std::vector<std::string> llama2c_vocab(const std::filesystem::path& path, int vocab_size) {
  const std::string bytes = read_file(path);
  std::size_t at = sizeof(std::int32_t);
  std::vector<std::string> vocab;
  for (int i = 0; i < vocab_size; ++i) {
    std::int32_t length;
    REQUIRE(at + sizeof(float) + sizeof(length) <= bytes.size());
    std::memcpy(&length, bytes.data() + at + sizeof(float), sizeof(length));
    at += sizeof(float) + sizeof(length);
    REQUIRE(at + static_cast<std::size_t>(length) <= bytes.size());
    vocab.push_back(bytes.substr(at, static_cast<std::size_t>(length)));
    at += static_cast<std::size_t>(length);
  }
  REQUIRE(at == bytes.size());
  return vocab;
}

}  // namespace

TEST_CASE("tokenizer: tok512 matches the model config's vocabulary, BOS and EOS", "[tokenizer]") {
  const ModelConfig config = read_hf_config(test::asset("models/stories260K-hf/config.json"));
  CHECK(tok512().vocab_size() == config.vocab_size);
  CHECK(config.bos_id == 1);
  CHECK(config.eos_id == 2);
  CHECK(tok512().piece_text(0, config.bos_id, config.bos_id) == "<s>");
  CHECK(tok512().piece_text(0, config.eos_id, config.bos_id) == "</s>");
}

TEST_CASE("tokenizer: encode gives sentencepiece's ids without BOS or EOS", "[tokenizer]") {
  const std::vector<int> ids = tok512().encode("Once upon a time");
  CHECK(ids == std::vector<int>{403, 407, 261, 378});
  CHECK(tok512().encode("").empty());
}

TEST_CASE("tokenizer: decode inverts encode, byte fallback included", "[tokenizer]") {
  const std::string story = read_file(test::asset("data/text/tinystories/TinyStories-train.head2MiB.txt"))
                                .substr(0, 600);
  CHECK(tok512().decode(tok512().encode(story)) == story);
  const std::string unicode = "Caf\u00e9 na\u00efve \u65e5\u672c \u2014 ok";
  const std::vector<int> ids = tok512().encode(unicode);
  CHECK(tok512().decode(ids) == unicode);
  CHECK(ids.size() > unicode.size() / 2);  // the 512-piece vocabulary spells the non-ASCII bytes one by one
}

TEST_CASE("tokenizer: piece_text matches llama2.c's exported vocabulary tok512.bin", "[tokenizer]") {
  const int bos = 1, eos = 2;
  const std::vector<std::string> vocab = llama2c_vocab(test::asset("models/stories260K/tok512.bin"), 512);
  CHECK(vocab[bos] == "\n<s>\n");  // the exporter's own text for BOS/EOS, which piece_text does not copy
  int bytes = 0;
  for (int id = 0; id < 512; ++id) {
    if (id == bos || id == eos) continue;
    const std::string text = tok512().piece_text(0, id, bos);
    if (vocab[id].size() == 6 && vocab[id].starts_with("<0x")) {
      INFO("byte piece " << vocab[id]);
      REQUIRE(text.size() == 1);
      CHECK(static_cast<unsigned char>(text[0]) == std::stoi(vocab[id].substr(3, 2), nullptr, 16));
      ++bytes;
    } else {
      INFO("token " << id);
      CHECK(text == vocab[id]);
    }
  }
  CHECK(bytes == 256);
}

TEST_CASE("tokenizer: piece_text drops the leading space only right after BOS", "[tokenizer]") {
  const int bos = 1;
  const int once = tok512().encode("Once").at(0);
  CHECK(tok512().piece_text(bos, once, bos) == "Once");
  CHECK(tok512().piece_text(once, once, bos) == " Once");
  const int newline = tok512().encode("\n").back();
  CHECK(tok512().piece_text(bos, newline, bos) == "\n");
}

TEST_CASE("tokenizer: rendering BOS + tokens reproduces run.c's greedy output text", "[tokenizer]") {
  std::string reference = read_file(test::asset("reference/stories260K_greedy_n200_run.c.txt"));
  REQUIRE(reference.ends_with('\n'));
  reference.pop_back();  // run.c prints a newline after the generated tokens
  const int bos = 1;
  std::vector<int> tokens{bos};
  const std::vector<int> ids = tok512().encode(reference);
  tokens.insert(tokens.end(), ids.begin(), ids.end());
  std::string rendered;
  for (std::size_t i = 1; i < tokens.size(); ++i) rendered += tok512().piece_text(tokens[i - 1], tokens[i], bos);
  CHECK(rendered == reference);
}

TEST_CASE("tokenizer: bad files and ids raise errors naming the file", "[tokenizer]") {
  const auto dir = test::scratch_dir("tokenizer");
  const auto missing = dir / "missing.model";
  CHECK_THROWS_WITH(Tokenizer::load(missing), Catch::Contains(missing.string()) && Catch::Contains("does not exist"));
  const auto garbage = dir / "garbage.model";
  std::ofstream(garbage) << "this is not a sentencepiece model";
  CHECK_THROWS_WITH(Tokenizer::load(garbage),
                    Catch::Contains(garbage.string()) && Catch::Contains("not a sentencepiece model"));
  CHECK_THROWS_AS(tok512().piece_text(0, 512, 1), Error);
  CHECK_THROWS_AS(tok512().piece_text(0, -1, 1), Error);
  CHECK_THROWS_AS(tok512().decode({0, 5000}), Error);
}

}  // namespace serq
