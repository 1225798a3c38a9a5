// The zero-shot task registry (one explicit list) and the loaders. Every loader builds lm-eval-harness's requests: a
// choice is (context, target_delimiter + text) with lm-eval's default target_delimiter " ", unless a task says
// otherwise. Each conversion below was checked on every row of the shipped files; the differences from lm-eval
// that the files make impossible to undo are written where they arise.
#include "core/data/tasks.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "core/common/error.h"
#include "core/common/text.h"
#include "core/data/bz2_text.h"

namespace serq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- Text helpers (byte-wise on UTF-8: every pattern here is ASCII)

// re.sub(r"\[.*?\]", "", text) on one line: each '[' with a ']' after it starts a match that ends at the first such
// ']'; scanning goes on after the match.
std::string remove_bracketed(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t close = text[i] == '[' ? text.find(']', i + 1) : std::string_view::npos;
    if (close != std::string_view::npos) {
      i = close + 1;
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

// lm-eval's HellaSwag preprocess() (tasks/hellaswag/utils.py).
std::string hellaswag_preprocess(std::string_view text) {
  std::string out = replace_all(python_strip(text), " [title]", ". ");
  out = remove_bracketed(out);
  return replace_all(out, "  ", " ");
}

// ---- Fields of one JSONL object; a problem is a BadLine, which the reader places at its file:line

std::string describe(const json& value) {
  if (value.is_array()) return "a list";
  if (value.is_object()) return "an object";
  std::string text = value.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

const json& field(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end()) throw BadLine(fmt::format("missing field '{}'", key));
  return *it;
}

std::string text_field(const json& object, const char* key) {
  const json& value = field(object, key);
  if (!value.is_string()) throw BadLine(fmt::format("field '{}' is {}, not a string", key, describe(value)));
  return value.get<std::string>();
}

std::int64_t index_field(const json& object, const char* key) {
  const json& value = field(object, key);
  if (!value.is_number_integer() ||
      (value.is_number_unsigned() && value.get<std::uint64_t>() > std::numeric_limits<std::int64_t>::max())) {
    throw BadLine(fmt::format("field '{}' is {}, not a choice index", key, describe(value)));
  }
  return value.get<std::int64_t>();
}

std::vector<std::string> text_list_field(const json& object, const char* key) {
  const json& value = field(object, key);
  if (!value.is_array() || value.empty()) {
    throw BadLine(fmt::format("field '{}' is {}, not a non-empty list of strings", key, describe(value)));
  }
  std::vector<std::string> texts;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string()) {
      throw BadLine(fmt::format("field '{}' entry {} is {}, not a string", key, i, describe(value[i])));
    }
    texts.push_back(value[i].get<std::string>());
  }
  return texts;
}

// ---- Items

void check_gold(std::int64_t gold, std::size_t choices) {
  if (gold < 0 || gold >= static_cast<std::int64_t>(choices)) {
    throw BadLine(fmt::format("gold {} is not a choice index 0..{}", gold, choices - 1));
  }
}

TaskChoice spaced(const std::string& context, std::string text) {
  return {.context = context, .continuation = " " + text, .text = std::move(text)};
}

TaskItem make_item(std::vector<TaskChoice> choices, std::int64_t gold) {
  check_gold(gold, choices.size());
  for (std::size_t i = 0; i < choices.size(); ++i) {
    if (choices[i].text.empty()) throw BadLine(fmt::format("choice {} is empty", i));
  }
  return {.choices = std::move(choices), .gold = static_cast<int>(gold)};
}

TaskItem spaced_item(const std::string& context, std::vector<std::string> texts, std::int64_t gold) {
  std::vector<TaskChoice> choices;
  for (std::string& text : texts) choices.push_back(spaced(context, std::move(text)));
  return make_item(std::move(choices), gold);
}

// ---- Loaders

struct TaskFile {
  std::string_view task;
  fs::path path;  // the spec's file under the assets root
  fs::path assets_root;
  BadLinePolicy policy;
};

struct LoadedItems {
  std::vector<TaskItem> items;
  std::string source;
  int skipped_lines = 0;
};

