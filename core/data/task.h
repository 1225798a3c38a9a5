// A zero-shot task in lm-eval-harness's request form: every choice of an item is scored as the log-likelihood of
// its continuation given its context, and the item is right when its gold choice scores highest.
#pragma once

#include <string>
#include <vector>

namespace serq {

struct TaskChoice {
  std::string context;       // the text the model conditions on, e.g. "Question: ...\nAnswer:"
  std::string continuation;  // the scored text, delimiter included, e.g. " a rubber band"
  // The choice's own text (no delimiter): acc_norm divides the log-likelihood by its length in characters, as
  // lm-eval divides by len(choice) of the doc_to_choice string.
  std::string text;
};

struct TaskItem {
  std::vector<TaskChoice> choices;  // one for a last-word task
  int gold = 0;
};

enum class TaskKind {
  multiple_choice,  // acc = argmax of the log-likelihoods is gold; acc_norm when the task defines it
  last_word,        // LAMBADA: acc = the continuation is the greedy prediction; perplexity = exp(−mean log-likelihood)
};

struct Task {
  std::string name;    // the eval.tasks name, e.g. "arc_easy"
  TaskKind kind = TaskKind::multiple_choice;
  bool has_acc_norm = false;  // lm-eval reports acc_norm for this task
  std::string source;  // the file(s) the items came from
  std::vector<TaskItem> items;
  int skipped_lines = 0;  // malformed lines skipped under eval.bad_lines: skip
};

}  // namespace serq
