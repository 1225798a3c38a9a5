// Zero-shot task loaders on the real task files (row counts, one item per task written out by hand from the raw
// file), the task list parser, and bad inputs in scratch directories laid out like the assets.
#include <catch2/catch.hpp>

#include <bzlib.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "core/common/error.h"
#include "core/data/bz2_text.h"
#include "core/data/tasks.h"
#include "tests/assets.h"
#include "tests/support/stderr_capture.h"

namespace serq {
namespace {

namespace fs = std::filesystem;
using Catch::Contains;

const Task& full_task(const std::string& name) {
  static std::map<std::string, Task> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, load_task(name, assets_root(), BadLinePolicy::error, 0)).first;
  return it->second;
}

void check_choice(const TaskChoice& choice, const std::string& context, const std::string& text) {
  CHECK(choice.context == context);
  CHECK(choice.continuation == " " + text);
  CHECK(choice.text == text);
}

void check_choices(const TaskItem& item, const std::string& context, const std::vector<std::string>& texts, int gold) {
  REQUIRE(item.choices.size() == texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) check_choice(item.choices[i], context, texts[i]);
  CHECK(item.gold == gold);
}

bool same_items(const TaskItem& a, const TaskItem& b) {
  if (a.gold != b.gold || a.choices.size() != b.choices.size()) return false;
  for (std::size_t i = 0; i < a.choices.size(); ++i) {
    const TaskChoice &x = a.choices[i], &y = b.choices[i];
    if (x.context != y.context || x.continuation != y.continuation || x.text != y.text) return false;
  }
  return true;
}

// A scratch assets root holding one file at its path relative to the root.
fs::path fake_assets(const std::string& name, const std::string& relative, const std::string& bytes) {
  const fs::path root = test::scratch_dir(name);
  fs::create_directories((root / relative).parent_path());
  test::write_bytes(root / relative, bytes);
  return root;
}

std::string bzip2(const std::string& text) {
  std::string out(text.size() + text.size() / 100 + 600, '\0');
  auto size = static_cast<unsigned int>(out.size());
  REQUIRE(BZ2_bzBuffToBuffCompress(out.data(), &size, const_cast<char*>(text.data()),
                                   static_cast<unsigned int>(text.size()), 9, 0, 0) == BZ_OK);
  out.resize(size);
  return out;
}

constexpr const char* kCopa = "data/tasks/llm-foundry/copa.jsonl";
constexpr const char* kHellaSwag = "data/tasks/hellaswag/hellaswag_val_full.txt.bz2";
const std::string kGoodCopaLine =
    R"({"query": "It rained, therefore", "gold": 0, "choices": ["the grass got wet.", "the sun shone."]})";
const std::string kOtherCopaLine =
    R"({"query": "The glass fell, because", "gold": 1, "choices": ["it was full.", "it was pushed."]})";

// A COPA file whose line 2 is `bad`, between two good lines.
fs::path copa_with_line_2(const std::string& name, const std::string& bad) {
  return fake_assets(name, kCopa, kGoodCopaLine + "\n" + bad + "\n" + kOtherCopaLine + "\n");
}

// Two HellaSwag items (12 lines); the second's label is `label`.
std::string hellaswag_text(const std::string& label) {
  return "Cooking: A cook [title] cuts onions. [header] Stir them\n2\nwell.\n[step] slowly.\nhot.\n  cold  x.\n"
         "Biking: A man rides\n" +
         label + "\naway.\nup.\ndown.\nhome.\n";
}

}  // namespace

TEST_CASE("tasks: the registry lists the nine tasks in order with their kinds and files", "[tasks]") {
  std::vector<std::string> names;
  for (const TaskSpec& spec : task_specs()) {
    names.push_back(spec.name);
    CHECK(fs::exists(assets_root() / spec.file));
    CHECK(!spec.description.empty());
    CHECK(spec.kind == (spec.name == "lambada_openai" ? TaskKind::last_word : TaskKind::multiple_choice));
    const bool acc_norm = spec.name == "piqa" || spec.name == "arc_easy" || spec.name == "arc_challenge" ||
                          spec.name == "hellaswag" || spec.name == "openbookqa";
    CHECK(spec.has_acc_norm == acc_norm);
  }
  CHECK(names == std::vector<std::string>{"piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande", "boolq",
                                          "openbookqa", "copa", "lambada_openai"});
}