void require_file(const TaskFile& at, const fs::path& path) {
  SERQ_CHECK(fs::exists(path),
             "eval.tasks: {} needs {}, which does not exist; tools/fetch_assets.sh fetches the zero-shot tasks, or "
             "check SERQ_ASSETS ({}), or drop {} from eval.tasks",
             at.task, path.string(), (at.assets_root / "data/tasks").string(), at.task);
}

// A JSONL task whose every line is one item, converted by ToItem.
template <TaskItem (*ToItem)(const json&)>
LoadedItems jsonl_task(const TaskFile& at) {
  LoadedItems loaded;
  loaded.source = at.path.string();
  loaded.skipped_lines =
      read_jsonl(at.path, at.policy, [&](int, const json& object) { loaded.items.push_back(ToItem(object)); }).skipped;
  return loaded;
}

// PIQA, official files: valid.jsonl {goal, sol1, sol2} and valid-labels.lst, line n answering line n. lm-eval:
// "Question: {goal}\nAnswer:", choices sol1, sol2 as they are (230 of them end in a space, kept, as lm-eval keeps
// them).
LoadedItems load_piqa(const TaskFile& at) {
  const fs::path labels_path = at.path.parent_path() / "valid-labels.lst";
  require_file(at, labels_path);
  LoadedItems loaded;
  loaded.source = fmt::format("{} + {}", at.path.string(), labels_path.string());

  const std::string labels_text = read_text_file(labels_path);
  std::vector<int> labels;  // −1: a malformed label, whose item is skipped with it
  BadLines bad_labels(labels_path, at.policy);
  for (const std::string_view line : split_lines(labels_text)) {
    labels.push_back(-1);
    bad_labels.check(static_cast<int>(labels.size()), [&] {
      if (line != "0" && line != "1") throw BadLine(fmt::format("label '{}' is not 0 or 1", line));
      labels.back() = line[0] - '0';
    });
  }
  loaded.skipped_lines = bad_labels.finish();

  const JsonlStats stats = read_jsonl(at.path, at.policy, [&](int line, const json& object) {
    const auto label = static_cast<std::size_t>(line - 1);
    if (label >= labels.size() || labels[label] < 0) return;  // a count mismatch (an error below) or a skipped label
    const std::string context = "Question: " + text_field(object, "goal") + "\nAnswer:";
    loaded.items.push_back(
        spaced_item(context, {text_field(object, "sol1"), text_field(object, "sol2")}, labels[label]));
  });
  SERQ_CHECK(static_cast<std::size_t>(stats.lines) == labels.size(),
             "{}: {} labels for the {} lines of {}; PIQA's two files must be aligned line for line",
             labels_path.string(), labels.size(), stats.lines, at.path.string());
  loaded.skipped_lines += stats.skipped;
  return loaded;
}

// ARC (llm-foundry): query "Question: {question}" (every row), choices, gold. lm-eval: "Question: {question}\nAnswer:".
// llm-foundry gave every question 4 choices. 11 rows repeat a choice (7 in arc_easy, 4 in arc_challenge, never the
// gold one): ai2_arc's 3-choice questions, padded. The repeat is dropped here, keeping the first copy, which gives
// lm-eval's 3 choices (a repeat only ever ties with its copy, so scores are the same either way). ai2_arc's few
// 5-choice questions, if the file holds them, lost a choice there; that cannot be undone.
TaskItem arc_item(const json& object) {
  const std::string query = text_field(object, "query");
  if (!query.starts_with("Question: ")) throw BadLine("field 'query' does not start with 'Question: '");
  const std::vector<std::string> texts = text_list_field(object, "choices");
  const std::int64_t gold = index_field(object, "gold");
  check_gold(gold, texts.size());
  std::vector<std::string> distinct;
  std::int64_t distinct_gold = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto at = static_cast<std::size_t>(std::find(distinct.begin(), distinct.end(), texts[i]) - distinct.begin());
    if (at == distinct.size()) distinct.push_back(texts[i]);
    if (static_cast<std::int64_t>(i) == gold) distinct_gold = static_cast<std::int64_t>(at);
  }
  return spaced_item(query + "\nAnswer:", std::move(distinct), distinct_gold);
}

