// Data tests on the real corpora: stream token counts, evaluation windows, calibration sampling, bad inputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <numeric>

#include "core/common/error.h"
#include "core/data/calibration_sampler.h"
#include "core/data/token_stream.h"
#include "core/data/windows.h"
#include "tests/assets.h"

namespace serq {
namespace {

constexpr int kBos = 1;

const Tokenizer& tok512() {
  static const Tokenizer tokenizer = Tokenizer::load(test::asset("models/stories260K/tok512.model"));
  return tokenizer;
}

const TokenStream& calibration_half() {
  static const TokenStream stream = load_dataset("tinystories-calib", tok512(), kBos, assets_root());
  return stream;
}

const TokenStream& evaluation_half() {
  static const TokenStream stream = load_dataset("tinystories-eval", tok512(), kBos, assets_root());
  return stream;
}

std::int64_t scored_tokens(const std::vector<std::span<const int>>& windows) {
  std::int64_t scored = 0;
  for (auto w : windows) scored += static_cast<std::int64_t>(w.size()) - 1;
  return scored;
}

TokenStream counting_stream(int size) {
  TokenStream stream;
  stream.name = "counting";
  stream.tokens.resize(static_cast<std::size_t>(size));
  std::iota(stream.tokens.begin(), stream.tokens.end(), 0);
  return stream;
}

}  // namespace

TEST_CASE("data: TinyStories halves match the reference token, window and scored counts", "[data]") {
  const TokenStream& calib = calibration_half();
  const TokenStream& eval = evaluation_half();
  CHECK(calib.name == "tinystories-calib");
  CHECK(eval.name == "tinystories-eval");
  CHECK(eval.bos_policy == "BOS before each story");
  CHECK(calib.tokens.size() == 526009);
  CHECK(eval.tokens.size() == 505657);
  CHECK(std::count(calib.tokens.begin(), calib.tokens.end(), kBos) == 1158);
  CHECK(std::count(eval.tokens.begin(), eval.tokens.end(), kBos) == 1158);
  CHECK(eval.tokens.front() == kBos);

  const auto eval_w = eval_windows(eval, 512, 0);
  CHECK(eval_w.size() == 988);
  CHECK(scored_tokens(eval_w) == 504669);
  CHECK(scored_tokens(eval_windows(calib, 512, 0)) == 524981);
}

TEST_CASE("data: the first evaluation story is story 1158 of the file, stripped", "[data]") {
  const std::vector<int>& tokens = evaluation_half().tokens;
  const auto second_bos = std::find(tokens.begin() + 1, tokens.end(), kBos);
  const std::string first_story = tok512().decode(std::vector<int>(tokens.begin() + 1, second_bos));
  CHECK(first_story.find("<|endoftext|>") == std::string::npos);
  REQUIRE(!first_story.empty());
  CHECK(!std::isspace(static_cast<unsigned char>(first_story.front())));
  CHECK(!std::isspace(static_cast<unsigned char>(first_story.back())));
  const std::string text = test::read_bytes(test::asset("data/text/tinystories/TinyStories-train.head2MiB.txt"));
  std::size_t at = 0;
  for (int s = 0; s < 1158; ++s) at = text.find("<|endoftext|>", at) + std::string("<|endoftext|>").size();
  CHECK(text.find(first_story, at) == text.find_first_not_of(" \t\r\n", at));
}

TEST_CASE("data: TinyStories stories are stripped like Python's str.strip(), Unicode spaces included", "[data]") {
  const auto file = test::scratch_dir("data-strip") / "stories.txt";
  {
    std::ofstream out(file, std::ios::binary);
    for (int s = 0; s < 2316; ++s) out << "\u00a0 \t story " << s << "\n\u3000<|endoftext|>";
    out << " cut-off stor";
  }
  const TokenStream eval = tinystories_half(tok512(), file, kBos, TinyStoriesHalf::evaluation);
  std::vector<int> expected;
  for (int s = 1158; s < 2316; ++s) {
    expected.push_back(kBos);
    const std::vector<int> ids = tok512().encode("story " + std::to_string(s));
    expected.insert(expected.end(), ids.begin(), ids.end());
  }
  CHECK(eval.tokens == expected);
}

TEST_CASE("data: WikiText-2 and PTB match the reference token and scored counts", "[data]") {
  const TokenStream wiki = load_dataset("wikitext2", tok512(), kBos, assets_root());
  CHECK(wiki.name == "wikitext2");
  CHECK(wiki.tokens.size() == 815066);
  CHECK(std::count(wiki.tokens.begin(), wiki.tokens.end(), kBos) == 1);
  // GPTQ's protocol scores full windows only (1591 of 512); the reference also scored the short last one.
  CHECK(wiki.partial_window == PartialWindow::drop);
  CHECK(scored_tokens(eval_windows(wiki, 512, 0)) == 1591 * 511);
  TokenStream with_partial = wiki;
  with_partial.partial_window = PartialWindow::score;
  CHECK(scored_tokens(eval_windows(with_partial, 512, 0)) == 813474);

  // The reference encodes PTB's file as it is; as a plain text path serq does the same.
  const TokenStream ptb_file = load_dataset((assets_root() / "data/text/ptb/ptb.test.txt").string(), tok512(), kBos,
                                            assets_root());
  CHECK(ptb_file.bos_policy == "one BOS before the whole file");
  CHECK(ptb_file.tokens.size() == 269894);
  CHECK(scored_tokens(eval_windows(ptb_file, 512, 0)) == 269366);
}

TEST_CASE("data: ptb follows GPTQ: one BOS, then the stripped test sentences joined with one space", "[data]") {
  const TokenStream ptb = load_dataset("ptb", tok512(), kBos, assets_root());
  CHECK(ptb.name == "ptb");
  CHECK(ptb.bos_policy == "one BOS, then the test sentences stripped and joined with \" \" (GPTQ style)");
  std::ifstream in(assets_root() / "data/text/ptb/ptb.test.txt");
  std::string joined, line;
  int lines = 0;
  while (std::getline(in, line)) {  // every line is " words \n": one space each side
    REQUIRE(line.size() > 2);
    REQUIRE(line.front() == ' ');
    REQUIRE(line.back() == ' ');
    joined += (lines++ ? " " : "") + line.substr(1, line.size() - 2);
  }
  CHECK(lines == 3761);
  CHECK(joined.starts_with("no it was n't black monday but while the new york stock exchange"));
  std::vector<int> expected = {kBos};
  for (const int id : tok512().encode(joined)) expected.push_back(id);
  CHECK(ptb.tokens == expected);
}

TEST_CASE("data: a text file path loads as one BOS + its tokens", "[data]") {
  const auto file = test::scratch_dir("data-plain") / "story.txt";
  std::ofstream(file) << "Once upon a time";
  const TokenStream stream = load_dataset(file.string(), tok512(), kBos, assets_root());
  CHECK(stream.name == file.string());
  CHECK(stream.tokens == std::vector<int>{kBos, 403, 407, 261, 378});
}

TEST_CASE("data: evaluation windows keep a last window only when it has a token to score", "[data]") {
  const auto windows = eval_windows(counting_stream(2 * 8 + 2), 8, 0);
  REQUIRE(windows.size() == 3);
  CHECK(windows[2].size() == 2);
  CHECK(windows[1][0] == 8);
  CHECK(scored_tokens(windows) == 7 + 7 + 1);
  CHECK(eval_windows(counting_stream(2 * 8 + 1), 8, 0).size() == 2);
  CHECK(eval_windows(counting_stream(2 * 8), 8, 0).size() == 2);
  CHECK(eval_windows(counting_stream(1), 8, 0).empty());
}

TEST_CASE("data: max_windows keeps the first windows, pointing into the stream", "[data]") {
  const TokenStream& eval = evaluation_half();
  const auto all = eval_windows(eval, 512, 0);
  const auto first = eval_windows(eval, 512, 10);
  REQUIRE(first.size() == 10);
  for (std::size_t i = 0; i < first.size(); ++i) {
    CHECK(first[i].data() == all[i].data());
    CHECK(first[i].data() == eval.tokens.data() + i * 512);
    CHECK(first[i].size() == 512);
  }
  CHECK(eval_windows(eval, 512, 5000).size() == all.size());
}

TEST_CASE("data: consecutive calibration samples are the first evaluation windows", "[data]") {
  const TokenStream& calib = calibration_half();
  const auto samples = sample_calibration(calib, 16, 256, CalibrationSampling::consecutive, 0);
  const auto windows = eval_windows(calib, 256, 16);
  REQUIRE(samples.size() == 16);
  for (std::size_t i = 0; i < samples.size(); ++i)
    CHECK(std::equal(samples[i].begin(), samples[i].end(), windows[i].begin(), windows[i].end()));
}

TEST_CASE("data: random calibration samples depend on the seed alone", "[data]") {
  const TokenStream& calib = calibration_half();
  const auto a = sample_calibration(calib, 32, 512, CalibrationSampling::random, 7);
  const auto b = sample_calibration(calib, 32, 512, CalibrationSampling::random, 7);
  const auto c = sample_calibration(calib, 32, 512, CalibrationSampling::random, 8);
  CHECK(a == b);
  CHECK(a != c);
  for (const auto& sample : a) CHECK(sample.size() == 512);

  // splitmix64 from seed 0 gives 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F; offsets are those
  // modulo the number of start positions (1000 − 10 + 1 = 991). Each sample is a contiguous run of the stream.
  const auto counted = sample_calibration(counting_stream(1000), 3, 10, CalibrationSampling::random, 0);
  CHECK(counted[0][0] == static_cast<int>(0xE220A8397B1DCDAFull % 991));
  CHECK(counted[1][0] == static_cast<int>(0x6E789E6AA1B965F4ull % 991));
  CHECK(counted[2][0] == static_cast<int>(0x06C45D188009454Full % 991));
  for (const auto& sample : counted) CHECK(sample.back() == sample.front() + 9);
  // A stream exactly seq_len long has one start position.
  CHECK(sample_calibration(counting_stream(10), 4, 10, CalibrationSampling::random, 3)[3][0] == 0);
}

TEST_CASE("data: bad calibration requests raise errors that say what is needed", "[data]") {
  const TokenStream stream = counting_stream(100);
  CHECK_THROWS_WITH(sample_calibration(stream, 0, 10, CalibrationSampling::random, 0),
                    Catch::Contains("calibration.samples"));
  CHECK_THROWS_WITH(sample_calibration(stream, 1, 1, CalibrationSampling::consecutive, 0),
                    Catch::Contains("calibration.seq_len"));
  CHECK_THROWS_WITH(sample_calibration(stream, 11, 10, CalibrationSampling::consecutive, 0),
                    Catch::Contains("need 110 tokens") && Catch::Contains("has 100"));
  CHECK_THROWS_WITH(sample_calibration(stream, 1, 101, CalibrationSampling::random, 0),
                    Catch::Contains("need 101 tokens") && Catch::Contains("has 100"));
  CHECK_NOTHROW(sample_calibration(stream, 10, 10, CalibrationSampling::consecutive, 0));
  CHECK_THROWS_WITH(eval_windows(stream, 1, 0), Catch::Contains("eval.seq_len"));
}

TEST_CASE("data: missing, empty and malformed dataset files raise errors naming them", "[data]") {
  const auto dir = test::scratch_dir("data-bad");
  const auto missing = dir / "missing.txt";
  CHECK_THROWS_WITH(load_dataset(missing.string(), tok512(), kBos, assets_root()),
                    Catch::Contains("eval.dataset: " + missing.string() + " does not exist") &&
                        Catch::Contains("tinystories-eval, tinystories-calib, wikitext2, wikitext2-valid, "
                                        "wikitext2-train, ptb"));
  // WikiText-2 missing from the assets: the error names the command that fetches it.
  CHECK_THROWS_WITH(dataset_file("wikitext2", dir, "eval.dataset"),
                    Catch::StartsWith("eval.dataset: " + (dir / "data/text/wikitext2/wiki.test.hf_rows.json").string() +
                                      " does not exist; tools/fetch_assets.sh fetches WikiText-2"));
  CHECK_THROWS_WITH(dataset_file("wikitext2-valid", dir, "calib.dataset"), Catch::Contains("tools/fetch_assets.sh"));
  // The papers' calibration split is not among the assets: the error says where it goes and what to use instead.
  CHECK_THROWS_WITH(dataset_file("wikitext2-train", dir, "calib.dataset"),
                    Catch::StartsWith("calib.dataset: wikitext2-train") &&
                        Catch::Contains((dir / "data/text/wikitext2/wiki.train.tokens").string()) &&
                        Catch::Contains("or use wikitext2-valid"));
  CHECK_THROWS_WITH(load_dataset("wikitext2", tok512(), kBos, dir),
                    Catch::Contains((dir / "data/text/wikitext2/wiki.test.hf_rows.json").string()));

  const auto empty = dir / "empty.txt";
  std::ofstream{empty};
  CHECK_THROWS_WITH(plain_text(tok512(), empty, kBos), Catch::Contains(empty.string()) && Catch::Contains("empty"));

  const auto short_stories = dir / "stories.txt";
  std::ofstream(short_stories) << "One.<|endoftext|>Two.<|endoftext|>Thr";
  CHECK_THROWS_WITH(tinystories_half(tok512(), short_stories, kBos, TinyStoriesHalf::evaluation),
                    Catch::Contains(short_stories.string()) && Catch::Contains("3 stories"));

  const auto bad_json = dir / "rows.json";
  std::ofstream(bad_json) << "[\"a\", ";
  CHECK_THROWS_WITH(wikitext2(tok512(), bad_json, kBos), Catch::Contains(bad_json.string()));
  std::ofstream(bad_json) << "{\"rows\": 1}";
  CHECK_THROWS_WITH(wikitext2(tok512(), bad_json, kBos), Catch::Contains("JSON list"));
}

}  // namespace serq