TEST_CASE("tasks: piqa pairs the official valid.jsonl with its labels", "[tasks]") {
  const Task& task = full_task("piqa");
  CHECK(task.items.size() == 1838);
  CHECK(task.name == "piqa");
  CHECK(task.has_acc_norm);
  CHECK(task.skipped_lines == 0);
  CHECK_THAT(task.source, Contains("valid.jsonl") && Contains("valid-labels.lst"));
  // valid.jsonl line 2 {"goal": "dresser", "sol1": "replace drawer with bobby pin ", ...}, valid-labels.lst line 2: 1.
  check_choices(task.items[1],
                "Question: dresser\nAnswer:", {"replace drawer with bobby pin ", "finish, woodgrain with  bobby pin "},
                1);
}

TEST_CASE("tasks: arc_easy adds Answer and drops a repeated choice", "[tasks]") {
  const Task& task = full_task("arc_easy");
  CHECK(task.items.size() == 2376);
  check_choices(task.items[0],
                "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\n"
                "Answer:",
                {"Sunlight is the source of energy for nearly all ecosystems.",
                 "Most ecosystems are found on land instead of in water.",
                 "Carbon dioxide is more available than other gases.", "The producers in all ecosystems are plants."},
                0);
  // Line 94: choices ["decrease", "decrease", "increase", "remain the same"], gold 2.
  check_choices(task.items[93],
                "Question: When a rock is placed in a graduated cylinder containing water, the height of the water "
                "will\nAnswer:",
                {"decrease", "increase", "remain the same"}, 1);
}

TEST_CASE("tasks: arc_challenge in lm-eval form", "[tasks]") {
  const Task& task = full_task("arc_challenge");
  CHECK(task.items.size() == 1172);
  check_choices(task.items[0],
                "Question: An astronomer observes that a planet rotates faster after a meteorite impact. Which is the "
                "most likely effect of this increase in rotation?\nAnswer:",
                {"Planetary density will decrease.", "Planetary years will become longer.",
                 "Planetary days will become shorter.", "Planetary gravity will become stronger."},
                2);
  // Line 401: ["liquid", "gas", "liquid", "solid"], gold 3 (solid).
  check_choices(task.items[400],
                "Question: In which state of matter does water have a definite shape and volume?\nAnswer:",
                {"liquid", "gas", "solid"}, 2);
}

TEST_CASE("tasks: hellaswag reads 6 lines per item and cleans them as lm-eval does", "[tasks]") {
  const Task& task = full_task("hellaswag");
  CHECK(task.items.size() == 10042);
  CHECK(task.has_acc_norm);
  // Item 0 (lm-eval would capitalize ctx_b: "... roof. He"; the file has lost where ctx_b starts).
  check_choices(task.items[0], "Roof shingle removal: A man is sitting on a roof. he",
                {"is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.",
                 "starts pulling up roofing on a roof."},
                3);
  // The file's extractor already replaced [title] and removed [header]/[step]/[substeps]; the brackets it left are
  // removed here, and the double space that leaves behind is collapsed. Item 3505's context in the file:
  // "... Visit a site like [www.kiddio.org] to find loads ...".
  const TaskItem& toddler = task.items[3505];
  CHECK(toddler.gold == 1);
  CHECK(toddler.choices[0].context ==
        "Family Life: How to entertain a toddler. Ask the toddler what he or she would like to do instead of doing "
        "what you would like to do.. Visit a site like to find loads of creative activities for toddlers and "
        "preschoolers.. Choose small, simple games like candy land or chutes and ladders.");
  // Item 4121, ending 1 in the file: "... before going to bed.  Do not be embarrassed by physical exertion."
  CHECK(task.items[4121].choices[1].text ==
        "Stop when you are not overly tired and give yourself a break before going to bed. Do not be embarrassed by "
        "physical exertion.");
}

TEST_CASE("tasks: winogrande scores the shared continuation after each filled-in context", "[tasks]") {
  const Task& task = full_task("winogrande");
  CHECK(task.items.size() == 1267);
  CHECK(!task.has_acc_norm);
  const TaskItem& item = task.items[0];
  REQUIRE(item.choices.size() == 2);
  check_choice(item.choices[0], "Sarah was a much better surgeon than Maria so Sarah", "always got the easier cases.");
  check_choice(item.choices[1], "Sarah was a much better surgeon than Maria so Maria", "always got the easier cases.");
  CHECK(item.gold == 1);
}

TEST_CASE("tasks: boolq drops the Passage prefix and adds Answer", "[tasks]") {
  const Task& task = full_task("boolq");
  CHECK(task.items.size() == 3270);
  CHECK(!task.has_acc_norm);
  // Line 2645: "Passage: The season is set for release in 2019.\nQuestion: are they going to make a punisher season
  // 2?", gold 1.
  check_choices(task.items[2644],
                "The season is set for release in 2019.\nQuestion: are they going to make a punisher season 2?\n"
                "Answer:",
                {"no", "yes"}, 1);
}