// HellaSwag (klosax/hellaswag_text_data): 6 lines per item, activity_label + ": " + ctx, the gold label, 4 endings.
// lm-eval preprocesses its query, activity_label + ": " + ctx_a + " " + ctx_b.capitalize(), and each ending with
// hellaswag_preprocess(). Two differences the file makes impossible to undo:
//  - the file keeps ctx (= ctx_a + " " + ctx_b) and not the split, so ctx_b's capitalization is lost: lm-eval
//    sends "Roof shingle removal: A man is sitting on a roof. He" where this sends "... roof. he" (capitalize() also
//    lowercases the rest of ctx_b);
//  - klosax's extractor already removed the [header], [step] and [substeps] tags and replaced [title], then
//    dropped one space at each end of a text; where an original text began or ended with a tag, lm-eval (which strips
//    before it removes tags) keeps a space there that the file has lost. The other brackets left in the file (e.g.
//    "[www.kiddio.org]") are removed here as lm-eval removes them.
LoadedItems load_hellaswag(const TaskFile& at) {
  constexpr std::size_t kLinesPerItem = 6;
  const std::string text = read_bz2_text(at.path);
  const std::vector<std::string_view> lines = split_lines(text);
  SERQ_CHECK(lines.size() % kLinesPerItem == 0,
             "{}:{}: the file ends inside the item that starts here ({} lines, not a multiple of 6: context, label, "
             "4 endings); copy the file again",
             at.path.string(), lines.size() / kLinesPerItem * kLinesPerItem + 1, lines.size());
  LoadedItems loaded;
  loaded.source = at.path.string();
  BadLines bad_lines(at.path, at.policy);
  for (std::size_t first = 0; first < lines.size(); first += kLinesPerItem) {
    bad_lines.check(static_cast<int>(first) + 2, [&] {
      const std::string_view label = lines[first + 1];
      if (label.size() != 1 || label[0] < '0' || label[0] > '3') {
        throw BadLine(fmt::format("label '{}' is not 0..3", label));
      }
      std::vector<std::string> endings;
      for (std::size_t e = 0; e < 4; ++e) endings.push_back(hellaswag_preprocess(lines[first + 2 + e]));
      loaded.items.push_back(spaced_item(hellaswag_preprocess(lines[first]), std::move(endings), label[0] - '0'));
    });
  }
  loaded.skipped_lines = bad_lines.finish();
  return loaded;
}

// WinoGrande (llm-foundry): context_options[2] (the sentence up to the blank, each option filled in),
// continuation (the rest of the sentence, stripped), gold. lm-eval's partial scoring: choice i =
// (context_options[i], " " + continuation), the same continuation for both; its doc_to_choice strings are the
// contexts, but it reports acc only, so text = the continuation.
TaskItem winogrande_item(const json& object) {
  const std::vector<std::string> contexts = text_list_field(object, "context_options");
  if (contexts.size() != 2) {
    throw BadLine(fmt::format("field 'context_options' has {} entries, not 2", contexts.size()));
  }
  const std::string continuation = text_field(object, "continuation");
  std::vector<TaskChoice> choices;
  for (const std::string& context : contexts) choices.push_back(spaced(context, continuation));
  return make_item(std::move(choices), index_field(object, "gold"));
}

// BoolQ (llm-foundry): query "Passage: {passage}\nQuestion: {question}?", choices ["no", "yes"], gold 1 = yes.
// lm-eval: "{passage}\nQuestion: {question}?\nAnswer:", choices "no", "yes", label 1 = yes.
TaskItem boolq_item(const json& object) {
  constexpr std::string_view kPassage = "Passage: ";
  const std::string query = text_field(object, "query");
  if (!query.starts_with(kPassage) || query.find("\nQuestion: ") == std::string::npos) {
    throw BadLine("field 'query' is not 'Passage: ...\\nQuestion: ...'");
  }
  std::vector<std::string> texts = text_list_field(object, "choices");
  if (texts != std::vector<std::string>{"no", "yes"}) throw BadLine("field 'choices' is not [\"no\", \"yes\"]");
  return spaced_item(query.substr(kPassage.size()) + "\nAnswer:", std::move(texts), index_field(object, "gold"));
}

