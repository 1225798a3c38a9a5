// Zero-shot metrics of one task, as lm-eval-harness computes them: acc, acc_norm and their standard errors for
// multiple choice; greedy accuracy and perplexity for a last-word task (LAMBADA).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/data/task.h"
#include "core/formats/result_file.h"
#include "core/model/model.h"
#include "core/model/resident_model.h"
#include "core/tokenizer/tokenizer.h"

namespace serq {

// The context length is the model's (config.max_seq_len); longer requests are cut from the left.
struct ZeroShotSettings {
  int batch_size = 8;
  bool bos = true;  // put BOS before every context
  // Run a context that several choices share once, and the choices over its KV cache (core/eval/shared_context.h);
  // false runs each request's whole input, as lm-eval does (the same scores up to float rounding).
  bool share_contexts = true;
};

struct TaskResult {
  std::string name;
  std::int64_t items = 0, requests = 0, truncated = 0;  // truncated: requests cut to the context length
  double acc = 0, acc_stderr = 0;
  std::optional<double> acc_norm, acc_norm_stderr;  // multiple choice with has_acc_norm
  // last_word only: exp(−mean per-item log-likelihood). lm-eval bootstraps its stderr; this is the delta method,
  // ppl · stderr(per-item log-likelihood).
  std::optional<double> ppl, ppl_stderr;
  double seconds = 0;
  std::vector<ItemScore> item_scores;  // per item in task order (core/formats/result_file.h)

  double headline() const { return acc_norm.value_or(acc); }  // the number papers average
};

// Scores every choice of every item (progress "task <name>" in requests, with an ETA) and computes the metrics:
//   multiple choice: acc = [argmax_i loglik_i == gold], the first index winning ties (numpy argmax);
//                    acc_norm the same on loglik_i / (characters of the choice's text, as Python's len);
//   last_word:       acc = [the continuation is the greedy prediction].
// Throws serq::Error naming the task and item for a gold out of range, a last-word item without exactly one choice,
// or an empty choice text under acc_norm.
TaskResult evaluate_task(const ResidentModel& model, const Tokenizer& tokenizer, const Task& task,
                         const ZeroShotSettings& settings);
// The same with `model` made resident on model.backend for the call.
TaskResult evaluate_task(const Model& model, const Tokenizer& tokenizer, const Task& task,
                         const ZeroShotSettings& settings);

// lm-eval's mean_stderr: the sample standard deviation (n − 1) divided by sqrt(n); 0 for fewer than two values.
double mean_stderr(std::span<const double> values);

// The mean of the tasks' headline() numbers.
double zero_shot_average(const std::vector<TaskResult>& results);

}  // namespace serq