TEST_CASE("tasks: openbookqa uses the question stem as the context", "[tasks]") {
  const Task& task = full_task("openbookqa");
  CHECK(task.items.size() == 500);
  check_choices(task.items[1],
                "There is most likely going to be fog around:", {"a marsh", "a tundra", "the plains", "a desert"}, 0);
}

TEST_CASE("tasks: copa drops the comma before because and therefore", "[tasks]") {
  const Task& task = full_task("copa");
  CHECK(task.items.size() == 100);
  CHECK(!task.has_acc_norm);
  // Line 1: "The man turned on the faucet, therefore"; line 5: "The hamburger meat browned, because".
  check_choices(task.items[0], "The man turned on the faucet therefore",
                {"the toilet filled with water.", "water flowed from the spout."}, 1);
  check_choices(task.items[4], "The hamburger meat browned because", {"the cook froze it.", "the cook grilled it."}, 1);
}

TEST_CASE("tasks: lambada_openai has one last-word choice per item", "[tasks]") {
  const Task& task = full_task("lambada_openai");
  CHECK(task.items.size() == 5153);
  CHECK(task.kind == TaskKind::last_word);
  REQUIRE(task.items[0].choices.size() == 1);
  check_choice(task.items[0].choices[0],
               "In my palm is a clear stone, and inside it is a small ivory statuette. A guardian angel.\n\n\"Figured "
               "if you're going to be out at night getting hit by cars, you might as well have some backup.\"\n\nI "
               "look at him, feeling stunned. Like this is some sort of sign. But as I stare at Harlin, his mouth "
               "curved in a confident grin, I don't care about",
               "signs");
  CHECK(task.items[0].gold == 0);
  // Line 4463: lm-eval's last word is what follows the last space, newlines included.
  CHECK(task.items[4462].choices[0].continuation == " \n\nrecorder");
  CHECK(task.items[4462].choices[0].context.ends_with("She raised her brows when she returned and saw the"));
}

TEST_CASE("tasks: a limit keeps the first items of the full load", "[tasks]") {
  for (const std::string name : {"copa", "hellaswag", "piqa"}) {
    const Task limited = load_task(name, assets_root(), BadLinePolicy::error, 5);
    REQUIRE(limited.items.size() == 5);
    for (std::size_t i = 0; i < 5; ++i) CHECK(same_items(limited.items[i], full_task(name).items[i]));
  }
  CHECK(load_task("copa", assets_root(), BadLinePolicy::error, 1000).items.size() == 100);
  CHECK_THROWS_WITH(load_task("copa", assets_root(), BadLinePolicy::error, -1), Contains("negative"));
}

TEST_CASE("tasks: parse_task_list reads all, nothing, and comma lists", "[tasks]") {
  CHECK(parse_task_list("all").size() == 9);
  CHECK(parse_task_list("all").front() == "piqa");
  CHECK(parse_task_list("").empty());
  CHECK(parse_task_list("  ").empty());
  CHECK(parse_task_list("piqa, copa") == std::vector<std::string>{"piqa", "copa"});
  CHECK(parse_task_list(" lambada_openai ,arc_easy") == std::vector<std::string>{"lambada_openai", "arc_easy"});
  CHECK_THROWS_WITH(parse_task_list("piqa, mmlu"),
                    Contains("eval.tasks: unknown task 'mmlu'") &&
                        Contains("piqa, arc_easy, arc_challenge, hellaswag, winogrande, boolq, openbookqa, copa, "
                                 "lambada_openai"));
  CHECK_THROWS_WITH(parse_task_list("copa, piqa, copa"), Contains("'copa' is listed twice"));
  CHECK_THROWS_WITH(parse_task_list("piqa,,copa"), Contains("empty name"));
  CHECK_THROWS_WITH(parse_task_list("all, piqa"), Contains("'all' stands alone"));
  CHECK_THROWS_WITH(load_task("mmlu", assets_root(), BadLinePolicy::error, 0), Contains("unknown task 'mmlu'"));
}

TEST_CASE("tasks: a line that is not JSON is an error at file and line, or skipped once", "[tasks]") {
  const fs::path root = copa_with_line_2("tasks_not_json", R"({"query": "broken",)");
  const std::string at = (root / kCopa).string() + ":2: not valid JSON";
  CHECK_THROWS_WITH(load_task("copa", root, BadLinePolicy::error, 0),
                    Contains(at) && Contains("fix the line or set eval.bad_lines: skip"));
  Task task;
  const std::string printed =
      test::stderr_of(test::scratch_dir("tasks_not_json_stderr") / "stderr.txt", [&] { task = load_task("copa", root, BadLinePolicy::skip, 0); });
  CHECK(task.skipped_lines == 1);
  REQUIRE(task.items.size() == 2);
  CHECK(task.items[1].choices[0].context == "The glass fell because");
  CHECK(printed.starts_with((root / kCopa).string() + ": skipped 1 malformed line (first at line 2: not valid JSON"));
  CHECK(std::count(printed.begin(), printed.end(), '\n') == 1);
}