// OpenBookQA (llm-foundry): query = the question stem, choices, gold; lm-eval's form as it is.
TaskItem openbookqa_item(const json& object) {
  return spaced_item(text_field(object, "query"), text_list_field(object, "choices"), index_field(object, "gold"));
}

// COPA (llm-foundry): query = the premise without its final period + ", because" or ", therefore"; choices with
// their first letter lowercased (all 200 start lowercase). lm-eval: premise[:-1] + " because" / " therefore", no
// comma, choices with the first letter lowercased. lm-eval 0.4's copa/utils.py doc_to_choice also puts a space
// before each choice, to which its multiple_choice requests add target_delimiter " ", so it scores "  the toilet..."
// with two spaces; this keeps one, as lm-eval 0.3 did.
TaskItem copa_item(const json& object) {
  const std::string query = text_field(object, "query");
  for (const std::string_view connector : {"because", "therefore"}) {
    const std::string ending = fmt::format(", {}", connector);
    if (query.ends_with(ending)) {
      const std::string context = fmt::format("{} {}", query.substr(0, query.size() - ending.size()), connector);
      return spaced_item(context, text_list_field(object, "choices"), index_field(object, "gold"));
    }
  }
  throw BadLine("field 'query' ends neither in ', because' nor in ', therefore'");
}

// LAMBADA, OpenAI's version (llm-foundry): context, continuation = the passage's last word. lm-eval: context =
// text.split(' ')[:-1] joined, target " " + the last piece, so the word is whatever follows the last space: none of
// the file's continuations has a space, none of its contexts ends in whitespace, and 7 continuations hold a
// newline (e.g. "\n\nrecorder", "of\n\nPower"), which lm-eval's target holds too.
TaskItem lambada_item(const json& object) {
  const std::string continuation = text_field(object, "continuation");
  if (continuation.empty() || continuation.find(' ') != std::string::npos) {
    throw BadLine(fmt::format("field 'continuation' '{}' is not one word (lm-eval's last word never holds a space)",
                              continuation));
  }
  return make_item({spaced(text_field(object, "context"), continuation)}, 0);
}

// ---- Registry

using Loader = LoadedItems (*)(const TaskFile&);

struct TaskEntry {
  TaskSpec spec;
  Loader load;
};

const std::vector<TaskEntry>& task_entries() {
  using enum TaskKind;
  static const std::vector<TaskEntry> entries = {
      {{.name = "piqa",
        .file = "data/tasks/piqa-official/valid.jsonl",
        .kind = multiple_choice,
        .has_acc_norm = true,
        .description = "PIQA validation: physical commonsense, 2 solutions (official valid.jsonl + labels)"},
       load_piqa},
      {{.name = "arc_easy",
        .file = "data/tasks/llm-foundry/arc_easy.jsonl",
        .kind = multiple_choice,
        .has_acc_norm = true,
        .description = "ARC-Easy test: grade-school science questions (llm-foundry copy)"},
       jsonl_task<arc_item>},
      {{.name = "arc_challenge",
        .file = "data/tasks/llm-foundry/arc_challenge.jsonl",
        .kind = multiple_choice,
        .has_acc_norm = true,
        .description = "ARC-Challenge test: the ARC questions simple baselines miss (llm-foundry copy)"},
       jsonl_task<arc_item>},
      {{.name = "hellaswag",
        .file = "data/tasks/hellaswag/hellaswag_val_full.txt.bz2",
        .kind = multiple_choice,
        .has_acc_norm = true,
        .description = "HellaSwag validation: the ending of an ActivityNet/WikiHow context, 4 endings (klosax text)"},
       load_hellaswag},
      {{.name = "winogrande",
        .file = "data/tasks/llm-foundry/winogrande.jsonl",
        .kind = multiple_choice,
        .has_acc_norm = false,
        .description = "WinoGrande validation: which of 2 names fills the blank, partial scoring (llm-foundry copy)"},
       jsonl_task<winogrande_item>},
      {{.name = "boolq",
        .file = "data/tasks/llm-foundry/boolq.jsonl",
        .kind = multiple_choice,
        .has_acc_norm = false,
        .description = "BoolQ validation: a yes/no question on a Wikipedia passage (llm-foundry copy)"},
       jsonl_task<boolq_item>},
      {{.name = "openbookqa",
        .file = "data/tasks/llm-foundry/openbook_qa.jsonl",
        .kind = multiple_choice,
        .has_acc_norm = true,
        .description = "OpenBookQA test: elementary science, 4 choices (llm-foundry copy)"},
       jsonl_task<openbookqa_item>},
      {{.name = "copa",
        .file = "data/tasks/llm-foundry/copa.jsonl",
        .kind = multiple_choice,
        .has_acc_norm = false,
        .description = "COPA validation: the more plausible cause or effect, 2 choices (llm-foundry copy)"},
       jsonl_task<copa_item>},
      {{.name = "lambada_openai",
        .file = "data/tasks/llm-foundry/lambada_openai.jsonl",
        .kind = last_word,
        .has_acc_norm = false,
        .description =
            "LAMBADA (OpenAI) test: a passage's last word, greedy accuracy and perplexity (llm-foundry copy)"},
       jsonl_task<lambada_item>},
  };
  return entries;
}

