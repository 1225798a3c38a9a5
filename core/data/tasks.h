// The zero-shot tasks serq knows, listed by hand, and their loaders: each turns a task's file(s) under the assets
// root into lm-eval-harness requests (core/data/task.h), converted to lm-eval's form where the file differs.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/data/jsonl.h"
#include "core/data/task.h"

namespace serq {

struct TaskSpec {
  std::string name;  // the eval.tasks name
  std::string file;  // relative to the assets root
  TaskKind kind = TaskKind::multiple_choice;
  bool has_acc_norm = false;
  std::string description;
};

// In this order: piqa, arc_easy, arc_challenge, hellaswag, winogrande, boolq, openbookqa, copa, lambada_openai.
const std::vector<TaskSpec>& task_specs();

// eval.tasks: "all" (every task, in task_specs() order), "" (none), or a comma list such as "piqa, arc_easy" (in
// the given order). An unknown or repeated name is a serq::Error that lists the known tasks.
std::vector<std::string> parse_task_list(std::string_view text);

// The task's items from its file(s) under assets_root. limit > 0 keeps the first limit items (lm-eval --limit),
// 0 keeps all. A missing file is a serq::Error naming its full path; malformed lines follow the policy.
Task load_task(std::string_view name, const std::filesystem::path& assets_root, BadLinePolicy policy, int limit);

}  // namespace serq