TEST_CASE("tasks: a mistyped or missing field is an error at file and line, or skipped", "[tasks]") {
  const fs::path root = copa_with_line_2(
      "tasks_field_type", R"({"query": "It rained, because", "gold": "1", "choices": ["a cloud.", "a dance."]})");
  CHECK_THROWS_WITH(load_task("copa", root, BadLinePolicy::error, 0),
                    Contains((root / kCopa).string() + ":2: field 'gold' is \"1\", not a choice index"));
  const Task task = load_task("copa", root, BadLinePolicy::skip, 0);
  CHECK(task.skipped_lines == 1);
  CHECK(task.items.size() == 2);

  const fs::path missing = copa_with_line_2("tasks_field_missing",
                                            R"({"query": "It rained, because", "choices": ["a cloud.", "a dance."]})");
  CHECK_THROWS_WITH(load_task("copa", missing, BadLinePolicy::error, 0),
                    Contains((missing / kCopa).string() + ":2: missing field 'gold'"));
  const fs::path array = copa_with_line_2("tasks_not_object", "[1, 2]");
  CHECK_THROWS_WITH(load_task("copa", array, BadLinePolicy::error, 0), Contains(":2: a JSON array, not an object"));
  const fs::path connector = copa_with_line_2(
      "tasks_connector", R"({"query": "It rained. So", "gold": 0, "choices": ["a cloud.", "a dance."]})");
  CHECK_THROWS_WITH(load_task("copa", connector, BadLinePolicy::error, 0),
                    Contains(":2: field 'query' ends neither in ', because' nor in ', therefore'"));
}

TEST_CASE("tasks: a gold outside the choices is an error at file and line", "[tasks]") {
  const fs::path root = copa_with_line_2(
      "tasks_gold_range", R"({"query": "It rained, because", "gold": 2, "choices": ["a cloud.", "a dance."]})");
  CHECK_THROWS_WITH(load_task("copa", root, BadLinePolicy::error, 0),
                    Contains((root / kCopa).string() + ":2: gold 2 is not a choice index 0..1"));
}

TEST_CASE("tasks: line numbers count empty lines, and every skipped line is summed in one summary", "[tasks]") {
  const fs::path root =
      fake_assets("tasks_line_numbers", kCopa, kGoodCopaLine + "\n\n[1]\n" + kOtherCopaLine + "\n{\n");
  CHECK_THROWS_WITH(load_task("copa", root, BadLinePolicy::error, 0), Contains(kCopa + std::string(":3: a JSON")));
  Task task;
  const std::string printed =
      test::stderr_of(test::scratch_dir("tasks_line_numbers_stderr") / "stderr.txt", [&] { task = load_task("copa", root, BadLinePolicy::skip, 0); });
  CHECK(task.items.size() == 2);
  CHECK(task.skipped_lines == 2);
  CHECK_THAT(printed, Contains("skipped 2 malformed lines (first at line 3: a JSON array, not an object)"));
  CHECK(std::count(printed.begin(), printed.end(), '\n') == 1);
}

TEST_CASE("tasks: a missing task file names its full path and eval.tasks", "[tasks]") {
  const fs::path root = test::scratch_dir("tasks_missing_file");
  CHECK_THROWS_WITH(load_task("arc_easy", root, BadLinePolicy::error, 0),
                    Contains("eval.tasks: arc_easy needs " + (root / "data/tasks/llm-foundry/arc_easy.jsonl").string() +
                             ", which does not exist") &&
                        Contains("tools/fetch_assets.sh") && Contains("SERQ_ASSETS") &&
                        Contains("drop arc_easy from eval.tasks"));
  const fs::path piqa = fake_assets("tasks_missing_labels", "data/tasks/piqa-official/valid.jsonl",
                                    R"({"goal": "g", "sol1": "a", "sol2": "b"})"
                                    "\n");
  CHECK_THROWS_WITH(load_task("piqa", piqa, BadLinePolicy::error, 0),
                    Contains("piqa needs " + (piqa / "data/tasks/piqa-official/valid-labels.lst").string()));
}