std::string known_tasks() {
  std::vector<std::string_view> names;
  for (const TaskEntry& entry : task_entries()) names.push_back(entry.spec.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

const TaskEntry& find_entry(std::string_view name) {
  for (const TaskEntry& entry : task_entries()) {
    if (entry.spec.name == name) return entry;
  }
  if (name == "all") fail("eval.tasks: 'all' stands alone; use 'all' or a comma list of: {}", known_tasks());
  fail("eval.tasks: unknown task '{}'; use 'all' or a comma list of: {}", name, known_tasks());
}

}  // namespace

const std::vector<TaskSpec>& task_specs() {
  static const std::vector<TaskSpec> specs = [] {
    std::vector<TaskSpec> list;
    for (const TaskEntry& entry : task_entries()) list.push_back(entry.spec);
    return list;
  }();
  return specs;
}

std::vector<std::string> parse_task_list(std::string_view text) {
  const std::string_view list = python_strip(text);
  std::vector<std::string> names;
  if (list.empty()) return names;
  if (list == "all") {
    for (const TaskSpec& spec : task_specs()) names.push_back(spec.name);
    return names;
  }
  for (std::size_t begin = 0; begin <= list.size();) {
    const std::size_t comma = std::min(list.find(',', begin), list.size());
    const std::string_view name = python_strip(list.substr(begin, comma - begin));
    SERQ_CHECK(!name.empty(), "eval.tasks: '{}' has an empty name between commas; use 'all' or a comma list of: {}",
               text, known_tasks());
    find_entry(name);
    SERQ_CHECK(std::find(names.begin(), names.end(), name) == names.end(),
               "eval.tasks: '{}' is listed twice; list each task once", name);
    names.emplace_back(name);
    begin = comma + 1;
  }
  return names;
}

Task load_task(std::string_view name, const std::filesystem::path& assets_root, BadLinePolicy policy, int limit) {
  const TaskEntry& entry = find_entry(name);
  SERQ_CHECK(limit >= 0, "{}: the item limit {} is negative; use 0 (all items) or a positive count", name, limit);
  const TaskFile at{
      .task = entry.spec.name, .path = assets_root / entry.spec.file, .assets_root = assets_root, .policy = policy};
  require_file(at, at.path);
  LoadedItems loaded = entry.load(at);
  SERQ_CHECK(!loaded.items.empty(), "{}: no items ({} malformed lines skipped); copy the task's file again",
             loaded.source, loaded.skipped_lines);
  if (limit > 0 && loaded.items.size() > static_cast<std::size_t>(limit)) {
    loaded.items.resize(static_cast<std::size_t>(limit));
  }
  return {.name = entry.spec.name,
          .kind = entry.spec.kind,
          .has_acc_norm = entry.spec.has_acc_norm,
          .source = std::move(loaded.source),
          .items = std::move(loaded.items),
          .skipped_lines = loaded.skipped_lines};
}

}  // namespace serq