TEST_CASE("tasks: piqa's labels must be 0 or 1 and as many as the lines", "[tasks]") {
  const std::string lines = R"({"goal": "g1", "sol1": "a", "sol2": "b"})"
                            "\n"
                            R"({"goal": "g2", "sol1": "c", "sol2": "d"})"
                            "\n"
                            R"({"goal": "g3", "sol1": "e", "sol2": "f"})"
                            "\n";
  const fs::path root = fake_assets("tasks_piqa_labels", "data/tasks/piqa-official/valid.jsonl", lines);
  const fs::path labels = root / "data/tasks/piqa-official/valid-labels.lst";
  test::write_bytes(labels, "0\n2\n1\n");
  CHECK_THROWS_WITH(load_task("piqa", root, BadLinePolicy::error, 0),
                    Contains(labels.string() + ":2: label '2' is not 0 or 1"));
  const Task task = load_task("piqa", root, BadLinePolicy::skip, 0);
  CHECK(task.skipped_lines == 1);
  REQUIRE(task.items.size() == 2);
  check_choices(task.items[1], "Question: g3\nAnswer:", {"e", "f"}, 1);

  test::write_bytes(labels, "0\n1\n");
  CHECK_THROWS_WITH(load_task("piqa", root, BadLinePolicy::skip, 0),
                    Contains("2 labels for the 3 lines") && Contains("aligned line for line"));
}

TEST_CASE("tasks: hellaswag cleans title and header tags, and rejects bad labels and cut files", "[tasks]") {
  const fs::path root = fake_assets("tasks_hellaswag", kHellaSwag, bzip2(hellaswag_text("1")));
  const Task task = load_task("hellaswag", root, BadLinePolicy::error, 0);
  REQUIRE(task.items.size() == 2);
  // lm-eval: strip, " [title]" → ". ", "[header]" and "[step]" removed, then "  " → " " once. The real file has no
  // tags left (its extractor removed them); an ending that began with a tag keeps the space after it, as in lm-eval.
  check_choices(task.items[0], "Cooking: A cook. cuts onions. Stir them", {"well.", " slowly.", "hot.", "cold x."}, 2);

  const fs::path bad_label = fake_assets("tasks_hellaswag_label", kHellaSwag, bzip2(hellaswag_text("x")));
  CHECK_THROWS_WITH(load_task("hellaswag", bad_label, BadLinePolicy::error, 0),
                    Contains((bad_label / kHellaSwag).string() + ":8: label 'x' is not 0..3"));
  const Task skipped = load_task("hellaswag", bad_label, BadLinePolicy::skip, 0);
  CHECK(skipped.items.size() == 1);
  CHECK(skipped.skipped_lines == 1);

  const fs::path seven = fake_assets("tasks_hellaswag_seven", kHellaSwag, bzip2(hellaswag_text("1") + "extra\n"));
  CHECK_THROWS_WITH(load_task("hellaswag", seven, BadLinePolicy::skip, 0),
                    Contains((seven / kHellaSwag).string() + ":13: the file ends inside the item"));
}

TEST_CASE("tasks: a truncated or non-bzip2 file is a clear error, concatenated streams are read whole", "[tasks]") {
  const std::string whole = bzip2(hellaswag_text("1"));
  const fs::path cut = fake_assets("tasks_bz2_cut", kHellaSwag, whole.substr(0, whole.size() - 8));
  CHECK_THROWS_WITH(load_task("hellaswag", cut, BadLinePolicy::error, 0),
                    Contains((cut / kHellaSwag).string() + ": the bzip2 data ends before its end-of-stream marker") &&
                        Contains("truncated"));
  const fs::path half = fake_assets("tasks_bz2_half", kHellaSwag, whole.substr(0, whole.size() / 2));
  CHECK_THROWS_WITH(load_task("hellaswag", half, BadLinePolicy::error, 0), Contains("truncated"));
  const fs::path plain = fake_assets("tasks_bz2_plain", kHellaSwag, hellaswag_text("1"));
  CHECK_THROWS_WITH(read_bz2_text(plain / kHellaSwag), Contains("not a bzip2 file"));
  const fs::path empty = fake_assets("tasks_bz2_empty", kHellaSwag, "");
  CHECK_THROWS_WITH(read_bz2_text(empty / kHellaSwag), Contains("empty"));
  CHECK_THROWS_WITH(read_bz2_text(empty / "absent.bz2"), Contains("absent.bz2: cannot read the file"));

  const fs::path two = fake_assets("tasks_bz2_streams", "two.bz2", bzip2("first stream\n") + bzip2("second\n"));
  CHECK(read_bz2_text(two / "two.bz2") == "first stream\nsecond\n");
}

}  // namespace serq
